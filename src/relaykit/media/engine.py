"""The media engine: one clock, every call, one 20 ms frame per tick. No sockets, no asyncio.

Each :meth:`MediaEngine.tick` advances all calls together:

1. read each call's inbound frame (caller audio, silence when nothing is queued), kept as
   ``CallMedia.inbound_frame`` so a bridged call can hear it in step 4 (:mod:`.bridge`);
2. run the DTMF detector over all audible calls as one batch (numpy over calls × samples);
3. feed keys, voice activity and the clock to each running prompt's :class:`Collector`; input
   starts barge in. A frame that is part of a key's tone, from its first window until the
   key's release (:meth:`DtmfDetector.in_tone`), is not voice: the prompts' voice detectors
   do not hear it and the speech handed to the recogniser has silence in its place;
4. render each call's playbacks (dB gain applied to the samples) and record both channels
   (streamed to a temporary file, :mod:`relaykit.media.recording`).

Components other than plays and prompts (record, detect, tap, send digits) are
:class:`~relaykit.media.components.MediaComponent` objects in the same per-call table; the
engine calls their hooks only on calls that run some: keys in step 3, ``render`` in step 4
(their audio joins the mix), then ``hear`` with the frame's inbound and outbound audio. Their
state changes come back as :class:`ComponentUpdate` events.

It returns :data:`EngineEvent` values for the network layer to turn into RELAY events. Time on
the media clock is ``frame * FRAME_SECONDS``; per call it is counted from the call's first frame,
so every prompt timer is exact and reproducible whatever the wall clock does.
"""

from __future__ import annotations

__all__ = [
    "CallMedia",
    "CollectOutputEvent",
    "ComponentUpdate",
    "EngineEvent",
    "HeardMedia",
    "ItemEnded",
    "ItemStarted",
    "KeyDetected",
    "MediaEngine",
    "PlaybackEvent",
    "SpeechCaptured",
    "VoiceDetector",
]

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..protocol.calling import Collect
from .collector import Collector, CollectOutput, InputStarted, PromptResultData, SpeechEnded
from .dtmf import DtmfDetector
from .frames import FRAME_SECONDS, SAMPLE_RATE, SAMPLES_PER_FRAME
from .playback import MediaItem, Playback, PlaybackState
from .recording import CallRecording

if TYPE_CHECKING:
    from .components import MediaComponent, Update

_QUIET_FRAMES_BEFORE_IDLE = 4  # keep feeding silence to the detector this long after audio
_PREROLL_FRAMES = 15  # 300 ms of audio kept before the detected start of speech
_SNAPSHOT_FRAMES = 25  # with partial results, hand the recogniser the utterance every 0.5 s


class VoiceDetector(Protocol):
    """Per-prompt voice activity detection: one 20 ms frame in, "is this speech?" out."""

    def push(self, frame: np.ndarray) -> bool: ...


# -- events -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PlaybackEvent:
    """A play (or a prompt's media) changed state: ``playing``, ``finished`` or ``error``."""

    call_id: str
    control_id: str
    state: str
    at: float
    error: str | None = None
    cause: str | None = None  # why it ended early: barge_in, stopped, prompt_done, hangup


@dataclass(frozen=True, slots=True)
class CollectOutputEvent:
    """What a prompt's collector said; ``report_input``: the prompt asked for
    ``start_of_input`` events."""

    call_id: str
    control_id: str
    output: CollectOutput
    at: float
    report_input: bool = False


@dataclass(frozen=True, slots=True)
class KeyDetected:
    """A DTMF key confirmed in the caller's audio (whether or not a prompt was listening)."""

    call_id: str
    key: str
    at: float


@dataclass(frozen=True, slots=True)
class ItemStarted:
    """A media item began playing to the caller."""

    call_id: str
    control_id: str
    kind: str
    label: str
    at: float
    volume_db: float


@dataclass(frozen=True, slots=True)
class ItemEnded:
    """A media item stopped playing: it ended, or its play was stopped."""

    call_id: str
    control_id: str
    kind: str
    label: str
    at: float


@dataclass(frozen=True, slots=True)
class SpeechCaptured:
    """An utterance ended (``reason``); the network layer must recognise ``audio``.

    ``final`` is False for the snapshots taken for partial results while the caller speaks.
    """

    call_id: str
    control_id: str
    audio: np.ndarray
    language: str
    hints: tuple[str, ...]
    reason: str
    final: bool
    at: float
    min_confidence: float | None = None  # the prompt's, None: the server's
    engine: str | None = None  # the prompt's speech engine, None: the server's


@dataclass(frozen=True, slots=True)
class ComponentUpdate:
    """A :class:`~relaykit.media.components.MediaComponent` (``kind`` record, detect, tap,
    send_digits) changed ``state``; ``final``: it ended (``reason``) and left the table."""

    call_id: str
    control_id: str
    kind: str
    state: str
    params: dict[str, Any]
    final: bool
    reason: str | None
    at: float


EngineEvent = (
    PlaybackEvent
    | CollectOutputEvent
    | KeyDetected
    | ItemStarted
    | ItemEnded
    | SpeechCaptured
    | ComponentUpdate
)


@dataclass(slots=True)
class HeardMedia:
    """One media item as the caller heard it; ``ended_at`` is None while it plays."""

    kind: str
    label: str
    started_at: float
    volume_db: float
    item: MediaItem

    @property
    def ended_at(self) -> float | None:
        return self.item.ended_at


# -- per-call state ---------------------------------------------------------------------------
@dataclass(slots=True)
class _InboundChunk:
    samples: np.ndarray
    on_done: Callable[[], None] | None
    offset: int = 0


@dataclass(slots=True)
class _Prompt:
    collector: Collector
    playback: Playback
    vad: VoiceDetector | None = None
    preroll: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=_PREROLL_FRAMES))
    speech: list[np.ndarray] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class CallMedia:
    """The media side of one call.

    ``keep_audio``: ``audio`` items keep their samples after they are played, until the call
    ends (a virtual caller checks what they said); otherwise every item's samples are dropped
    as soon as its playback is done with it.
    """

    call_id: str
    start_frame: int
    dtmf_channel: int
    record: bool
    inbound: deque[_InboundChunk] = field(default_factory=deque)
    # The one component table of the call, by control_id: plays, prompts and the rest.
    components: dict[str, Playback | _Prompt | MediaComponent] = field(default_factory=dict)
    # The table's MediaComponents in the order they started (the engine's fast check).
    media_components: list[MediaComponent] = field(default_factory=list)
    heard: list[HeardMedia] = field(default_factory=list)
    keys: list[tuple[float, str]] = field(default_factory=list)
    on_outbound: Callable[[np.ndarray], None] | None = None
    # This tick's inbound frame (None: silence), set for every call before any renders (bridges).
    inbound_frame: np.ndarray | None = None
    quiet_frames: int = _QUIET_FRAMES_BEFORE_IDLE
    keep_audio: bool = False
    recorder: CallRecording | None = None

    def push_inbound(self, samples: np.ndarray, on_done: Callable[[], None] | None = None) -> None:
        """Queue caller audio (int16, 16 kHz); ``on_done`` runs once its last sample is played."""
        self.inbound.append(_InboundChunk(np.asarray(samples, dtype=np.int16), on_done))

    @property
    def inbound_pending(self) -> float:
        """Seconds of caller audio still queued."""
        return sum(len(c.samples) - c.offset for c in self.inbound) / SAMPLE_RATE

    def prompts(self) -> list[tuple[str, _Prompt]]:
        """The prompts among the call's components, by control_id."""
        return [(cid, c) for cid, c in self.components.items() if isinstance(c, _Prompt)]

    def recording(self) -> np.ndarray:
        """Both channels so far as an (n, 2) int16 array: column 0 the caller, 1 the IVR."""
        if self.recorder is None:
            return np.zeros((0, 2), dtype=np.int16)
        return self.recorder.read()

    @property
    def recorded_seconds(self) -> float:
        return 0.0 if self.recorder is None else self.recorder.seconds

    def _read_inbound(self) -> tuple[np.ndarray | None, list[Callable[[], None]]]:
        if not self.inbound:
            return None, []
        chunk = self.inbound[0]
        end = chunk.offset + SAMPLES_PER_FRAME
        if end < len(chunk.samples):  # common case: a view into the chunk, no copy
            frame = chunk.samples[chunk.offset : end]
            chunk.offset = end
            return frame, []
        frame = np.zeros(SAMPLES_PER_FRAME, dtype=np.int16)
        done: list[Callable[[], None]] = []
        pos = 0
        while pos < SAMPLES_PER_FRAME and self.inbound:
            chunk = self.inbound[0]
            take = min(SAMPLES_PER_FRAME - pos, len(chunk.samples) - chunk.offset)
            frame[pos : pos + take] = chunk.samples[chunk.offset : chunk.offset + take]
            pos += take
            chunk.offset += take
            if chunk.offset >= len(chunk.samples):
                self.inbound.popleft()
                if chunk.on_done is not None:
                    done.append(chunk.on_done)
        return frame, done


_SILENCE = np.zeros(SAMPLES_PER_FRAME, dtype=np.int16)
_SILENCE.flags.writeable = False
_OWN_KINDS = (Playback, _Prompt)  # what the engine runs itself; the rest are MediaComponents


class MediaEngine:
    """Runs the media of every call on one clock; see the module docstring."""

    def __init__(
        self,
        *,
        dtmf: DtmfDetector | None = None,
        vad_factory: Callable[[], VoiceDetector] | None = None,
    ) -> None:
        self.frame = 0
        self._dtmf = dtmf if dtmf is not None else DtmfDetector()
        self._vad_factory = vad_factory
        self._calls: dict[str, CallMedia] = {}
        self._by_channel: dict[int, CallMedia] = {}

    # -- clock --------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        """Media clock in seconds since the engine started."""
        return self.frame * FRAME_SECONDS

    def call_time(self, call: CallMedia) -> float:
        return (self.frame - call.start_frame) * FRAME_SECONDS

    # -- calls --------------------------------------------------------------------------------
    def add_call(self, call_id: str, *, record: bool = True) -> CallMedia:
        if call_id in self._calls:
            raise ValueError(f"call {call_id!r} already has media")
        channel = self._dtmf.add_channel()
        call = CallMedia(call_id, self.frame, channel, record)
        if record:
            call.recorder = CallRecording()
        self._calls[call_id] = call
        self._by_channel[channel] = call
        return call

    def get_call(self, call_id: str) -> CallMedia | None:
        return self._calls.get(call_id)

    def __len__(self) -> int:
        return len(self._calls)

    def end_call(self, call_id: str) -> list[EngineEvent]:
        """Remove a call: running plays end in ``error``, prompts with reason ``hangup``."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return []
        self._by_channel.pop(call.dtmf_channel, None)
        self._dtmf.remove_channel(call.dtmf_channel)
        now = self.call_time(call)
        events: list[EngineEvent] = []
        for control_id, component in list(call.components.items()):
            if not isinstance(component, _OWN_KINDS):
                events += self._updates(call, component, component.hangup(now), now)
                continue
            playback = component.playback if isinstance(component, _Prompt) else component
            if not playback.done:
                _stop_playback(call, playback, now, events)
                events.append(
                    PlaybackEvent(call_id, control_id, "error", now, "call ended", "hangup")
                )
            if isinstance(component, _Prompt):
                events += self._collect_events(call, control_id, component.collector.hangup(), now)
        call.components.clear()
        call.media_components.clear()
        for heard in call.heard:
            heard.item.release(call_ended=True)
        if call.recorder is not None:
            call.recorder.flush()
        call.inbound_frame = None
        for chunk in call.inbound:
            if chunk.on_done is not None:
                chunk.on_done()
        call.inbound.clear()
        return events

    # -- components ---------------------------------------------------------------------------
    def start_play(
        self, call_id: str, control_id: str, items: Iterable[MediaItem], volume_db: float = 0.0
    ) -> Playback:
        call = self._require(call_id)
        self._require_free(call, control_id)
        playback = Playback(control_id, _kept(call, items), volume_db)
        call.components[control_id] = playback
        return playback

    def start_prompt(
        self,
        call_id: str,
        control_id: str,
        items: Iterable[MediaItem],
        collect: Collect,
        volume_db: float = 0.0,
    ) -> Collector:
        call = self._require(call_id)
        self._require_free(call, control_id)
        collector = Collector(collect)
        vad = None
        if collect.speech is not None:
            if self._vad_factory is None:
                raise ValueError("this engine has no voice activity detector for speech")
            vad = self._vad_factory()
        prompt = _Prompt(collector, Playback(control_id, _kept(call, items), volume_db), vad)
        call.components[control_id] = prompt
        return collector

    def start_component(self, call_id: str, component: MediaComponent) -> None:
        """Run ``component`` (record, detect, tap, send digits…) on the call from the next tick."""
        call = self._require(call_id)
        self._require_free(call, component.control_id)
        component.begin(self.call_time(call))
        call.components[component.control_id] = component
        call.media_components.append(component)

    def voice_detector(self) -> VoiceDetector:
        """A new voice activity detector, as prompts get (for components that need one)."""
        if self._vad_factory is None:
            raise ValueError("this engine has no voice activity detector")
        return self._vad_factory()

    def has_component(self, call_id: str, control_id: str) -> bool:
        call = self._calls.get(call_id)
        return call is not None and control_id in call.components

    def component_count(self, call_id: str) -> int:
        """How many components (plays, prompts) run on the call."""
        call = self._calls.get(call_id)
        return 0 if call is None else len(call.components)

    def is_collecting(self, call_id: str) -> bool:
        """Whether a prompt collects input on the call."""
        call = self._calls.get(call_id)
        return call is not None and any(isinstance(c, _Prompt) for c in call.components.values())

    def stop(self, call_id: str, control_id: str) -> list[EngineEvent]:
        """Stop a play or prompt now; returns its terminal events (empty if it is not running)."""
        call = self._calls.get(call_id)
        if call is None:
            return []
        now = self.call_time(call)
        events: list[EngineEvent] = []
        component = call.components.get(control_id)
        if isinstance(component, Playback):
            del call.components[control_id]
            _stop_playback(call, component, now, events)
            events.append(PlaybackEvent(call_id, control_id, "finished", now, cause="stopped"))
        elif isinstance(component, _Prompt):
            events += self._collect_events(call, control_id, component.collector.stop(), now)
        elif component is not None:
            events += self._updates(call, component, component.stop(now), now)
        return events

    def speech_recognized(
        self, call_id: str, control_id: str, text: str | None, confidence: float, reason: str
    ) -> list[EngineEvent]:
        """Deliver the recogniser's answer for a final :class:`SpeechCaptured`."""
        call, prompt = self._prompt(call_id, control_id)
        if call is None or prompt is None:
            return []
        now = self.call_time(call)
        if text:
            outputs = prompt.collector.recognized(text, confidence, reason)
        else:
            outputs = prompt.collector.not_recognized(reason)
        return self._collect_events(call, control_id, outputs, now)

    def speech_partial(self, call_id: str, control_id: str, text: str) -> list[EngineEvent]:
        """Deliver an interim hypothesis for a snapshot (partial results)."""
        call, prompt = self._prompt(call_id, control_id)
        if call is None or prompt is None:
            return []
        now = self.call_time(call)
        return self._collect_events(call, control_id, prompt.collector.partial_text(text), now)

    def inject_key(self, call_id: str, key: str, *, dedupe: float = 0.2) -> list[EngineEvent]:
        """A key received out of band (RFC 4733, SIP INFO): fed to prompts like a detected one.

        The same key already recorded on the call within ``dedupe`` seconds (the in-band
        detector hearing the same press) is ignored. The SIP leg mutes the in-band audio an
        RFC 4733 event covers, so the detector does not count it a second time.
        """
        call = self._calls.get(call_id)
        if call is None:
            return []
        now = self.call_time(call)
        for at, seen in reversed(call.keys):
            if now - at > dedupe:
                break
            if seen == key:
                return []
        call.keys.append((now, key))
        events: list[EngineEvent] = [KeyDetected(call.call_id, key, now)]
        for control_id, prompt in call.prompts():
            events += self._collect_events(call, control_id, prompt.collector.digit(key, now), now)
            prompt.speech = []
        for component in list(call.media_components):
            events += self._updates(call, component, component.key(key, now), now)
        return events

    def _prompt(self, call_id: str, control_id: str) -> tuple[CallMedia | None, _Prompt | None]:
        call = self._calls.get(call_id)
        component = None if call is None else call.components.get(control_id)
        return call, (component if isinstance(component, _Prompt) else None)

    def set_volume(self, call_id: str, control_id: str, volume_db: float) -> bool:
        call = self._calls.get(call_id)
        if call is None:
            return False
        component = call.components.get(control_id)
        if not isinstance(component, _OWN_KINDS):
            return False  # none, or a component without volume (record, detect…)
        playback = component.playback if isinstance(component, _Prompt) else component
        playback.set_volume(volume_db)
        return True

    # -- the tick -----------------------------------------------------------------------------
    def tick(self) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        callbacks: list[Callable[[], None]] = []
        calls = list(self._calls.values())
        frame_no = self.frame

        # 1. inbound audio, and the batch of calls the DTMF detector must hear this frame
        inbound: list[np.ndarray | None] = []
        det_calls: list[CallMedia] = []
        det_frames: list[np.ndarray] = []
        for call in calls:
            if call.inbound:
                frame, done = call._read_inbound()
                if done:
                    callbacks += done
                call.quiet_frames = 0
            else:
                frame = None
                if call.quiet_frames >= _QUIET_FRAMES_BEFORE_IDLE:
                    inbound.append(None)
                    call.inbound_frame = None
                    continue
                call.quiet_frames += 1
            inbound.append(frame)
            call.inbound_frame = frame
            det_calls.append(call)
            det_frames.append(_SILENCE if frame is None else frame)

        # 2. DTMF over all audible calls at once
        in_tone: set[int] = set()  # DTMF channels whose frame is part of a key's tone
        if det_calls:
            channels = np.fromiter((c.dtmf_channel for c in det_calls), dtype=np.int64)
            for channel, key in self._dtmf.process(channels, np.stack(det_frames)):
                keyed = self._by_channel.get(channel)
                if keyed is None:
                    continue
                call = keyed
                now = self.call_time(call)
                call.keys.append((now, key))
                events.append(KeyDetected(call.call_id, key, now))
                for control_id, prompt in call.prompts():
                    events += self._collect_events(
                        call, control_id, prompt.collector.digit(key, now), now
                    )
                    prompt.speech = []
                for component in list(call.media_components):
                    events += self._updates(call, component, component.key(key, now), now)
            toned = self._dtmf.in_tone(channels)
            if toned.any():
                in_tone.update(channels[toned].tolist())

        # 3. speech and timers of running prompts; 4. outbound audio and recording
        for call, frame in zip(calls, inbound, strict=True):
            if not call.components:
                out = None
            else:
                now = (frame_no - call.start_frame) * FRAME_SECONDS
                for control_id, prompt in call.prompts():
                    if prompt.vad is not None:
                        tone = call.dtmf_channel in in_tone
                        events += self._listen(call, control_id, prompt, frame, now, tone)
                    if prompt.collector.has_timer:
                        outputs = prompt.collector.tick(now)
                        if outputs:
                            events += self._collect_events(call, control_id, outputs, now)
                out = self._render(call, events)
                if call.media_components:
                    out = self._run_components(call, frame, out, now, events)
            if out is not None and call.on_outbound is not None:
                call.on_outbound(out)
            if call.recorder is not None:
                call.recorder.append(
                    _SILENCE if frame is None else frame, _SILENCE if out is None else out
                )

        self.frame += 1
        for callback in callbacks:
            callback()
        return events

    # -- internals ----------------------------------------------------------------------------
    def _render(self, call: CallMedia, events: list[EngineEvent]) -> np.ndarray | None:
        active = [
            c.playback if isinstance(c, _Prompt) else c
            for c in call.components.values()
            if isinstance(c, _OWN_KINDS)
        ]
        active = [p for p in active if not p.done]
        if not active:
            return None  # prompts waiting for input: silence
        if len(active) == 1 and (frame := active[0].fast_frame()) is not None:
            return frame  # one playback mid-item at unity gain: a view, no mixing
        now = self.call_time(call)
        mix = np.zeros(SAMPLES_PER_FRAME, dtype=np.float32)
        for control_id, component in list(call.components.items()):
            if not isinstance(component, _OWN_KINDS):
                continue  # a MediaComponent: _run_components renders it
            if isinstance(component, Playback):
                self._render_one(call, control_id, component, mix, now, events)
                if component.done:
                    del call.components[control_id]
                continue
            prompt, playback = component, component.playback
            if playback.done:
                continue
            self._render_one(call, control_id, playback, mix, now, events)
            if playback.state is PlaybackState.FINISHED:
                end = self._media_end(playback, now)
                events += self._collect_events(
                    call, control_id, prompt.collector.media_finished(end), now
                )
            elif playback.state is PlaybackState.ERROR:
                events += self._collect_events(
                    call, control_id, prompt.collector.fail(playback.error or "media error"), now
                )
        return np.clip(mix, -32768, 32767).astype(np.int16)

    def _run_components(
        self,
        call: CallMedia,
        inbound: np.ndarray | None,
        out: np.ndarray | None,
        now: float,
        events: list[EngineEvent],
    ) -> np.ndarray | None:
        """The MediaComponents' turn: their audio joins ``out``, then they hear the frame."""
        components = list(call.media_components)
        renderers = [c for c in components if c.rendering]
        if renderers:
            mix = np.zeros(SAMPLES_PER_FRAME, dtype=np.float32)
            if out is not None:
                mix += out
            for component in renderers:
                events += self._updates(call, component, component.render(mix, now), now)
            out = np.clip(mix, -32768, 32767).astype(np.int16)
        for component in components:
            if not component.done:
                events += self._updates(call, component, component.hear(inbound, out, now), now)
        return out

    def _updates(
        self, call: CallMedia, component: MediaComponent, updates: list[Update], now: float
    ) -> list[EngineEvent]:
        """A component's updates as engine events; a final one takes it out of the table."""
        events: list[EngineEvent] = []
        for update in updates:
            events.append(
                ComponentUpdate(
                    call.call_id,
                    component.control_id,
                    component.kind,
                    update.state,
                    update.params,
                    update.final,
                    update.reason,
                    now,
                )
            )
        if component.done and call.components.get(component.control_id) is component:
            del call.components[component.control_id]
            call.media_components.remove(component)
        return events

    def _render_one(
        self,
        call: CallMedia,
        control_id: str,
        playback: Playback,
        mix: np.ndarray,
        now: float,
        events: list[EngineEvent],
    ) -> None:
        was_loading = playback.state is PlaybackState.LOADING
        first = playback.index
        started_items = playback.render(mix, now)
        for item in started_items:
            started = now if item.started_at is None else item.started_at
            call.heard.append(HeardMedia(item.kind, item.label, started, playback.volume_db, item))
            events.append(
                ItemStarted(
                    call.call_id, control_id, item.kind, item.label, started, playback.volume_db
                )
            )
        for item in playback.items[first : playback.index]:
            if item.ended_at is not None:
                events.append(
                    ItemEnded(call.call_id, control_id, item.kind, item.label, item.ended_at)
                )
        if was_loading and started_items:
            events.append(PlaybackEvent(call.call_id, control_id, "playing", now))
        if playback.state is PlaybackState.FINISHED:
            events.append(PlaybackEvent(call.call_id, control_id, "finished", now))
        elif playback.state is PlaybackState.ERROR:
            events.append(PlaybackEvent(call.call_id, control_id, "error", now, playback.error))

    def _listen(
        self,
        call: CallMedia,
        control_id: str,
        prompt: _Prompt,
        frame: np.ndarray | None,
        now: float,
        tone: bool,
    ) -> list[EngineEvent]:
        """Feed one inbound frame to the prompt's VAD and collector; buffer the utterance.

        A frame of a key's ``tone`` is not voice: the VAD does not hear it (its noise floor
        stays that of the line) and the buffered audio gets silence instead.
        """
        assert prompt.vad is not None
        frame = _SILENCE if frame is None or tone else frame
        collector = prompt.collector
        was_speaking = collector.speaking
        outputs = collector.voice(now, False if tone else prompt.vad.push(frame))
        if collector.speaking and not was_speaking:
            prompt.speech = list(prompt.preroll)
        if collector.speaking or any(isinstance(o, SpeechEnded) for o in outputs):
            prompt.speech.append(frame)
        else:
            prompt.preroll.append(frame)
        events = self._collect_events(call, control_id, outputs, now)
        spec = collector.collect.speech
        assert spec is not None
        for output in outputs:
            if isinstance(output, SpeechEnded):
                audio = np.concatenate(prompt.speech)
                prompt.speech = []
                events.append(
                    SpeechCaptured(
                        call.call_id,
                        control_id,
                        audio,
                        spec.language,
                        spec.hints,
                        output.reason,
                        True,
                        now,
                        spec.min_confidence,
                        spec.engine,
                    )
                )
        if (
            collector.speaking
            and collector.collect.partial_results
            and len(prompt.speech) % _SNAPSHOT_FRAMES == 0
        ):
            events.append(
                SpeechCaptured(
                    call.call_id,
                    control_id,
                    np.concatenate(prompt.speech),
                    spec.language,
                    spec.hints,
                    "partial",
                    False,
                    now,
                    spec.min_confidence,
                    spec.engine,
                )
            )
        return events

    @staticmethod
    def _media_end(playback: Playback, now: float) -> float:
        ends = [i.ended_at for i in playback.items if i.ended_at is not None]
        return max(ends) if ends else now

    def _collect_events(
        self, call: CallMedia, control_id: str, outputs: list[CollectOutput], now: float
    ) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        component = call.components.get(control_id)
        prompt = component if isinstance(component, _Prompt) else None
        for output in outputs:
            if (
                isinstance(output, InputStarted)
                and prompt is not None
                and prompt.collector.collect.barge_in
                and not prompt.playback.done
            ):
                _stop_playback(call, prompt.playback, now, events)
                events.append(
                    PlaybackEvent(call.call_id, control_id, "finished", now, cause="barge_in")
                )
            if isinstance(output, PromptResultData) and prompt is not None:
                if not prompt.playback.done:
                    _stop_playback(call, prompt.playback, now, events)
                    events.append(
                        PlaybackEvent(
                            call.call_id, control_id, "finished", now, cause=output.reason
                        )
                    )
                call.components.pop(control_id, None)
            report = prompt is not None and prompt.collector.collect.send_start_of_input
            events.append(CollectOutputEvent(call.call_id, control_id, output, now, report))
        return events

    def _require(self, call_id: str) -> CallMedia:
        call = self._calls.get(call_id)
        if call is None:
            raise KeyError(call_id)
        return call

    @staticmethod
    def _require_free(call: CallMedia, control_id: str) -> None:
        if control_id in call.components:
            raise ValueError(f"control_id {control_id!r} is already running on this call")


def _kept(call: CallMedia, items: Iterable[MediaItem]) -> list[MediaItem]:
    items = list(items)
    if call.keep_audio:
        for item in items:
            item.keep = item.kind == "audio"
    return items


def _stop_playback(
    call: CallMedia, playback: Playback, now: float, events: list[EngineEvent]
) -> None:
    """Stop ``playback`` now; the item it was playing ends here."""
    item = playback.current
    playing = item is not None and item.started_at is not None and item.ended_at is None
    playback.stop(now)
    if playing and item is not None:
        events.append(ItemEnded(call.call_id, playback.control_id, item.kind, item.label, now))
