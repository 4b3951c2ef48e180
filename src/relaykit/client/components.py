"""One generic component/action mechanism for every RELAY operation with a ``control_id``.

A :class:`Component` registers itself on its call *before* sending its command (so an event
that beats the response is not lost), then completes on its terminal event, on the call
ending, or on the command failing — whichever comes first, exactly once. Subclasses say which
events are terminal. Actions are the user's handle on a running component.
"""

from __future__ import annotations

__all__ = [
    "Action",
    "CommandSender",
    "Component",
    "ComponentHost",
    "ConnectAction",
    "ConnectComponent",
    "ConnectHost",
    "DetectAction",
    "DetectComponent",
    "DisconnectComponent",
    "PlayAction",
    "PlayComponent",
    "PromptAction",
    "PromptComponent",
    "RecordAction",
    "RecordComponent",
    "SendDigitsAction",
    "SendDigitsComponent",
    "TapAction",
    "TapComponent",
]

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, Protocol, TypeVar

from ..errors import RelayError
from ..protocol import calling
from ..protocol.jsonrpc import new_id
from .results import (
    ConnectResult,
    DetectResult,
    Event,
    PlayResult,
    PlayVolumeResult,
    PromptResult,
    PromptVolumeResult,
    RecordResult,
    SendDigitsResult,
    StopResult,
    TapResult,
)

log = logging.getLogger("relaykit.client")


class CommandSender(Protocol):
    """Runs a RELAY command and returns its inner result (``Client`` provides it)."""

    async def execute(
        self, method: str, params: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]: ...


class ComponentHost(Protocol):
    """What a component needs from its call (``Call`` provides it)."""

    @property
    def id(self) -> str | None: ...

    @property
    def node_id(self) -> str | None: ...

    @property
    def ended(self) -> bool: ...

    @property
    def client(self) -> CommandSender: ...

    def _register(self, component: Component) -> None: ...

    def _unregister(self, component: Component) -> None: ...


class Component:
    """One RELAY operation with a ``control_id`` on a call, from its command to its end."""

    event_type: str = ""
    method: str = ""

    def __init__(self, call: ComponentHost, payload: dict[str, Any]) -> None:
        self.call = call
        self.control_id = new_id()  # a random v4 UUID, without uuid4's system call
        self.payload = {
            "node_id": call.node_id,
            "call_id": call.id,
            "control_id": self.control_id,
            **payload,
        }
        self.state = ""
        self.completed = False
        self.successful = False
        self.event: Event | None = None
        self.reply: dict[str, Any] = {}  # the command's RELAY result (url, source_device…)
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- lifecycle --------------------------------------------------------------------------
    async def execute(self) -> None:
        """Send the command; on refusal the component completes unsuccessfully."""
        if self.call.ended:
            self.terminate()
            return
        self.call._register(self)
        try:
            self.reply = await self.call.client.execute(self.method, self.payload)
        except RelayError as exc:
            log.warning("! %s failed: %s", self.method, exc)
            self.terminate(error=str(exc))

    async def wait(self, timeout: float | None = None) -> None:
        if self._done.done():
            return
        if timeout is None:  # shielded: a cancelled waiter leaves the component running
            await asyncio.shield(self._done)
        else:
            await asyncio.wait_for(asyncio.shield(self._done), timeout)

    def on_event(self, params: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def complete(self, *, state: str, successful: bool, event: Event | None) -> None:
        if self.completed:
            return
        self.state = state
        self.successful = successful
        self.event = event
        self.completed = True
        self.call._unregister(self)
        if not self._done.done():
            self._done.set_result(None)

    def terminate(
        self, call_state: dict[str, Any] | None = None, *, error: str | None = None
    ) -> None:
        """The call ended, the connection was lost, or the command failed."""
        if call_state is not None:
            event = Event(str(call_state.get("call_state", "ended")), dict(call_state))
        else:
            event = Event("error", {"message": error or "component terminated"})
        self.complete(state="failed", successful=False, event=event)

    # -- sub-commands (§5.2) ------------------------------------------------------------------
    async def _subcommand(self, suffix: str, **extra: Any) -> tuple[bool, str | None, str | None]:
        params: dict[str, Any] = {
            "node_id": self.call.node_id,
            "call_id": self.call.id,
            "control_id": self.control_id,
            **extra,
        }
        try:
            inner = await self.call.client.execute(f"{self.method}.{suffix}", params)
        except RelayError as exc:
            return False, str(getattr(exc, "code", "")) or None, str(exc)
        return True, str(inner.get("code", "200")), inner.get("message")


class PlayComponent(Component):
    """``calling.play``; completes on ``finished`` or ``error``."""

    event_type = calling.PLAY_EVENT
    method = calling.PLAY

    def on_event(self, params: dict[str, Any]) -> None:
        state = params.get("state")
        if not isinstance(state, str):
            return
        self.state = state
        if state in ("finished", "error"):
            self.complete(
                state=state, successful=state == "finished", event=Event(state, dict(params))
            )


class PromptComponent(Component):
    """``calling.play_and_collect``; completes only on the §6.1 terminal rule."""

    event_type = calling.COLLECT_EVENT
    method = calling.PLAY_AND_COLLECT

    def __init__(self, call: ComponentHost, payload: dict[str, Any], prompt_type: str) -> None:
        super().__init__(call, payload)
        self.prompt_type = prompt_type
        self.input: str | None = None
        self.terminator: str | None = None
        self.confidence: float | None = None
        self.reason: str | None = None
        self.on_partial: Callable[[dict[str, Any]], Any] | None = None
        # interim results, then None; a queue only once someone reads them (most never do)
        self._early: list[dict[str, Any] | None] = []
        self._partials: asyncio.Queue[dict[str, Any] | None] | None = None

    @property
    def partials(self) -> asyncio.Queue[dict[str, Any] | None]:
        """Interim results in order, then None once the prompt has completed."""
        if self._partials is None:
            self._partials = asyncio.Queue()
            for item in self._early:
                self._partials.put_nowait(item)
            self._early.clear()
        return self._partials

    def _put_partial(self, item: dict[str, Any] | None) -> None:
        if self._partials is None:
            self._early.append(item)
        else:
            self._partials.put_nowait(item)

    def on_event(self, params: dict[str, Any]) -> None:
        result = params.get("result")
        if not isinstance(result, dict):
            log.warning("! collect event without a result object: %r", params)
            return
        if not calling.is_terminal_collect(params):
            self._put_partial(result)
            if self.on_partial is not None:
                try:
                    self.on_partial(result)
                except Exception:
                    log.exception("! on_partial callback failed")
            return
        kind = str(result.get("type"))
        rparams = result.get("params")
        if not isinstance(rparams, dict):
            rparams = {}
        reason = result.get("reason")
        self.reason = reason if isinstance(reason, str) else None
        # Read defensively: a missing field is None, never a crash (§8.2.3).
        if "digits" in rparams:
            self.input = _str_or_none(rparams.get("digits"))
            self.terminator = _str_or_none(rparams.get("terminator"))
        if "text" in rparams:
            self.input = _str_or_none(rparams.get("text"))
            conf = rparams.get("confidence")
            self.confidence = float(conf) if isinstance(conf, int | float) else None
        self.prompt_type = kind
        successful = kind in ("digit", "speech")
        self._put_partial(None)
        self.complete(
            state="successful" if successful else kind,
            successful=successful,
            event=Event(kind, dict(result)),
        )

    def terminate(
        self, call_state: dict[str, Any] | None = None, *, error: str | None = None
    ) -> None:
        if not self.completed:
            self.reason = self.reason or ("hangup" if call_state is not None else "error")
            self._put_partial(None)
        super().terminate(call_state, error=error)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class RecordComponent(Component):
    """``calling.record``; completes on ``finished``, ``no_input`` or ``error``."""

    event_type = calling.RECORD_EVENT
    method = calling.RECORD

    def __init__(self, call: ComponentHost, payload: dict[str, Any]) -> None:
        super().__init__(call, payload)
        self.url = ""
        self.duration = 0.0
        self.size = 0

    async def execute(self) -> None:
        await super().execute()
        if not self.url and isinstance(self.reply.get("url"), str):
            self.url = self.reply["url"]

    def on_event(self, params: dict[str, Any]) -> None:
        state = params.get("state")
        if not isinstance(state, str):
            return
        self.state = state
        if isinstance(params.get("url"), str):
            self.url = params["url"]
        if state == "recording":
            return
        duration, size = params.get("duration"), params.get("size")
        self.duration = float(duration) if isinstance(duration, int | float) else 0.0
        self.size = int(size) if isinstance(size, int | float) else 0
        self.complete(state=state, successful=state == "finished", event=Event(state, dict(params)))


_DETECT_ENDS = ("finished", "error")
_DETECT_ANSWERS = ("MACHINE", "HUMAN", "UNKNOWN", "CED", "CNG")


class DetectComponent(Component):
    """``calling.detect``, with v2's completion rules.

    Blocking (``detect*()``): completes on the first answer — any key for digits, else MACHINE,
    HUMAN, UNKNOWN, CED or CNG; with ``wait_for_beep`` a MACHINE waits for READY (its result
    stays MACHINE). Otherwise (``detect*_async()``): completes when the detector finishes,
    ``result`` every answer joined with commas.
    """

    event_type = calling.DETECT_EVENT
    method = calling.DETECT

    def __init__(
        self,
        call: ComponentHost,
        payload: dict[str, Any],
        *,
        blocking: bool,
        wait_for_beep: bool = False,
    ) -> None:
        super().__init__(call, payload)
        detect = payload.get("detect")
        self.detect_type = str(detect.get("type", "")) if isinstance(detect, dict) else ""
        self.blocking = blocking
        self.wait_for_beep = wait_for_beep
        self.result: str | None = None
        self.results: list[str] = []
        self._waiting_for_ready = False

    def on_event(self, params: dict[str, Any]) -> None:
        detect = params.get("detect")
        if not isinstance(detect, dict):
            return
        inner = detect.get("params")
        event = inner.get("event") if isinstance(inner, dict) else None
        if not isinstance(event, str):
            return
        if isinstance(detect.get("type"), str):
            self.detect_type = detect["type"]
        self.state = event
        if event in _DETECT_ENDS:
            if self.blocking:
                self.result = None
                self._finish(event, detect, successful=False)
            else:
                self.result = ",".join(self.results)
                self._finish(event, detect, successful=event != "error")
            return
        self.results.append(event)
        if not self.blocking:
            return
        if self._waiting_for_ready:
            if event == "READY":
                self.result = "MACHINE"
                self._finish(event, detect, successful=True)
            return
        if self.wait_for_beep and event == "MACHINE":
            self._waiting_for_ready = True
            return
        if self.detect_type == "digit" or event in _DETECT_ANSWERS:
            self.result = event
            self._finish(event, detect, successful=True)

    def _finish(self, event: str, detect: dict[str, Any], *, successful: bool) -> None:
        self.complete(state=event, successful=successful, event=Event(event, dict(detect)))


class TapComponent(Component):
    """``calling.tap``; completes on ``finished``."""

    event_type = calling.TAP_EVENT
    method = calling.TAP

    def __init__(self, call: ComponentHost, payload: dict[str, Any]) -> None:
        super().__init__(call, payload)
        self.tap: dict[str, Any] = dict(payload.get("tap") or {})
        self.device: dict[str, Any] = dict(payload.get("device") or {})

    @property
    def source_device(self) -> dict[str, Any]:
        source = self.reply.get("source_device")
        return dict(source) if isinstance(source, dict) else {}

    def on_event(self, params: dict[str, Any]) -> None:
        state = params.get("state")
        if not isinstance(state, str):
            return
        self.state = state
        if isinstance(params.get("tap"), dict):
            self.tap = params["tap"]
        if isinstance(params.get("device"), dict):
            self.device = params["device"]
        if state == "finished":
            self.complete(state=state, successful=True, event=Event(state, dict(params)))


class SendDigitsComponent(Component):
    """``calling.send_digits``; completes on ``finished``."""

    event_type = calling.SEND_DIGITS_EVENT
    method = calling.SEND_DIGITS

    def on_event(self, params: dict[str, Any]) -> None:
        state = params.get("state")
        if not isinstance(state, str):
            return
        self.state = state
        if state == "finished":
            self.complete(state=state, successful=True, event=Event(state, dict(params)))


PeerT = TypeVar("PeerT")
PeerT_co = TypeVar("PeerT_co", covariant=True)


class ConnectHost(ComponentHost, Protocol[PeerT_co]):
    """What a connect needs from its call: the other leg, once bridged."""

    @property
    def peer(self) -> PeerT_co | None: ...


class _ConnectEvents(Component, Generic[PeerT]):
    """A component that follows ``calling.call.connect``; v2 gives it no ``control_id`` (the
    call routes every connect event to each of them)."""

    event_type = calling.CONNECT_EVENT

    def __init__(self, call: ConnectHost[PeerT], payload: dict[str, Any]) -> None:
        super().__init__(call, payload)
        del self.payload["control_id"]
        self.host = call
        self.reason: str | None = None
        self.peer: PeerT | None = None  # the leg that answered


class ConnectComponent(_ConnectEvents[PeerT]):
    """``calling.connect``; completes when ``connected`` (successful), ``failed`` or
    ``disconnected``."""

    method = calling.CONNECT

    def on_event(self, params: dict[str, Any]) -> None:
        state = params.get("connect_state")
        if not isinstance(state, str):
            return
        self.state = state
        if state == "connecting":
            return
        reason = params.get("failed_reason")
        self.reason = reason if isinstance(reason, str) else None
        if state == "connected":
            self.peer = self.host.peer
        self.complete(
            state=state, successful=state == "connected", event=Event(state, dict(params))
        )


class DisconnectComponent(_ConnectEvents[PeerT]):
    """``calling.disconnect``; completes on ``disconnected`` (successful) or ``failed`` (a
    connect still ringing was cancelled)."""

    method = calling.DISCONNECT

    def on_event(self, params: dict[str, Any]) -> None:
        state = params.get("connect_state")
        if state not in ("disconnected", "failed"):
            return
        self.state = state
        self.complete(
            state=state, successful=state == "disconnected", event=Event(state, dict(params))
        )


# -- actions ------------------------------------------------------------------------------------
ComponentT = TypeVar("ComponentT", bound=Component)
ResultT = TypeVar("ResultT")


class Action(Generic[ComponentT, ResultT]):
    """A handle on a running component: ``control_id``, ``payload``, ``state``, ``completed``."""

    def __init__(self, component: ComponentT) -> None:
        self._component = component

    @property
    def control_id(self) -> str:
        """The id the server knows this operation by."""
        return self._component.control_id

    @property
    def payload(self) -> dict[str, Any]:
        """The params of the command that was sent."""
        return self._component.payload

    @property
    def state(self) -> str:
        """The latest state reported by the server (``playing``, ``finished``…)."""
        return self._component.state

    @property
    def completed(self) -> bool:
        """The operation has ended; ``result`` is final."""
        return self._component.completed

    @property
    def result(self) -> ResultT:
        """The result, read live: final once ``completed``."""
        raise NotImplementedError

    async def wait(self, timeout: float | None = None) -> ResultT:
        """Wait for completion and return the result (relaykit addition).

        Raises TimeoutError after ``timeout`` seconds; the component keeps running.
        """
        await self._component.wait(timeout)
        return self.result

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} control_id={self.control_id!r} "
            f"state={self.state!r} completed={self.completed}>"
        )


class PlayAction(Action[PlayComponent, PlayResult]):
    """A running play. ``stop()`` → StopResult, ``volume(db)`` → PlayVolumeResult."""

    @property
    def result(self) -> PlayResult:
        return PlayResult(self._component)

    async def stop(self) -> StopResult:
        """Stop the media; the action then completes with ``finished``."""
        return StopResult(*await self._component._subcommand("stop"))

    async def volume(self, value: float) -> PlayVolumeResult:
        """Set the playback volume to ``value`` dB (-40 to 40)."""
        return PlayVolumeResult(*await self._component._subcommand("volume", volume=float(value)))


class PromptAction(Action[PromptComponent, PromptResult]):
    """A running prompt. ``stop()`` → StopResult, ``volume(db)`` → PromptVolumeResult.

    Interim results (with ``partial_results=True``) are delivered to ``on_partial`` and through
    ``async for partial in action.partials()``; they never complete the action.
    """

    @property
    def result(self) -> PromptResult:
        return PromptResult(self._component)

    async def stop(self, timeout: float = 5.0) -> StopResult:
        """Stop the prompt; once acknowledged, waits (up to ``timeout``) for the terminal event.

        The result then has ``prompt_type`` ``no_input`` and ``reason`` ``stopped``, with any
        digits or speech captured before the stop in ``result``.
        """
        ack = StopResult(*await self._component._subcommand("stop"))
        if ack.successful:
            with contextlib.suppress(TimeoutError):
                await self._component.wait(timeout)
        return ack

    async def volume(self, value: float) -> PromptVolumeResult:
        """Set the prompt's media volume to ``value`` dB (-40 to 40)."""
        return PromptVolumeResult(*await self._component._subcommand("volume", volume=float(value)))

    @property
    def on_partial(self) -> Callable[[dict[str, Any]], Any] | None:
        """Called with each interim ``result`` object (needs ``partial_results=True``)."""
        return self._component.on_partial

    @on_partial.setter
    def on_partial(self, callback: Callable[[dict[str, Any]], Any] | None) -> None:
        self._component.on_partial = callback

    async def partials(self) -> AsyncIterator[dict[str, Any]]:
        """Yield each interim ``result`` object in order, until the prompt completes."""
        while (item := await self._component.partials.get()) is not None:
            yield item


class _StoppableAction(Action[ComponentT, ResultT]):
    """An action whose ``stop()`` waits for the component's final event."""

    async def stop(self, timeout: float = 5.0) -> StopResult:
        """Stop it; once acknowledged, waits (up to ``timeout`` s) for the final event, so
        ``result`` is complete when this returns."""
        ack = StopResult(*await self._component._subcommand("stop"))
        if ack.successful:
            with contextlib.suppress(TimeoutError):
                await self._component.wait(timeout)
        return ack


class RecordAction(_StoppableAction[RecordComponent, RecordResult]):
    """A running recording. ``url`` is known at once; ``stop()`` ends it."""

    @property
    def result(self) -> RecordResult:
        return RecordResult(self._component)

    @property
    def url(self) -> str:
        """Where the file will be (HTTP GET once the recording has finished)."""
        return self._component.url


class DetectAction(_StoppableAction[DetectComponent, DetectResult]):
    """A running detector; ``stop()`` ends it (the result then lists what it detected)."""

    @property
    def result(self) -> DetectResult:
        return DetectResult(self._component)


class TapAction(_StoppableAction[TapComponent, TapResult]):
    """A running tap; ``source_device`` says where the stream comes from; ``stop()`` ends it."""

    @property
    def result(self) -> TapResult:
        return TapResult(self._component)

    @property
    def source_device(self) -> dict[str, Any]:
        return self._component.source_device


class SendDigitsAction(Action[SendDigitsComponent, SendDigitsResult]):
    """Digits being sent; completes once the last key has been played."""

    @property
    def result(self) -> SendDigitsResult:
        return SendDigitsResult(self._component)


class ConnectAction(Action[ConnectComponent[PeerT], ConnectResult[PeerT]]):
    """A connect in progress: ``state`` connecting, then connected or failed; ``result.call``
    is the leg that answered."""

    @property
    def result(self) -> ConnectResult[PeerT]:
        return ConnectResult(self._component)
