"""``Call`` and the ``client.calling`` namespace, with the v2 SDK's names (spec §7.3–§7.5)."""

from __future__ import annotations

__all__ = ["Call", "Calling"]

import asyncio
import inspect
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import RelayError
from ..protocol import calling
from .components import Component, PlayAction, PlayComponent, PromptAction, PromptComponent
from .payloads import build_collect, build_media_list
from .results import AnswerResult, Event, HangupResult, PlayResult, PromptResult

if TYPE_CHECKING:
    from .client import Client

log = logging.getLogger("relaykit.client")

_STATES = ("none", "created", "ringing", "answered", "ending", "ended")


class Call:
    """One call. Blocking methods return a Result; each ``*_async`` returns an Action."""

    def __init__(
        self,
        client: Client,
        *,
        call_id: str | None = None,
        node_id: str | None = None,
        context: str | None = None,
        device: Mapping[str, Any] | None = None,
        state: str = "none",
        direction: str = "inbound",
    ) -> None:
        device = device or {}
        dparams = device.get("params") if isinstance(device.get("params"), dict) else {}
        self.client = client
        self.id = call_id
        self.node_id = node_id
        self.tag = str(uuid.uuid4())
        self.context = context
        self.direction = direction
        self.call_type: str = str(device.get("type", "phone"))
        self.from_number: str | None = dparams.get("from_number")
        self.to_number: str | None = dparams.get("to_number")
        self.timeout: int | None = dparams.get("timeout")
        self.state = state
        self.prev_state = "none"
        self.end_reason: str | None = None
        self.busy = False
        self.failed = False
        self._components: dict[str, Component] = {}
        self._handlers: dict[str, list[Callable[..., Any]]] = {}
        self._state_changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Call id={self.id!r} state={self.state!r} {self.from_number} -> {self.to_number}>"

    # -- properties ---------------------------------------------------------------------------
    @property
    def answered(self) -> bool:
        return self.state == "answered"

    @property
    def active(self) -> bool:
        return self.state != "ended"

    @property
    def ended(self) -> bool:
        return self.state in ("ending", "ended")

    @property
    def device(self) -> dict[str, Any]:
        params: dict[str, Any] = {"from_number": self.from_number, "to_number": self.to_number}
        if self.timeout is not None:
            params["timeout"] = self.timeout
        return {"type": self.call_type, "params": params}

    # -- callbacks ----------------------------------------------------------------------------
    def on(self, name: str, callback: Callable[..., Any]) -> Call:
        """Call ``callback(params)`` on ``name``: a state, ``stateChange``, ``play.<state>``,
        ``play.stateChange`` or ``prompt`` (every collect event)."""
        self._handlers.setdefault(name, []).append(callback)
        return self

    def off(self, name: str, callback: Callable[..., Any] | None = None) -> Call:
        if callback is None:
            self._handlers.pop(name, None)
        elif callback in self._handlers.get(name, []):
            self._handlers[name].remove(callback)
        return self

    def _fire(self, name: str, params: dict[str, Any]) -> None:
        for callback in list(self._handlers.get(name, [])):
            try:
                outcome = callback(params)
                if inspect.isawaitable(outcome):
                    self.client._spawn(outcome)
            except Exception:
                log.exception("! call handler for %r failed", name)

    # -- call control -------------------------------------------------------------------------
    async def answer(self) -> AnswerResult:
        """Answer; successful only if the call really reaches ``answered``."""
        try:
            await self.client.execute(calling.ANSWER, {"node_id": self.node_id, "call_id": self.id})
        except RelayError as exc:
            log.warning("! answer failed: %s", exc)
            return AnswerResult(False, Event("error", {"message": str(exc)}))
        await self.wait_for("answered", "ending", "ended", timeout=self.client.request_timeout)
        return AnswerResult(self.state == "answered", Event(self.state, {"call_state": self.state}))

    async def hangup(self, reason: str = "hangup") -> HangupResult:
        if self.state == "ended":
            return HangupResult(True, self.end_reason, Event("ended", {"call_state": "ended"}))
        try:
            await self.client.execute(
                calling.END, {"node_id": self.node_id, "call_id": self.id, "reason": reason}
            )
        except RelayError as exc:
            log.warning("! hangup failed: %s", exc)
            return HangupResult(False, None, Event("error", {"message": str(exc)}))
        await self.wait_for("ended", timeout=self.client.request_timeout)
        return HangupResult(
            self.state == "ended", self.end_reason, Event(self.state, {"call_state": self.state})
        )

    async def wait_for(self, *events: str | Iterable[str], timeout: float | None = None) -> bool:
        """Wait until the call reaches one of ``events`` (default ``ended``); False on timeout."""
        wanted: set[str] = set()
        for e in events:
            wanted.update([e] if isinstance(e, str) else e)
        wanted = wanted or {"ended"}
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self.state not in wanted:
            if self.state == "ended":
                return False
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._state_changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    async def wait_for_ringing(self) -> bool:
        return await self.wait_for("ringing")

    async def wait_for_answered(self) -> bool:
        return await self.wait_for("answered")

    async def wait_for_ending(self) -> bool:
        return await self.wait_for("ending")

    async def wait_for_ended(self) -> bool:
        return await self.wait_for("ended")

    # -- play ---------------------------------------------------------------------------------
    async def play_async(
        self, media_list: Sequence[Mapping[str, Any]], volume: float = 0
    ) -> PlayAction:
        payload: dict[str, Any] = {"play": build_media_list(media_list)}
        if volume:
            payload["volume"] = float(volume)
        component = PlayComponent(self, payload)
        await component.execute()
        return PlayAction(component)

    async def play(self, media_list: Sequence[Mapping[str, Any]], volume: float = 0) -> PlayResult:
        return await (await self.play_async(media_list, volume)).wait()

    async def play_audio_async(self, url: str, volume: float = 0) -> PlayAction:
        return await self.play_async([{"type": "audio", "url": url}], volume)

    async def play_audio(self, url: str, volume: float = 0) -> PlayResult:
        return await self.play([{"type": "audio", "url": url}], volume)

    async def play_tts_async(
        self, text: str, language: str | None = None, gender: str | None = None, volume: float = 0
    ) -> PlayAction:
        return await self.play_async([_tts(text, language, gender)], volume)

    async def play_tts(
        self, text: str, language: str | None = None, gender: str | None = None, volume: float = 0
    ) -> PlayResult:
        return await self.play([_tts(text, language, gender)], volume)

    async def play_silence_async(self, duration: float) -> PlayAction:
        return await self.play_async([{"type": "silence", "duration": float(duration)}])

    async def play_silence(self, duration: float) -> PlayResult:
        return await self.play([{"type": "silence", "duration": float(duration)}])

    async def play_ringtone_async(
        self, name: str, duration: float | None = None, volume: float = 0
    ) -> PlayAction:
        return await self.play_async([_ringtone(name, duration)], volume)

    async def play_ringtone(
        self, name: str, duration: float | None = None, volume: float = 0
    ) -> PlayResult:
        return await self.play([_ringtone(name, duration)], volume)

    # -- prompt -------------------------------------------------------------------------------
    async def prompt_async(
        self, prompt_type: str, media_list: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> PromptAction:
        """Play ``media_list`` and collect input; kwargs as the v2 SDK (§7.5) plus
        ``partial_results``, ``send_start_of_input`` and ``barge_in``."""
        payload: dict[str, Any] = {
            "play": build_media_list(media_list),
            "collect": build_collect(prompt_type, kwargs),
        }
        if kwargs.get("volume") is not None:
            payload["volume"] = float(kwargs["volume"])
        component = PromptComponent(self, payload, prompt_type)
        await component.execute()
        return PromptAction(component)

    async def prompt(
        self, prompt_type: str, media_list: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> PromptResult:
        return await (await self.prompt_async(prompt_type, media_list, **kwargs)).wait()

    async def prompt_audio_async(self, prompt_type: str, url: str, **kwargs: Any) -> PromptAction:
        return await self.prompt_async(prompt_type, [{"type": "audio", "url": url}], **kwargs)

    async def prompt_audio(self, prompt_type: str, url: str, **kwargs: Any) -> PromptResult:
        return await self.prompt(prompt_type, [{"type": "audio", "url": url}], **kwargs)

    async def prompt_tts_async(self, prompt_type: str, text: str, **kwargs: Any) -> PromptAction:
        media = _tts(text, kwargs.pop("language", None), kwargs.pop("gender", None))
        return await self.prompt_async(prompt_type, [media], **kwargs)

    async def prompt_tts(self, prompt_type: str, text: str, **kwargs: Any) -> PromptResult:
        return await (await self.prompt_tts_async(prompt_type, text, **kwargs)).wait()

    async def prompt_ringtone_async(
        self, prompt_type: str, name: str, **kwargs: Any
    ) -> PromptAction:
        media = _ringtone(name, kwargs.pop("duration", None), convert=False)
        return await self.prompt_async(prompt_type, [media], **kwargs)

    async def prompt_ringtone(self, prompt_type: str, name: str, **kwargs: Any) -> PromptResult:
        return await (await self.prompt_ringtone_async(prompt_type, name, **kwargs)).wait()

    # -- event routing (called by Calling) ----------------------------------------------------
    def _register(self, component: Component) -> None:
        self._components[component.control_id] = component

    def _unregister(self, component: Component) -> None:
        self._components.pop(component.control_id, None)

    def _on_state(self, params: dict[str, Any]) -> None:
        state = params.get("call_state")
        if state not in _STATES:
            log.warning("! unknown call_state %r", state)
            return
        if state != self.state:
            self.prev_state, self.state = self.state, state
        if isinstance(params.get("end_reason"), str):
            self.end_reason = params["end_reason"]
            self.busy = self.end_reason == "busy"
            self.failed = self.end_reason == "error"
        self._state_changed.set()
        self._state_changed = asyncio.Event()
        self._fire("stateChange", params)
        self._fire(state, params)
        if state == "ended":
            for component in list(self._components.values()):
                component.terminate(params)
            self._handlers.clear()

    def _on_component_event(self, event_type: str, params: dict[str, Any]) -> None:
        if event_type == calling.PLAY_EVENT:
            state = params.get("state")
            self._fire("play.stateChange", params)
            self._fire(f"play.{state}", params)
        elif event_type == calling.COLLECT_EVENT:
            self._fire("prompt", params)
        component = self._components.get(str(params.get("control_id")))
        if component is not None and component.event_type == event_type:
            component.on_event(params)

    def _connection_lost(self) -> None:
        """Nothing will ever complete the running components: end them now."""
        for component in list(self._components.values()):
            component.terminate(error="connection to the RELAY server lost")


def _tts(text: str, language: str | None, gender: str | None) -> dict[str, Any]:
    media: dict[str, Any] = {"type": "tts", "text": text}
    if language is not None:
        media["language"] = language
    if gender is not None:
        media["gender"] = gender
    return media


def _ringtone(name: str, duration: float | None, *, convert: bool = True) -> dict[str, Any]:
    media: dict[str, Any] = {"type": "ringtone", "name": name}
    if duration is not None:
        media["duration"] = float(duration) if convert else duration
    return media


class Calling:
    """``client.calling``: the live calls and the routing of calling events to them."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._calls: dict[str, Call] = {}
        self.on_incoming: Callable[[Call], Any] | None = None

    @property
    def calls(self) -> list[Call]:
        return list(self._calls.values())

    async def receive(self, contexts: list[str], handler: Callable[[Call], Any]) -> None:
        """v2 ``client.calling.receive``: offer inbound calls on ``contexts`` to ``handler``."""
        self.on_incoming = handler
        await self.client.receive(list(contexts))

    def dispatch(self, event_type: str, params: dict[str, Any]) -> None:
        if event_type == calling.CALL_RECEIVE:
            call_id = params.get("call_id")
            if not isinstance(call_id, str):
                log.warning("! calling.call.receive without call_id")
                return
            device = params.get("device")
            call = Call(
                self.client,
                call_id=call_id,
                node_id=params.get("node_id"),
                context=params.get("context"),
                device=device if isinstance(device, dict) else None,
                state=str(params.get("call_state", "created")),
                direction=str(params.get("direction", "inbound")),
            )
            self._calls[call_id] = call
            if self.on_incoming is not None:
                outcome = self.on_incoming(call)
                if inspect.isawaitable(outcome):
                    self.client._spawn(outcome)
            return
        call = self._calls.get(str(params.get("call_id")))
        if call is None:
            return
        if event_type == calling.CALL_STATE:
            call._on_state(params)
            if call.state == "ended":
                self._calls.pop(call.id or "", None)
        else:
            call._on_component_event(event_type, params)

    def connection_lost(self) -> None:
        for call in list(self._calls.values()):
            call._connection_lost()
