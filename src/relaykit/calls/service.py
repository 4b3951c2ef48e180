"""The call interface: every way a call is driven goes through :class:`CallService`.

Adapters sit around it: the RELAY WebSocket sessions (commands from IVRs), the SIP gateway and
the virtual callers (the far ends), later the cluster bus and the browser phone. They hand it
plain data (ids, validated ``protocol.calling`` params, audio) and get events back as data
(:mod:`relaykit.calls.events`), so an adapter could as well sit in another process.

Commands from an IVR name a project and are checked against the call's project: another
project's call looks exactly like no call at all (:class:`NotFoundError`).
"""

from __future__ import annotations

__all__ = ["CallService", "Dialer", "Receivers", "TapSink", "TapTargets"]

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from ..errors import (
    LimitExceededError,
    MediaError,
    NotFoundError,
    ProtocolError,
    UnsupportedLanguageError,
)
from ..media import collector as collect_outputs
from ..media.bridge import BridgedAudio
from ..media.components import MediaComponent
from ..media.detect import DigitDetector, FaxToneDetector, MachineDetector
from ..media.engine import (
    CollectOutputEvent,
    ComponentUpdate,
    EngineEvent,
    ItemEnded,
    ItemStarted,
    MediaEngine,
    PlaybackEvent,
    SpeechCaptured,
)
from ..media.engine import KeyDetected as EngineKey
from ..media.frames import SAMPLE_RATE
from ..media.record import Recorder
from ..media.send_digits import DigitSender
from ..media.tap import AudioTap
from ..protocol import calling
from .call import Call, ComponentResource, Connect, EventSink, Leg
from .dialing import RingOutcome, ring_groups
from .events import (
    CallerActed,
    CallEvent,
    CallOffered,
    CallStateChanged,
    ComponentChanged,
    DialStateChanged,
    InputStarted,
    KeyDetected,
    MediaEnded,
    MediaStarted,
    PlayStateChanged,
    PromptEnded,
    PromptPartial,
    SpeechHeard,
)
from .loader import MediaLoader
from .recordings import RecordingStore
from .speech import SpeechRecognition
from .state import CallState

log = logging.getLogger("relaykit.calls")


class Receivers(Protocol):
    """Who takes inbound calls: picks one consumer of a project's context (the session layer)."""

    async def pick(self, project: str, context: str, timeout: float) -> EventSink:
        """A sink for the offer; raises RelayTimeoutError when none is there in time."""


class Dialer(Protocol):
    """Places outbound calls to one kind of device (``sip``, ``phone``…).

    ``calling.begin`` places one call with :meth:`begin`; ``calling.dial`` and
    ``calling.connect`` check every device first, then ring them in groups
    (:mod:`relaykit.calls.dialing`).
    """

    def check(self, device: calling.Device) -> None:
        """Raise ProtocolError naming the field when the device's params are not valid."""

    async def begin(
        self,
        project: str,
        owner: EventSink,
        tag: str | None,
        device: calling.Device,
        *,
        context: str = "",
        peer: Call | None = None,
    ) -> Call:
        """Create the call with :meth:`CallService.create_outbound` (state events follow) and
        start ringing the device; ``peer`` is the call a connect places it for.

        Raises ProtocolError naming the field when the device's params are not valid, or
        another RelayError when it cannot be called.
        """


class TapSink(Protocol):
    """Where a tap's audio goes (an RTP stream, a WebSocket): opened by :class:`TapTargets`."""

    @property
    def source_device(self) -> dict[str, Any]:
        """Where the stream comes from, as v2's ``source_device`` (type and params)."""

    def write(self, frame: np.ndarray) -> bool:
        """Take one 20 ms frame (16 kHz int16); False once the target is gone."""

    def close(self) -> None:
        """Stop streaming and free the socket (idempotent)."""


class TapTargets(Protocol):
    """Opens tap targets (the server's network side)."""

    async def open(self, device: calling.TapDevice) -> TapSink:
        """Reach ``device``; raises ConnectionError saying why when it cannot."""


TAP_OPEN_TIMEOUT = 5.0  # seconds to reach a tap target before the command fails


class CallService:
    """Owns the calls of this node and their components.

    Args:
        engine: the media engine the calls' audio runs on.
        loader: turns RELAY media into samples (TTS, files, URLs).
        speech: decodes utterances off the media clock.
        node_id: this node's id, carried by every event.
        record_calls: keep both audio channels of every call (WAVs, timelines), streamed to
            a temporary file per call.
        max_components_per_call: components (plays, prompts, records…) one call may run at once.
        recordings: where ``calling.record`` writes (a temporary directory by default).
        taps: opens ``calling.tap`` targets (None: taps are refused).
        max_call_duration: seconds after which a call is ended with reason ``maxDuration``
            (None: no limit).
    """

    def __init__(
        self,
        *,
        engine: MediaEngine,
        loader: MediaLoader,
        speech: SpeechRecognition,
        node_id: str,
        record_calls: bool = True,
        max_components_per_call: int = 32,
        recordings: RecordingStore | None = None,
        taps: TapTargets | None = None,
        max_call_duration: float | None = None,
    ) -> None:
        self.engine = engine
        self.loader = loader
        self.speech = speech
        self.node_id = node_id
        self.record_calls = record_calls
        self.max_components_per_call = max_components_per_call
        self.recordings = recordings if recordings is not None else RecordingStore()
        self.taps = taps
        if max_call_duration is not None and not max_call_duration > 0:
            raise ValueError("max_call_duration must be a positive number of seconds")
        self.max_call_duration = max_call_duration
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        self._loading: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.receivers: Receivers | None = None
        self.dialers: dict[str, Dialer] = {}
        self._calls: dict[str, Call] = {}
        self._owned: dict[int, int] = {}  # id(owner) -> its live calls (owned_by in O(1))
        self._dials: dict[asyncio.Task[None], EventSink] = {}  # calling.dial runs, by owner
        self._on_new_call: list[Callable[[Call], None]] = []
        self.calls_present = asyncio.Event()  # set while any call exists (the clock waits on it)

    # -- reading ------------------------------------------------------------------------------
    @property
    def calls(self) -> Mapping[str, Call]:
        """Every live call of this node, by id (read-only view)."""
        return self._calls

    def __iter__(self) -> Iterator[Call]:
        return iter(list(self._calls.values()))

    def get(self, project: str, call_id: str) -> Call:
        """The live call ``call_id`` of ``project``; NotFoundError otherwise (also for another
        project's call, which must look exactly like no call)."""
        call = self._calls.get(call_id)
        if call is None or call.project != project or call.ended:
            raise NotFoundError(f"call {call_id!r} not found")
        return call

    def owned_by(self, owner: EventSink) -> int:
        """How many live calls ``owner`` holds."""
        return self._owned.get(id(owner), 0)

    def _own(self, owner: EventSink | None, change: int) -> None:
        if owner is not None:
            held = self._owned.get(id(owner), 0) + change
            if held:
                self._owned[id(owner)] = held
            else:
                del self._owned[id(owner)]

    def on_new_call(self, listener: Callable[[Call], None]) -> Callable[[], None]:
        """Call ``listener(call)`` for every call created from now on (browser phone, tests)."""
        self._on_new_call.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._on_new_call.remove(listener)

        return remove

    def call_time(self, call: Call) -> float:
        """Seconds of media time since the call began."""
        return self.engine.call_time(call.media)

    def is_collecting(self, call: Call) -> bool:
        """Whether a prompt is collecting input on the call (keys and speech count)."""
        return self.engine.is_collecting(call.call_id)

    # -- creating calls -----------------------------------------------------------------------
    async def offer(
        self,
        *,
        project: str,
        context: str,
        from_number: str,
        to_number: str,
        timeout: float,
        leg: Leg | None = None,
        via: str = "",
    ) -> Call:
        """An inbound call to ``context``: created, then offered to one consumer of it.

        Raises RelayTimeoutError when no consumer of the context is there within ``timeout``.
        """
        if self.receivers is None:
            raise RuntimeError("no receivers: nothing takes inbound calls on this node")
        owner = await self.receivers.pick(project, context, timeout)
        call = self._new_call(project, context, from_number, to_number, "inbound", owner, leg)
        self._emit(
            call,
            CallOffered(
                call_id=call.call_id,
                node_id=self.node_id,
                at=0.0,
                context=context,
                from_number=from_number,
                to_number=to_number,
                via=via,
            ),
        )
        return call

    def create_outbound(
        self,
        *,
        project: str,
        owner: EventSink,
        context: str,
        from_number: str,
        to_number: str,
        leg: Leg,
        tag: str | None = None,
        device: dict[str, Any] | None = None,
        via: str = "",
        peer: Call | None = None,
    ) -> Call:
        """A call placed by ``owner`` (calling.begin/dial, or a connect of ``peer``); its
        ``created`` state is sent."""
        call = self._new_call(project, context, from_number, to_number, "outbound", owner, leg)
        call.tag, call.device, call.peer = tag, device, peer
        self._emit(
            call,
            CallOffered(
                call_id=call.call_id,
                node_id=self.node_id,
                at=0.0,
                context=context,
                from_number=from_number,
                to_number=to_number,
                direction="outbound",
                via=via,
            ),
        )
        self.emit_state(call)
        return call

    def _new_call(
        self,
        project: str,
        context: str,
        from_number: str,
        to_number: str,
        direction: str,
        owner: EventSink | None,
        leg: Leg | None,
    ) -> Call:
        media = self.engine.add_call(str(uuid.uuid4()), record=self.record_calls)
        call = Call(
            call_id=media.call_id,
            project=project,
            context=context,
            from_number=from_number,
            to_number=to_number,
            node_id=self.node_id,
            media=media,
            direction=direction,
            owner=owner,
            leg=leg,
        )
        self._calls[call.call_id] = call
        self._own(owner, 1)
        self.calls_present.set()
        if self.max_call_duration is not None:
            self._deadlines[call.call_id] = asyncio.get_running_loop().call_later(
                self.max_call_duration, self._too_long, call
            )
        for listener in list(self._on_new_call):
            listener(call)
        return call

    # -- placing calls to devices, bridging them ----------------------------------------------
    def dialer(self, device: calling.Device) -> Dialer:
        """The dialer of ``device``'s type; ProtocolError naming its ``type`` field if none."""
        dialer = self.dialers.get(device.type)
        if dialer is None:
            if not self.dialers:
                why = "outbound calls need the SIP gateway (sip=...) or virtual callees"
            else:
                why = (
                    f"cannot call {device.type!r} devices here; this server calls: "
                    f"{', '.join(sorted(self.dialers))}"
                )
            raise ProtocolError(why, field=f"{device.field}.type")
        return dialer

    def check_devices(self, groups: Sequence[Sequence[calling.Device]]) -> None:
        """Every device has a dialer and valid params; ProtocolError names the first that not."""
        for group in groups:
            for device in group:
                self.dialer(device).check(device)

    def dial(
        self,
        project: str,
        owner: EventSink,
        tag: str,
        groups: Sequence[Sequence[calling.Device]],
        *,
        context: str = "",
    ) -> None:
        """``calling.dial``: check every device, then ring the groups in the background;
        ``calling.call.dial`` events (``dialing``, then ``answered`` or ``failed``) go to
        ``owner``, after the command's reply."""
        self.check_devices(groups)
        task = asyncio.get_running_loop().create_task(
            self._dial(project, owner, tag, groups, context)
        )
        self._dials[task] = owner
        task.add_done_callback(lambda done: self._dials.pop(done, None))

    async def _dial(
        self,
        project: str,
        owner: EventSink,
        tag: str,
        groups: Sequence[Sequence[calling.Device]],
        context: str,
    ) -> None:
        self._dial_event(owner, tag, "dialing")

        def place(device: calling.Device) -> Awaitable[Call]:
            return self.dialer(device).begin(project, owner, tag, device, context=context)

        try:
            outcome = await ring_groups(groups, place, self.end_call, [])
        except Exception:
            log.exception("! calling.dial %s failed", tag)
            outcome = RingOutcome(None)
        winner = outcome.winner
        if winner is None:
            self._dial_event(
                owner, tag, "failed", reason=outcome.reason, source=outcome.source or None
            )
            return
        self._dial_event(
            owner,
            tag,
            "answered",
            call_id=winner.call_id,
            call={
                "call_id": winner.call_id,
                "node_id": winner.node_id,
                "tag": tag,
                "device": winner.device or {},
                "dial_winner": True,
            },
        )

    def _dial_event(
        self, owner: EventSink, tag: str, dial_state: str, *, call_id: str = "", **fields: Any
    ) -> None:
        self.notify(
            owner,
            DialStateChanged(
                call_id=call_id,
                node_id=self.node_id,
                at=0.0,
                tag=tag,
                dial_state=dial_state,
                **fields,
            ),
        )

    def connect(self, project: str, params: calling.ConnectParams) -> None:
        """``calling.connect``: ring ``params.devices`` (ringback playing to the call) and
        bridge the call to the first that answers.

        ``connecting`` follows the command's reply; then ``connected`` (on both legs, each
        naming the other as its ``peer``) or ``failed`` with the last leg's end reason.
        ProtocolError when the call is already connecting or connected, or a device cannot be
        called here (naming its field).
        """
        call = self.get(project, params.call.call_id)
        if call.connect is not None:
            raise ProtocolError(f"the call is already {call.connect.state}", field="call_id")
        if call.owner is None:
            raise ProtocolError("the call has no consumer to report to", field="call_id")
        self.check_devices(params.devices)
        running = self.engine.component_count(call.call_id)
        if running >= self.max_components_per_call:
            raise LimitExceededError(f"call already runs {running} components, the limit")
        if params.ringback:
            self.loader.prepare(params.ringback, "ringback")  # refused now if it cannot play
        connect = Connect(str(uuid.uuid4()), call, ringback=params.ringback)
        call.connect = connect
        devices = [[{"type": d.type, "params": dict(d.params)} for d in g] for g in params.devices]
        event = ComponentChanged(
            **self._stamp(call),
            control_id=connect.control_id,
            component="connect",
            state="connecting",
            params={"devices": devices},
        )
        call.log.append(event)
        owner = call.owner
        if owner is not None:
            asyncio.get_running_loop().call_soon(owner.deliver, event)
        self._play_ringback(connect)
        task = asyncio.get_running_loop().create_task(self._connect(connect, params.devices))
        connect.task = task
        call.tasks.add(task)
        task.add_done_callback(call.tasks.discard)

    async def _connect(self, connect: Connect, groups: Sequence[Sequence[calling.Device]]) -> None:
        call = connect.call
        owner = call.owner
        assert owner is not None  # connect() checked

        def place(device: calling.Device) -> Awaitable[Call]:
            dialer = self.dialer(device)
            return dialer.begin(call.project, owner, None, device, context=call.context, peer=call)

        try:
            outcome = await ring_groups(groups, place, self.end_call, connect.legs)
        except Exception:
            log.exception("! %s: connect failed", call.call_id)
            outcome = RingOutcome(None)
        winner = outcome.winner
        if winner is None:
            self._connect_over(connect, "failed", outcome.reason)
            return
        self._stop_ringback(connect)
        connect.state, connect.peer = "connected", winner
        call.peer, winner.connect = winner, connect
        for leg, other in ((call, winner), (winner, call)):
            self.engine.start_component(leg.call_id, BridgedAudio(connect.control_id, other.media))
        for leg, other in ((call, winner), (winner, call)):
            self._connect_event(leg, connect, "connected", other)

    def disconnect(self, project: str, call_id: str) -> None:
        """``calling.disconnect``: end the call's bridge (``disconnected`` on both legs, which
        stay up) or its connect still ringing (``failed``, reason ``cancel``), right after the
        command's reply. ProtocolError when the call is not connecting or connected."""
        call = self.get(project, call_id)
        connect = call.connect
        if connect is None:
            raise ProtocolError("the call is not connected", field="call_id")
        asyncio.get_running_loop().call_soon(self._disconnect, connect)

    def _disconnect(self, connect: Connect) -> None:
        if connect.state == "connected":
            self._connect_over(connect, "disconnected", "disconnect")
        else:
            self._connect_over(connect, "failed", "cancel")

    def _connect_over(self, connect: Connect, state: str, reason: str) -> None:
        """End ``connect``: ``failed`` (its ringing legs cancelled) or ``disconnected`` (the
        bridge taken down); both calls stay up. Idempotent."""
        call = connect.call
        if call.connect is not connect:
            return
        task = connect.task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        for leg in connect.legs:
            if leg is not connect.peer and not leg.ended:
                self.end_call(leg, "cancel")
        self._stop_ringback(connect)
        peer = connect.peer
        legs = [call] if peer is None else [call, peer]
        for leg in legs:
            other = connect.other(leg)
            self.dispatch(self.engine.stop(leg.call_id, connect.control_id))
            leg.connect = None
            if leg.peer is other:
                leg.peer = None
            self._connect_event(leg, connect, state, other, reason=reason)

    def _connect_call_ended(self, call: Call) -> None:
        """``call`` is ending: its connect fails or its bridge ends; the A leg ending ends the
        peer too (``hangup``), the peer ending leaves the A leg up."""
        connect = call.connect
        if connect is None:
            return
        peer = connect.peer
        if connect.state == "connecting":
            self._connect_over(connect, "failed", "hangup")
            return
        self._connect_over(connect, "disconnected", "hangup")
        if call is connect.call and peer is not None and not peer.ended:
            self.end_call(peer, "hangup")

    def _stop_ringback(self, connect: Connect) -> None:
        if connect.ringback and self.engine.has_component(
            connect.call.call_id, connect.ringback_id
        ):
            self.dispatch(self.engine.stop(connect.call.call_id, connect.ringback_id))

    def _play_ringback(self, connect: Connect) -> None:
        if not connect.ringback:
            return
        call = connect.call
        items = self.loader.prepare(connect.ringback, "ringback")
        self.engine.start_play(call.call_id, connect.ringback_id, items)
        connect.ringback_from = self.call_time(call)
        self._load(call, connect.ringback_id, items, connect.ringback)

    def _ringback_played(self, call: Call, event: PlaybackEvent) -> None:
        """The ringback's play events stay off the wire; a ringback that played to its end
        while the legs still ring starts over."""
        connect = call.connect
        assert connect is not None
        if event.state == "error":
            log.warning("! %s: ringback failed: %s", call.call_id, event.error)
        elif (
            event.state == "finished"
            and event.cause is None
            and connect.state == "connecting"
            and not call.ended
            and event.at > connect.ringback_from  # it played: no busy loop on empty media
        ):
            self._play_ringback(connect)

    def _connect_event(
        self,
        call: Call,
        connect: Connect,
        state: str,
        other: Call | None,
        *,
        reason: str | None = None,
    ) -> None:
        params: dict[str, Any] = {}
        if other is not None:
            params["peer"] = _peer_info(other)
            params["party"] = (
                other.to_number if other.direction == "outbound" else other.from_number
            )
        self._emit(
            call,
            ComponentChanged(
                **self._stamp(call),
                control_id=connect.control_id,
                component="connect",
                state=state,
                params=params,
                final=state in ("failed", "disconnected"),
                reason=reason if state in ("failed", "disconnected") else None,
            ),
        )

    # -- the far end (adapters that own a leg) ------------------------------------------------
    def far_end_ringing(self, call: Call) -> None:
        """An outbound call's device rings (SIP 180/183)."""
        if call.move_to(CallState.RINGING):
            self.emit_state(call)

    def far_end_answered(self, call: Call) -> None:
        """An outbound call's device answered."""
        if call.move_to(CallState.ANSWERED):
            self.emit_state(call)

    def far_end_hung_up(self, call: Call, reason: str = "hangup") -> None:
        """The far end hung up or the call failed there (busy, noAnswer, cancel, error)."""
        self.end_call(call, reason)

    def caller_acted(
        self,
        call: Call,
        action: str,
        label: str = "",
        end: float | None = None,
        *,
        at: float | None = None,
    ) -> None:
        """Log what the far end did (pressed, said, played, hung up), from call time ``at``
        (now by default) to ``end``."""
        self._emit(call, CallerActed(**self._stamp(call, at), action=action, label=label, end=end))

    def inject_audio(
        self, call: Call, samples: np.ndarray, on_done: Callable[[], None] | None = None
    ) -> None:
        """Queue far-end audio (16 kHz int16) into the call; ``on_done`` once it has played."""
        call.media.push_inbound(samples, on_done)

    def on_outbound_audio(
        self, call: Call, listener: Callable[[np.ndarray], None]
    ) -> Callable[[], None]:
        """Hand ``listener`` every 20 ms frame (16 kHz int16) the IVR plays on ``call``, during
        the media tick (it must not block, and must copy the frame to keep it). Frames in which
        nothing plays are not handed over. One listener per call: the adapter that owns its far
        end. Returns a function that removes the listener."""
        media = call.media
        if media.on_outbound is not None:
            raise RuntimeError(f"call {call.call_id}'s outbound audio already has a listener")
        media.on_outbound = listener

        def remove() -> None:
            if media.on_outbound is listener:
                media.on_outbound = None

        return remove

    def inject_key(self, call: Call, key: str) -> None:
        """A key received out of band (RFC 4733, SIP INFO)."""
        if not call.ended:
            self.dispatch(self.engine.inject_key(call.call_id, key))

    # -- commands from IVRs -------------------------------------------------------------------
    def answer(self, project: str, call_id: str, owner: EventSink) -> None:
        """``calling.answer``: the answering consumer owns the call from now on."""
        call = self.get(project, call_id)
        if call.state is CallState.ANSWERED:
            return
        self._own(call.owner, -1)
        call.owner = owner
        self._own(owner, 1)
        call.move_to(CallState.ANSWERED)
        if call.leg is not None:
            call.leg.answered(call)
        # the state event follows the command's reply
        asyncio.get_running_loop().call_soon(self.emit_state, call)

    def end(self, project: str, call_id: str, reason: str) -> None:
        """``calling.end``: the call ends right after the command's reply."""
        call = self.get(project, call_id)
        asyncio.get_running_loop().call_soon(self.end_call, call, reason)

    def play(self, project: str, play: calling.PlayParams) -> None:
        """``calling.play``: start playing ``play.play`` on the call."""
        call = self.get(project, play.call.call_id)
        self._check_new_component(call, play.control_id)
        items = self.loader.prepare(play.play)
        self.engine.start_play(call.call_id, play.control_id, items, play.volume)
        self._load(call, play.control_id, items, play.play)

    def prompt(self, project: str, prompt: calling.PlayAndCollectParams) -> None:
        """``calling.play_and_collect``: play the media and collect digits and/or speech."""
        call = self.get(project, prompt.call.call_id)
        self._check_new_component(call, prompt.control_id)
        speech = prompt.collect.speech
        if speech is not None:
            if not self.speech.supports(speech.language):
                supported = ", ".join(self.speech.languages)
                raise ProtocolError(
                    f"unsupported speech language {speech.language!r}; supported: {supported}",
                    field="collect.speech.language",
                )
            try:
                self.speech.check(speech.engine, speech.language, speech.hints)
            except MediaError as exc:  # unsupported languages included: it is one
                field = "language" if isinstance(exc, UnsupportedLanguageError) else "engine"
                raise ProtocolError(str(exc), field=f"collect.speech.{field}") from None
            self.speech.prepare()
        items = self.loader.prepare(prompt.play)
        self.engine.start_prompt(
            call.call_id, prompt.control_id, items, prompt.collect, prompt.volume
        )
        self._load(call, prompt.control_id, items, prompt.play)

    def stop(self, project: str, call_id: str, control_id: str) -> None:
        """Stop a component; its terminal events follow the command's reply (§5.2)."""
        call = self.get(project, call_id)
        if not self.engine.has_component(call.call_id, control_id):
            raise NotFoundError(f"control_id {control_id!r} not found")
        asyncio.get_running_loop().call_soon(
            lambda: self.dispatch(self.engine.stop(call.call_id, control_id))
        )

    def set_volume(self, project: str, call_id: str, control_id: str, volume_db: float) -> None:
        call = self.get(project, call_id)
        if not self.engine.set_volume(call.call_id, control_id, volume_db):
            raise NotFoundError(f"control_id {control_id!r} not found")

    def record(self, project: str, params: calling.RecordParams) -> str:
        """``calling.record``: record the call into a new file; returns its URL.

        ProtocolError naming ``record.audio.format`` when that format cannot be written here.
        """
        call = self.get(project, params.call.call_id)
        self._check_new_component(call, params.control_id)
        audio = params.audio
        record_format = audio.format or self.recordings.default_format
        recording = self.recordings.create(record_format, 2 if audio.stereo else 1)
        timed = audio.initial_timeout > 0 or audio.end_silence_timeout > 0
        recorder = Recorder(
            params.control_id,
            recording.write,
            direction=audio.direction,
            stereo=audio.stereo,
            beep_first=audio.beep,
            initial_timeout=audio.initial_timeout,
            end_silence_timeout=audio.end_silence_timeout,
            terminators=audio.terminators,
            vad=self.engine.voice_detector() if timed else None,
        )
        self._start_component(
            call,
            recorder,
            "recording",
            {"record": audio.to_wire(record_format), "url": recording.url},
            close=lambda: {"size": recording.close()},
        )
        return recording.url

    def send_digits(self, project: str, params: calling.SendDigitsParams) -> None:
        """``calling.send_digits``: DTMF tones into what the far end hears."""
        call = self.get(project, params.call.call_id)
        self._check_new_component(call, params.control_id)
        sender = DigitSender(params.control_id, params.digits)
        self._start_component(call, sender, "sending", {"digits": params.digits})

    def detect(self, project: str, params: calling.DetectParams) -> None:
        """``calling.detect``: keys, fax tones or an answering machine in the caller's audio."""
        call = self.get(project, params.call.call_id)
        self._check_new_component(call, params.control_id)
        spec = params.detector
        detector: MediaComponent
        if isinstance(spec, calling.DigitDetect):
            detector = DigitDetector(params.control_id, params.timeout, spec.digits)
        elif isinstance(spec, calling.FaxDetect):
            detector = FaxToneDetector(params.control_id, params.timeout, spec.tone)
        else:
            detector = MachineDetector(
                params.control_id,
                params.timeout,
                self.engine.voice_detector(),
                initial_timeout=spec.initial_timeout,
                end_silence_timeout=spec.end_silence_timeout,
                machine_voice_threshold=spec.machine_voice_threshold,
                machine_words_threshold=spec.machine_words_threshold,
            )
        static = {"type": spec.type, "detect": spec.to_wire(), "timeout": params.timeout}
        self._start_component(call, detector, "detecting", static)

    async def tap(self, project: str, params: calling.TapParams) -> dict[str, Any]:
        """``calling.tap``: stream the call's audio to ``params.device``; returns v2's
        ``source_device``. ProtocolError naming ``device`` when the target cannot be reached."""
        call = self.get(project, params.call.call_id)
        self._check_new_component(call, params.control_id)
        if self.taps is None:
            raise ProtocolError("taps are not available on this server", field="device")
        try:
            sink = await asyncio.wait_for(self.taps.open(params.device), TAP_OPEN_TIMEOUT)
        except TimeoutError:
            raise ProtocolError(
                f"tap target not reachable within {TAP_OPEN_TIMEOUT:g} s", field="device"
            ) from None
        except ConnectionError as exc:
            raise ProtocolError(f"tap target not reachable: {exc}", field="device") from None
        try:  # the call may have ended, or the control_id been taken, while connecting
            call = self.get(project, params.call.call_id)
            self._check_new_component(call, params.control_id)
        except Exception:
            sink.close()
            raise

        def close() -> dict[str, Any]:
            sink.close()
            return {}

        tap = AudioTap(params.control_id, sink.write, params.direction)
        static = {"tap": params.tap_to_wire(), "device": params.device.to_wire()}
        self._start_component(call, tap, "tapping", static, close=close)
        return sink.source_device

    def _start_component(
        self,
        call: Call,
        component: MediaComponent,
        state: str,
        params: dict[str, Any],
        *,
        close: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """Run ``component`` in the engine; its start is logged now and sent after the reply."""
        try:
            self.engine.start_component(call.call_id, component)
        except Exception:
            if close is not None:
                close()
            raise
        call.resources[component.control_id] = ComponentResource(component.kind, params, close)
        event = ComponentChanged(
            **self._stamp(call),
            control_id=component.control_id,
            component=component.kind,
            state=state,
            params=dict(params),
        )
        call.log.append(event)
        owner = call.owner
        if owner is not None:
            asyncio.get_running_loop().call_soon(owner.deliver, event)

    def _component_changed(self, call: Call, stamp: dict[str, Any], event: ComponentUpdate) -> None:
        resource = call.resources.get(event.control_id)
        params = {**(resource.params if resource is not None else {}), **event.params}
        if event.final and resource is not None:
            del call.resources[event.control_id]
            params.update(self._release(resource))
        self._emit(
            call,
            ComponentChanged(
                **stamp,
                control_id=event.control_id,
                component=event.kind,
                state=event.state,
                params=params,
                final=event.final,
                reason=event.reason,
            ),
        )

    @staticmethod
    def _release(resource: ComponentResource) -> dict[str, Any]:
        if resource.close is None:
            return {}
        try:
            return resource.close()
        except Exception:
            log.exception("! closing a %s component failed", resource.kind)
            return {}

    def _check_new_component(self, call: Call, control_id: str) -> None:
        if self.engine.has_component(call.call_id, control_id):
            raise ProtocolError("is already in use on this call", field="control_id")
        running = self.engine.component_count(call.call_id)
        if running >= self.max_components_per_call:
            raise LimitExceededError(f"call already runs {running} components, the limit")

    def _load(self, call: Call, control_id: str, items: list[Any], media: Any) -> None:
        """Load the media within the call's project budget; the load is cancelled when the
        component's playback ends before it is done."""
        if self.loader.load_now(items, media, call.project):
            return  # nothing to wait for (speech already synthesised, silence, ringtones)
        task = self._spawn(call, self.loader.load(items, media, call.project))
        key = (call.call_id, control_id)
        self._loading[key] = task
        task.add_done_callback(
            lambda t: self._loading.pop(key, None) if self._loading.get(key) is t else None
        )

    @staticmethod
    def _spawn(call: Call, coro: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        call.tasks.add(task)
        task.add_done_callback(call.tasks.discard)
        return task

    # -- ending -------------------------------------------------------------------------------
    def end_call(self, call: Call, reason: str) -> None:
        """``ending``, then every component's terminal event, then ``ended``.

        Causal order: a client that gets a prompt's result because the call ended already
        knows the call is ending (``call.ended`` is true in both SDKs).
        """
        if call.ended:
            return
        deadline = self._deadlines.pop(call.call_id, None)
        if deadline is not None:
            deadline.cancel()
        call.end_reason = reason
        if call.leg is not None:
            call.leg.ended(call, reason)
        call.move_to(CallState.ENDING)
        self.emit_state(call)
        self._connect_call_ended(call)
        self.dispatch(self.engine.end_call(call.call_id))
        for resource in call.resources.values():  # none should be left; never leak one
            self._release(resource)
        call.resources.clear()
        for task in call.tasks:
            task.cancel()
        call.move_to(CallState.ENDED)
        self.emit_state(call)
        if self._calls.pop(call.call_id, None) is not None:
            self._own(call.owner, -1)

    def _too_long(self, call: Call) -> None:
        self._deadlines.pop(call.call_id, None)
        if not call.ended:
            log.info(
                "= call %s reached max_call_duration (%g s)", call.call_id, self.max_call_duration
            )
            self.end_call(call, "maxDuration")

    def end_all(self, reason: str = "hangup", *, owner: EventSink | None = None) -> None:
        """End every call and ``calling.dial`` (of ``owner`` only, if given)."""
        for task, dialer in list(self._dials.items()):
            if owner is None or dialer is owner:
                task.cancel()
        for call in list(self._calls.values()):
            if owner is None or call.owner is owner:
                self.end_call(call, reason)

    # -- events -------------------------------------------------------------------------------
    def emit_state(self, call: Call) -> None:
        self._emit(
            call,
            CallStateChanged(
                **self._stamp(call),
                state=call.state.value,
                from_number=call.from_number,
                to_number=call.to_number,
                direction=call.direction,
                end_reason=call.end_reason if call.ended else None,
                tag=call.tag,
                device=call.device,
                peer=None if call.peer is None else _peer_ref(call.peer),
            ),
        )

    def notify(self, owner: EventSink, event: CallEvent) -> None:
        """Send an event that belongs to no one call's log (``calling.call.dial``)."""
        owner.deliver(event)

    def _emit(self, call: Call, event: CallEvent) -> None:
        call.log.append(event)
        if call.owner is not None:
            call.owner.deliver(event)

    def _stamp(self, call: Call, at: float | None = None) -> dict[str, Any]:
        when = self.engine.call_time(call.media) if at is None else at
        return {"call_id": call.call_id, "node_id": self.node_id, "at": round(when, 3)}

    def dispatch(self, events: list[EngineEvent]) -> None:
        """Turn the media engine's events into call events (the media clock calls this)."""
        for event in events:
            call = self._calls.get(event.call_id)
            if call is None:
                continue
            stamp = self._stamp(call, event.at)
            if isinstance(event, PlaybackEvent):
                if event.state in ("finished", "error"):
                    loading = self._loading.pop((call.call_id, event.control_id), None)
                    if loading is not None:
                        loading.cancel()
                if call.connect is not None and event.control_id == call.connect.ringback_id:
                    self._ringback_played(call, event)
                    continue
                self._emit(
                    call,
                    PlayStateChanged(
                        **stamp,
                        control_id=event.control_id,
                        state=event.state,
                        error=event.error,
                        cause=event.cause,
                    ),
                )
            elif isinstance(event, CollectOutputEvent):
                self._collect(call, stamp, event)
            elif isinstance(event, ItemStarted):
                self._emit(
                    call,
                    MediaStarted(
                        **stamp,
                        control_id=event.control_id,
                        media=event.kind,
                        label=event.label,
                        volume_db=event.volume_db,
                    ),
                )
            elif isinstance(event, ItemEnded):
                self._emit(
                    call,
                    MediaEnded(
                        **stamp, control_id=event.control_id, media=event.kind, label=event.label
                    ),
                )
            elif isinstance(event, EngineKey):
                self._emit(call, KeyDetected(**stamp, key=event.key))
            elif isinstance(event, SpeechCaptured):
                self._recognize(call, event)
            elif isinstance(event, ComponentUpdate):
                self._component_changed(call, stamp, event)

    def _collect(self, call: Call, stamp: dict[str, Any], event: CollectOutputEvent) -> None:
        output = event.output
        if isinstance(output, collect_outputs.InputStarted):
            self._emit(
                call,
                InputStarted(**stamp, control_id=event.control_id, reported=event.report_input),
            )
        elif isinstance(output, collect_outputs.PartialResult):
            self._emit(
                call,
                PromptPartial(
                    **stamp,
                    control_id=event.control_id,
                    result_type=output.result_type,
                    params=output.params,
                ),
            )
        elif isinstance(output, collect_outputs.PromptResultData):
            self._emit(
                call,
                PromptEnded(
                    **stamp,
                    control_id=event.control_id,
                    result_type=output.result_type,
                    params=output.params,
                    reason=output.reason,
                ),
            )

    def _recognize(self, call: Call, event: SpeechCaptured) -> None:
        """Recognise an utterance off the media clock, then hand the text back to the engine."""
        if not event.final:
            if event.control_id in call.partials_running:
                return  # the previous snapshot is still being decoded; skip this one
            call.partials_running.add(event.control_id)
        else:
            self._emit(
                call,
                SpeechHeard(
                    **self._stamp(call, event.at),
                    control_id=event.control_id,
                    seconds=round(len(event.audio) / SAMPLE_RATE, 3),
                    reason=event.reason,
                ),
            )

        async def run() -> None:
            try:
                text, confidence = await self.speech.decode(
                    event.language,
                    event.hints,
                    event.audio,
                    final=event.final,
                    engine=event.engine,
                    min_confidence=event.min_confidence,
                )
            except Exception:
                log.exception("! speech recognition failed")
                text, confidence = None, 0.0
            finally:
                call.partials_running.discard(event.control_id)
            if event.final:
                self.dispatch(
                    self.engine.speech_recognized(
                        call.call_id, event.control_id, text, confidence, event.reason
                    )
                )
            elif text:
                self.dispatch(self.engine.speech_partial(call.call_id, event.control_id, text))

        self._spawn(call, run())


def _peer_ref(call: Call) -> dict[str, Any]:
    return {"call_id": call.call_id, "node_id": call.node_id}


def _peer_info(call: Call) -> dict[str, Any]:
    """The other leg of a connect as ``calling.call.connect`` names it (§6.6)."""
    device = call.device or {
        "type": "phone",
        "params": {"from_number": call.from_number, "to_number": call.to_number},
    }
    info: dict[str, Any] = {**_peer_ref(call), "device": device}
    if call.tag is not None:
        info["tag"] = call.tag
    return info
