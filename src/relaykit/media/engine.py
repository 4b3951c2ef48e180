"""The media engine: one clock, every call, one 20 ms frame per tick. No sockets, no asyncio.

Each :meth:`MediaEngine.tick` advances all calls together, as numpy operations over arrays
indexed by call (the call's *slot*, which is also its DTMF channel): caller audio waits in a
ring per slot, a call's one playback is an offset and a gain, prompts' timers are one deadline
per slot. A call is handled in Python only in a frame where something happens to it (a key, the
end of an item, a timer, a chunk of caller audio used up) or while it runs something that takes
every frame (a speech prompt's voice detector, a :class:`MediaComponent`, several playbacks to
mix). In that frame the engine does for it, in order:

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

import contextlib
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

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
_REC_FRAMES = 16  # a recorded call's frames are gathered in the arrays in blocks of 320 ms


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
class _Prompt:
    collector: Collector
    playback: Playback
    vad: VoiceDetector | None = None
    preroll: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=_PREROLL_FRAMES))
    speech: list[np.ndarray] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class _Chunk:
    """Queued caller audio: ``samples`` is ``owner``'s memory from sample ``start`` on."""

    samples: np.ndarray
    owner: np.ndarray
    start: int
    on_done: Callable[[], None] | None


def _chunk(samples: np.ndarray, on_done: Callable[[], None] | None) -> _Chunk:
    """A chunk that knows the memory it views, so that frames of many calls reading the same
    audio (a shared prompt, silence, RTP frames decoded in one batch) are gathered at once."""
    owner = samples.base
    if (
        isinstance(owner, np.ndarray)
        and owner.dtype == np.int16
        and owner.flags.c_contiguous
        and samples.flags.c_contiguous
    ):
        offset = samples.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
        start = offset // samples.itemsize
        if 0 <= start <= owner.size - samples.size:
            return _Chunk(samples, owner, start, on_done)
    samples = np.ascontiguousarray(samples)
    return _Chunk(samples, samples, 0, on_done)


class _Bases:
    """The arrays that calls' caller audio is read from, by code, while some call reads one."""

    def __init__(self) -> None:
        self._arrays: list[np.ndarray | None] = []
        self._windows: list[np.ndarray | None] = []  # each array's frame windows, once asked
        self._refs: list[int] = []
        self._codes: dict[int, int] = {}  # id(owner) -> code
        self._free: list[int] = []

    def take(self, owner: np.ndarray) -> int:
        code = self._codes.get(id(owner))
        if code is None:
            code = self._free.pop() if self._free else len(self._arrays)
            if code == len(self._arrays):
                self._arrays.append(None)
                self._windows.append(None)
                self._refs.append(0)
            self._arrays[code] = owner.reshape(-1)  # (a view of owner: keeps it alive)
            self._codes[id(owner)] = code
        self._refs[code] += 1
        return code

    def release(self, owner: np.ndarray) -> None:
        code = self._codes[id(owner)]
        self._refs[code] -= 1
        if not self._refs[code]:
            del self._codes[id(owner)]
            self._arrays[code] = self._windows[code] = None
            self._free.append(code)

    def windows(self, code: int) -> np.ndarray:
        """Array ``code`` as overlapping frames: row ``i`` is the frame starting at sample ``i``
        (made once per array, not per tick)."""
        windows = self._windows[code]
        if windows is None:
            array = self._arrays[code]
            assert array is not None
            windows = self._windows[code] = sliding_window_view(array, SAMPLES_PER_FRAME)
        return windows


@dataclass(eq=False, slots=True)
class CallMedia:
    """The media side of one call.

    Its audio and clock state lives in the engine's arrays, at index ``dtmf_channel`` (the
    call's *slot*); this object holds what is touched only when something happens.

    ``keep_audio``: ``audio`` items keep their samples after they are played, until the call
    ends (a virtual caller checks what they said); otherwise every item's samples are dropped
    as soon as its playback is done with it.
    """

    call_id: str
    start_frame: int
    dtmf_channel: int
    record: bool
    _engine: MediaEngine
    # The one component table of the call, by control_id: plays, prompts and the rest.
    components: dict[str, Playback | _Prompt | MediaComponent] = field(default_factory=dict)
    # The table's MediaComponents in the order they started (the engine's fast check).
    media_components: list[MediaComponent] = field(default_factory=list)
    heard: list[HeardMedia] = field(default_factory=list)
    keys: list[tuple[float, str]] = field(default_factory=list)
    ended: bool = False
    _listener: Callable[[np.ndarray], None] | None = None
    # caller audio: the chunk being read (from the engine's arrays: where in its base array),
    # and the chunks queued after it
    _chunk: _Chunk | None = None
    _queue: deque[_Chunk] = field(default_factory=deque)
    _queued_samples: int = 0
    _fast_playback: Playback | None = None  # the playback the engine advances in its arrays
    _fast_samples: np.ndarray | None = None  # that playback's current item's samples
    _fast_windows: np.ndarray | None = None  # ... as overlapping frames (see _Bases.windows)
    keep_audio: bool = False
    _recorder: CallRecording | None = None

    def push_inbound(self, samples: np.ndarray, on_done: Callable[[], None] | None = None) -> None:
        """Queue caller audio (int16, 16 kHz); ``on_done`` runs once its last sample is played
        (at once if the call has ended)."""
        self._engine._push_inbound(self, np.asarray(samples, dtype=np.int16).reshape(-1), on_done)

    @property
    def inbound_pending(self) -> float:
        """Seconds of caller audio still queued."""
        if self.ended:
            return 0.0
        engine, slot = self._engine, self.dtmf_channel
        queued = int(engine._in_end[slot] - engine._in_pos[slot]) + self._queued_samples
        return queued / SAMPLE_RATE

    @property
    def on_outbound(self) -> Callable[[np.ndarray], None] | None:
        """Called with every frame the IVR plays on the call (not with silent frames)."""
        return self._listener

    @on_outbound.setter
    def on_outbound(self, listener: Callable[[np.ndarray], None] | None) -> None:
        self._listener = listener
        if not self.ended:
            self._engine._needs_out[self.dtmf_channel] = listener is not None or self.record

    @property
    def inbound_frame(self) -> np.ndarray | None:
        """The caller's frame of the current (or last) tick; None: silence. Every call's is
        read before any call renders, so a component may mix another call's in (bridges)."""
        return None if self.ended else self._engine._inbound_frame(self.dtmf_channel)

    def prompts(self) -> list[tuple[str, _Prompt]]:
        """The prompts among the call's components, by control_id."""
        return [(cid, c) for cid, c in self.components.items() if isinstance(c, _Prompt)]

    def recording(self) -> np.ndarray:
        """Both channels so far as an (n, 2) int16 array: column 0 the caller, 1 the IVR."""
        recorder = self.recorder
        if recorder is None:
            return np.zeros((0, 2), dtype=np.int16)
        return recorder.read()

    @property
    def recorder(self) -> CallRecording | None:
        """The call's recording (None: not recorded), holding every frame so far."""
        if self._recorder is not None and not self.ended:
            self._engine._hand_recording(self)
        return self._recorder

    @property
    def recorded_seconds(self) -> float:
        recorder = self.recorder
        return 0.0 if recorder is None else recorder.seconds


_SILENCE = np.zeros(SAMPLES_PER_FRAME, dtype=np.int16)
_SILENCE.flags.writeable = False
_OWN_KINDS = (Playback, _Prompt)  # what the engine runs itself; the rest are MediaComponents
_FAR = np.iinfo(np.int64).max // 2  # a sample position never reached
_DEADLINE_SLACK = 1e-6  # seconds: the timer array wakes a prompt this early; it checks exactly


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
        self._by_slot: list[CallMedia | None] = []
        self._n = 0  # slots below this may be in use
        self._cap = 0
        self._grow(64)
        self._rec_cap = 0
        self._rec_free: list[int] = []
        self._rec_next = 0
        self._rec_buf = np.zeros((0, _REC_FRAMES, 2, SAMPLES_PER_FRAME), dtype=np.int16)
        self._frames = np.zeros((0, SAMPLES_PER_FRAME), dtype=np.int16)
        self._bases = _Bases()
        self._tick_hooks: list[Callable[[], None]] = []
        # this tick's caller frames: (frames, row of each slot in them, slot has audio)
        self._tick_in: tuple[np.ndarray, np.ndarray, np.ndarray] = (
            self._frames,
            np.zeros(0, dtype=np.intp),
            np.zeros(0, dtype=bool),
        )
        self._late: list[Callable[[], None]] = []  # on_done of empty chunks, after a frame

    def _grow(self, cap: int) -> None:
        """Per-slot arrays, grown by doubling; a slot is the call's DTMF channel."""

        def grown(a: np.ndarray | None, fill: Any, dtype: Any, tail: tuple[int, ...] = ()) -> Any:
            out = np.full((cap, *tail), fill, dtype=dtype)
            if a is not None:
                out[: len(a)] = a
            return out

        old = self._cap > 0
        self._alive: np.ndarray = grown(self._alive if old else None, False, bool)
        self._start: np.ndarray = grown(self._start if old else None, 0, np.int64)
        # caller audio: the chunk being read is base[_in_pos : _in_end] of base _in_code;
        # _in_then: its end needs Python (an on_done, or more chunks queued)
        self._in_code: np.ndarray = grown(self._in_code if old else None, -1, np.intp)
        self._in_pos: np.ndarray = grown(self._in_pos if old else None, 0, np.int64)
        self._in_end: np.ndarray = grown(self._in_end if old else None, 0, np.int64)
        self._in_then: np.ndarray = grown(self._in_then if old else None, False, bool)
        self._quiet: np.ndarray = grown(self._quiet if old else None, 0, np.int32)
        # a fast slot is advanced in these arrays alone: its one playback's item offset and
        # length, its gain; it is looked at in Python only when due (see tick)
        self._fast: np.ndarray = grown(self._fast if old else None, False, bool)
        self._playing: np.ndarray = grown(self._playing if old else None, False, bool)
        self._pos: np.ndarray = grown(self._pos if old else None, 0, np.int64)
        self._end: np.ndarray = grown(self._end if old else None, _FAR, np.int64)
        self._gain: np.ndarray = grown(self._gain if old else None, 1.0, np.float32)
        self._deadline: np.ndarray = grown(self._deadline if old else None, np.inf, np.float64)
        self._needs_out: np.ndarray = grown(self._needs_out if old else None, False, bool)
        self._recording: np.ndarray = grown(self._recording if old else None, False, bool)
        self._rec_row: np.ndarray = grown(self._rec_row if old else None, -1, np.intp)
        # frames of the current block already handed to the call's recorder
        self._rec_given: np.ndarray = grown(self._rec_given if old else None, 0, np.int32)
        self._by_slot += [None] * (cap - self._cap)
        self._cap = cap

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
        slot = self._dtmf.add_channel()
        if slot >= self._cap:
            self._grow(max(2 * self._cap, slot + 1))
        call = CallMedia(call_id, self.frame, slot, record, self)
        if record:
            call._recorder = CallRecording(flush_frames=3 * _REC_FRAMES)  # whole blocks
        self._calls[call_id] = call
        self._by_slot[slot] = call
        self._n = max(self._n, slot + 1)
        self._alive[slot] = True
        self._start[slot] = self.frame
        self._in_code[slot] = -1
        self._in_pos[slot] = self._in_end[slot] = 0
        self._in_then[slot] = False
        self._quiet[slot] = _QUIET_FRAMES_BEFORE_IDLE
        self._fast[slot] = True  # nothing playing, nothing to time
        self._playing[slot] = False
        self._pos[slot], self._end[slot], self._gain[slot] = 0, _FAR, 1.0
        self._deadline[slot] = np.inf
        self._needs_out[slot] = record
        self._recording[slot] = record
        self._rec_row[slot] = self._rec_alloc() if record else -1
        self._rec_given[slot] = self._rec_index(call, self.frame)  # nothing before the call
        return call

    def get_call(self, call_id: str) -> CallMedia | None:
        return self._calls.get(call_id)

    def __len__(self) -> int:
        return len(self._calls)

    def end_call(self, call_id: str) -> list[EngineEvent]:
        """Remove a call: running plays end in ``error``, prompts with reason ``hangup``."""
        call = self._calls.get(call_id)
        if call is None:
            return []
        self._wake(call)
        del self._calls[call_id]
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
        released = [c.on_done for c in (call._chunk, *call._queue) if c is not None]
        self._free_slot(call)
        for on_done in released:
            if on_done is not None:
                on_done()
        if call._recorder is not None:
            call._recorder.flush()
        return events

    def _free_slot(self, call: CallMedia) -> None:
        slot = call.dtmf_channel
        if call.record:
            self._hand_recording(call)
            self._rec_free.append(int(self._rec_row[slot]))
        call.ended = True
        self._set_chunk(call, None)
        call._queue.clear()
        call._queued_samples = 0
        self._by_slot[slot] = None
        self._alive[slot] = self._fast[slot] = self._playing[slot] = False
        self._needs_out[slot] = self._recording[slot] = self._in_then[slot] = False
        self._deadline[slot] = np.inf
        self._rec_row[slot] = -1
        self._dtmf.remove_channel(slot)
        while self._n and not self._alive[self._n - 1]:
            self._n -= 1

    # -- components ---------------------------------------------------------------------------
    def start_play(
        self, call_id: str, control_id: str, items: Iterable[MediaItem], volume_db: float = 0.0
    ) -> Playback:
        call = self._require(call_id)
        self._require_free(call, control_id)
        self._wake(call)
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
        self._wake(call)
        call.components[control_id] = prompt
        return collector

    def start_component(self, call_id: str, component: MediaComponent) -> None:
        """Run ``component`` (record, detect, tap, send digits…) on the call from the next tick."""
        call = self._require(call_id)
        self._require_free(call, component.control_id)
        self._wake(call)
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
        self._wake(call)
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
        self._wake(call)
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
        self._wake(call)
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
        self._wake(call)
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
        self._wake(call)
        playback = component.playback if isinstance(component, _Prompt) else component
        playback.set_volume(volume_db)
        return True

    # -- the tick -----------------------------------------------------------------------------
    def tick(self) -> list[EngineEvent]:
        """Advance every call by one frame; returns what happened.

        The work is done on the engine's per-slot arrays for all calls at once: reading the
        caller's frames from the rings, the DTMF batch, the playbacks' offsets, the prompts'
        timers, recording. A call is looked at in Python only when it is *due*: a key was
        heard, its playback reaches the end of an item (or is loading, or mixes several), a
        timer may expire, its audio queue needs refilling or finished a chunk, or it runs
        something that takes every frame (a speech prompt's voice detector, a MediaComponent).
        """
        for hook in list(self._tick_hooks):
            hook()
        events: list[EngineEvent] = []
        callbacks: list[Callable[[], None]] = []
        frame_no = self.frame
        n = self._n
        if n == 0:
            self.frame += 1
            late, self._late = self._late, []
            for callback in late:
                callback()
            return events
        alive = self._alive[:n]

        # 1. inbound audio, and the batch of calls the DTMF detector must hear this frame
        pos, end = self._in_pos[:n], self._in_end[:n]
        has = pos < end
        whole = has & (pos + SAMPLES_PER_FRAME <= end)
        quiet = self._quiet[:n]
        listen = has | (alive & (quiet < _QUIET_FRAMES_BEFORE_IDLE))
        quiet[:] = np.where(has, 0, quiet + listen)
        channels = np.flatnonzero(listen)
        k = len(channels)
        if len(self._frames) < k:
            self._frames = np.zeros((max(k, 2 * len(self._frames)), SAMPLES_PER_FRAME), np.int16)
        frames = self._frames[:k]
        row_of = np.full(n, -1, dtype=np.intp)
        row_of[channels] = np.arange(k)
        frames[~has[channels]] = 0
        self._tick_in = (frames, row_of, has)
        self._gather_in(np.flatnonzero(whole), frames, row_of)
        for slot in np.flatnonzero(has & ~whole).tolist():  # the frame spans chunks, or ends
            call = self._by_slot[slot]
            assert call is not None
            callbacks += self._compose_in(call, frames[row_of[slot]])
        pos += whole * SAMPLES_PER_FRAME
        for slot in np.flatnonzero(whole & (pos >= end) & self._in_then[:n]).tolist():
            call = self._by_slot[slot]
            assert call is not None
            callbacks += self._next_chunk(call)

        # 2. DTMF over all audible calls at once
        tone_slots: np.ndarray | None = None
        if k:
            for slot, key in self._dtmf.process(channels, frames):
                call = self._by_slot[slot]
                if call is None:
                    continue
                self._wake(call)  # due from here: settled in step 5
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

        # 3. which calls need Python this frame; the rest advance in the arrays
        fast, playing, pos = self._fast[:n], self._playing[:n], self._pos[:n]
        now_s = (frame_no - self._start[:n]) * FRAME_SECONDS
        due = alive & (
            ~fast
            | (playing & (pos + SAMPLES_PER_FRAME >= self._end[:n]))
            | (now_s >= self._deadline[:n] - _DEADLINE_SLACK)
        )
        steady = alive & ~due
        rec_slots = np.flatnonzero(self._recording[:n])
        rec_out: dict[int, np.ndarray] = {}

        # 4. the steady calls' outbound frames, for whoever takes them; then advance them
        out_slots = np.flatnonzero(steady & playing & self._needs_out[:n])
        if len(out_slots):
            outs = self._gather_out(out_slots)
            for slot, steady_out in zip(out_slots.tolist(), outs, strict=True):
                call = self._by_slot[slot]
                assert call is not None
                if call._listener is not None:
                    call._listener(steady_out)
                if call.record:
                    rec_out[slot] = steady_out
        pos += (steady & playing) * SAMPLES_PER_FRAME

        # 5. the due calls, one by one: speech and timers of prompts, rendering, components
        for slot in np.flatnonzero(due).tolist():
            call = self._by_slot[slot]
            assert call is not None
            self._wake(call)
            row = row_of[slot]
            frame = frames[row].copy() if row >= 0 and has[slot] else None
            out: np.ndarray | None = None
            if call.components:
                now = (frame_no - call.start_frame) * FRAME_SECONDS
                for control_id, prompt in call.prompts():
                    if prompt.vad is not None:
                        if tone_slots is None:
                            tone_slots = np.zeros(n, dtype=bool)
                            if k:
                                tone_slots[channels] = self._dtmf.in_tone(channels)
                        tone = bool(tone_slots[slot])
                        events += self._listen(call, control_id, prompt, frame, now, tone)
                    if prompt.collector.has_timer:
                        outputs = prompt.collector.tick(now)
                        if outputs:
                            events += self._collect_events(call, control_id, outputs, now)
                out = self._render(call, events)
                if call.media_components:
                    out = self._run_components(call, frame, out, now, events)
            if out is not None:
                if call._listener is not None:
                    call._listener(out)
                if call.record:
                    rec_out[slot] = out
            self._settle(call)

        # 6. recording: both channels of every recorded call, in blocks of _REC_FRAMES
        if len(rec_slots):
            self._record(rec_slots, frame_no, frames, row_of, has, rec_out)

        self.frame += 1
        if self._late:
            callbacks += self._late
            self._late = []
        for callback in callbacks:
            callback()
        return events

    # -- the arrays ---------------------------------------------------------------------------
    def _wake(self, call: CallMedia) -> None:
        """Hand the call back to Python: its playback's offset is synced from the arrays, and
        the call is due from now until :meth:`_settle`."""
        slot = call.dtmf_channel
        if not self._fast[slot]:
            return
        playback = call._fast_playback
        if playback is not None:
            playback.offset = int(self._pos[slot])
        call._fast_playback = call._fast_samples = call._fast_windows = None
        self._fast[slot] = self._playing[slot] = False

    def _settle(self, call: CallMedia) -> None:
        """After Python has looked at the call: can the arrays alone carry it on?"""
        slot = call.dtmf_channel
        deadline = np.inf
        live: list[Playback] = []
        fast = not call.media_components
        for component in call.components.values():
            if isinstance(component, _Prompt):
                due = component.collector.next_deadline
                if due is not None and due < deadline:
                    deadline = due
                if component.vad is not None:
                    fast = False
                if not component.playback.done:
                    live.append(component.playback)
            elif isinstance(component, Playback) and not component.done:
                live.append(component)
        self._deadline[slot] = deadline
        playing = False
        if fast and live:
            playback = live[0]
            item = playback.current
            samples = None if item is None else item.samples
            fast = (
                len(live) == 1
                and playback.state is PlaybackState.PLAYING
                and item is not None
                and samples is not None
                and item.started_at is not None
                and playback.offset + SAMPLES_PER_FRAME < len(samples)
            )
            if fast:
                assert samples is not None
                playing = True
                call._fast_playback, call._fast_samples = playback, samples
                call._fast_windows = None  # made by _gather_out, if anyone takes the frames
                self._pos[slot], self._end[slot] = playback.offset, len(samples)
                self._gain[slot] = playback.gain
        self._fast[slot] = fast
        self._playing[slot] = playing

    def _gather_out(self, slots: np.ndarray) -> np.ndarray:
        """The next outbound frame of each steady playing slot, with its gain: (k, frame)."""
        out = np.empty((len(slots), SAMPLES_PER_FRAME), dtype=np.int16)
        groups: dict[int, tuple[np.ndarray, list[int]]] = {}  # by the samples' id
        for i, slot in enumerate(slots.tolist()):
            call = self._by_slot[slot]
            assert call is not None and call._fast_samples is not None
            samples = call._fast_samples
            group = groups.get(id(samples))
            if group is None:
                windows = call._fast_windows
                if windows is None:
                    windows = call._fast_windows = sliding_window_view(samples, SAMPLES_PER_FRAME)
                group = groups[id(samples)] = (windows, [])
            group[1].append(i)
        for windows, members in groups.values():
            idx = np.asarray(members, dtype=np.intp)
            out[idx] = windows[self._pos[slots[idx]]]
        gain = self._gain[slots]
        scaled = gain != 1.0
        if scaled.any():
            mixed = out[scaled].astype(np.float32) * gain[scaled, None]
            out[scaled] = np.clip(mixed, -32768, 32767).astype(np.int16)
        return out

    def _push_inbound(
        self, call: CallMedia, samples: np.ndarray, on_done: Callable[[], None] | None
    ) -> None:
        if call.ended:
            if on_done is not None:
                on_done()
            return
        self._queue_chunk(call, _chunk(samples, on_done))

    def push_frames(self, calls: Sequence[CallMedia], frames: np.ndarray) -> None:
        """Queue row ``i`` of ``frames`` (int16, one row per call) as caller audio of
        ``calls[i]``: :meth:`CallMedia.push_inbound` for many calls at once, whose rows the
        tick then reads as one array (RTP decoded in a batch, say)."""
        frames = np.ascontiguousarray(frames, dtype=np.int16)
        if frames.ndim != 2 or len(frames) != len(calls):
            raise ValueError(f"expected one row of frames per call, got {frames.shape}")
        width = frames.shape[1]
        for i, call in enumerate(calls):
            if call.ended:
                continue
            self._queue_chunk(call, _Chunk(frames[i], frames, i * width, None))

    def on_tick_start(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Run ``hook()`` at the start of every tick, before any caller audio is read (an
        adapter pushes what arrived since the last tick); returns a function that removes it."""
        self._tick_hooks.append(hook)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._tick_hooks.remove(hook)

        return remove

    def _queue_chunk(self, call: CallMedia, chunk: _Chunk) -> None:
        slot = call.dtmf_channel
        if self._in_pos[slot] >= self._in_end[slot] and not call._queue:  # the line is idle
            if not len(chunk.samples):
                if chunk.on_done is not None:
                    self._late.append(chunk.on_done)  # after the next frame, as any chunk's
                return
            self._set_chunk(call, chunk)
        else:
            call._queue.append(chunk)
            call._queued_samples += len(chunk.samples)
            self._in_then[slot] = True

    def _set_chunk(self, call: CallMedia, chunk: _Chunk | None) -> None:
        """Read ``chunk`` next (None: the line is idle)."""
        slot = call.dtmf_channel
        old = call._chunk
        if old is not None:
            self._bases.release(old.owner)
        call._chunk = chunk
        if chunk is None:
            self._in_code[slot] = -1
            self._in_pos[slot] = self._in_end[slot] = 0
            self._in_then[slot] = bool(call._queue)
            return
        self._in_code[slot] = self._bases.take(chunk.owner)
        self._in_pos[slot] = chunk.start
        self._in_end[slot] = chunk.start + len(chunk.samples)
        self._in_then[slot] = chunk.on_done is not None or bool(call._queue)

    def _next_chunk(self, call: CallMedia) -> list[Callable[[], None]]:
        """The chunk being read is used up: its on_done, and on to the next one."""
        done = []
        chunk = call._chunk
        if chunk is not None and chunk.on_done is not None:
            done.append(chunk.on_done)
        while call._queue:
            following = call._queue.popleft()
            call._queued_samples -= len(following.samples)
            if len(following.samples):
                self._set_chunk(call, following)
                return done
            if following.on_done is not None:
                done.append(following.on_done)
        self._set_chunk(call, None)
        return done

    def _compose_in(self, call: CallMedia, frame: np.ndarray) -> list[Callable[[], None]]:
        """Fill ``frame`` from the end of the chunk being read and the chunks after it (the
        rest is silence); returns the on_done callbacks of the chunks used up."""
        slot = call.dtmf_channel
        pos = int(self._in_pos[slot])
        filled = 0
        done: list[Callable[[], None]] = []
        while (chunk := call._chunk) is not None:
            offset = pos - chunk.start
            size = len(chunk.samples)
            take = min(SAMPLES_PER_FRAME - filled, size - offset)
            frame[filled : filled + take] = chunk.samples[offset : offset + take]
            filled += take
            if offset + take < size:  # the frame is full and the chunk goes on
                self._in_pos[slot] = pos + take
                break
            done += self._next_chunk(call)
            pos = int(self._in_pos[slot])
            if filled >= SAMPLES_PER_FRAME:
                break
        frame[filled:] = 0
        return done

    def _inbound_frame(self, slot: int) -> np.ndarray | None:
        frames, row_of, has = self._tick_in
        if slot >= len(has) or not has[slot]:
            return None
        frame: np.ndarray = frames[row_of[slot]].copy()
        return frame

    def _gather_in(self, slots: np.ndarray, frames: np.ndarray, row_of: np.ndarray) -> None:
        """Copy the next whole frame of each of ``slots`` into its row of ``frames``."""
        if not len(slots):
            return
        codes = self._in_code[slots]
        pos = self._in_pos[slots]
        rows = row_of[slots]
        first = int(codes[0])
        if (codes == first).all():
            groups = [(first, slice(None))]
        else:
            order = np.argsort(codes, kind="stable")
            codes, pos, rows = codes[order], pos[order], rows[order]
            cuts = np.flatnonzero(np.diff(codes)) + 1
            bounds = [0, *cuts.tolist(), len(codes)]
            groups = [(int(codes[a]), slice(a, b)) for a, b in itertools.pairwise(bounds)]
        for code, part in groups:
            windows = self._bases.windows(code)
            frames[rows[part]] = windows[pos[part]]

    def _rec_alloc(self) -> int:
        if self._rec_free:
            return self._rec_free.pop()
        row = self._rec_next
        self._rec_next += 1
        if row >= self._rec_cap:
            cap = max(16, 2 * self._rec_cap)
            buf = np.zeros((cap, _REC_FRAMES, 2, SAMPLES_PER_FRAME), dtype=np.int16)
            buf[: self._rec_cap] = self._rec_buf
            self._rec_buf, self._rec_cap = buf, cap
        return row

    def _record(
        self,
        slots: np.ndarray,
        frame_no: int,
        frames: np.ndarray,
        row_of: np.ndarray,
        has: np.ndarray,
        outs: dict[int, np.ndarray],
    ) -> None:
        """Write this frame of both channels of the recorded ``slots`` into their blocks."""
        rows = self._rec_row[slots]
        at = (frame_no - self._start[slots] + slots) % _REC_FRAMES  # see _rec_index
        block = np.zeros((len(slots), 2, SAMPLES_PER_FRAME), dtype=np.int16)
        heard = has[slots]
        block[heard, 0] = frames[row_of[slots[heard]]]
        if outs:
            index = {slot: i for i, slot in enumerate(slots.tolist())}
            for slot, out in outs.items():
                block[index[slot], 1] = out
        self._rec_buf[rows, at] = block
        for i in np.flatnonzero(at == _REC_FRAMES - 1).tolist():
            call = self._by_slot[int(slots[i])]
            assert call is not None
            self._hand_recording(call, _REC_FRAMES)

    @staticmethod
    def _rec_index(call: CallMedia, frame_no: int) -> int:
        """Where frame ``frame_no`` of the call goes in its recording block. Blocks start at a
        different frame for each slot, so calls that start together do not all hand a block to
        their recorders in the same tick."""
        return (frame_no - call.start_frame + call.dtmf_channel) % _REC_FRAMES

    def _hand_recording(self, call: CallMedia, count: int | None = None) -> None:
        """Hand the recorder the frames of the call's current block it does not have yet: the
        first ``count`` (default: every frame recorded so far) of the block."""
        recorder = call._recorder
        if recorder is None:
            return
        slot = call.dtmf_channel
        given = int(self._rec_given[slot])
        if count is None:
            count = self._rec_index(call, self.frame)
        if count > given:
            block = self._rec_buf[self._rec_row[slot], given:count]
            recorder.append(block[:, 0].flatten(), block[:, 1].flatten())  # copies: rows recycle
        self._rec_given[slot] = 0 if count == _REC_FRAMES else count

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
