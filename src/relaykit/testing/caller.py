"""The virtual caller: the far end of a call (an inbound call it placed, or an outbound call a
virtual callee answered), pressing real DTMF tones into its audio.

Besides acting (``press``, ``say``, ``play_wav``, ``silence``, ``hangup``, and answering as a
machine or a person for the IVR's answering-machine detection) it checks what the IVR does
(``expect_prompt``, ``expect_hangup``, ``wait_listening``, ``heard_digits`` — DTMF decoded
from the IVR's audio) and keeps an event log (``event_log()``; written as JSON beside every
WAV by ``save_wav``) for call timelines.

Every wait follows the server's media clock or the event loop's clock, never the wall clock, so
a fast-forwarding loop clock (``looptime``) runs the same conversation in a fraction of the time.
"""

from __future__ import annotations

__all__ = ["CALL_LOG_FORMAT", "CallerAction", "Heard", "VirtualCaller", "call_event_log"]

import asyncio
import contextlib
import json
import re
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..calls import Call, CallEvent, CallService, CallState, ComponentChanged, TranscriptEntry
from ..calls.log import caller_spans, transcript_entry
from ..errors import CallEndedError, RelayTimeoutError
from ..media.asr import Recognizer
from ..media.dtmf import ChannelDtmfDetector, generate_dtmf
from ..media.engine import HeardMedia
from ..media.frames import FRAME_SECONDS, SAMPLE_RATE
from ..media.record import beep
from ..media.sources import load_audio
from ..media.tts import TtsEngine
from .expect import ExpectationError, PromptMatcher, audio_says

_T = TypeVar("_T")

CALL_LOG_FORMAT = "relaykit-call-log/2"  # the "format" field of event_log() and its JSON files
MACHINE_GREETING = (
    "Hi, you have reached the voicemail of Alex Morgan. I am not able to take your call "
    "right now. Please leave your name, your number and a short message after the tone."
)
MACHINE_BEEP_HZ = 1400.0


def call_event_log(call: Call) -> dict[str, Any]:
    """A call as JSON-ready data: who, where, and its log's events (times in call seconds), as
    :meth:`relaykit.calls.CallEvent.to_dict` writes them; the format of the JSON beside every
    WAV, read by the timeline."""
    return {
        "format": CALL_LOG_FORMAT,
        "call_id": call.call_id,
        "context": call.context,
        "from": call.from_number,
        "to": call.to_number,
        "state": call.state.value,
        "end_reason": call.end_reason,
        "sample_rate": SAMPLE_RATE,
        "duration": round(call.media.recorded_seconds, 3),
        "events": [event.to_dict() for event in call.log],
    }


@dataclass(frozen=True, slots=True)
class Heard:
    """One media item the IVR played to the caller. Times are seconds since the call began."""

    kind: str  # tts, audio, silence or ringtone
    label: str  # the text, URL, ringtone name or duration
    start: float
    end: float | None  # None while it is still playing
    volume: float  # dB, as set when the item started

    @property
    def text(self) -> str | None:
        return self.label if self.kind == "tts" else None

    @property
    def url(self) -> str | None:
        return self.label if self.kind == "audio" else None


@dataclass(frozen=True, slots=True)
class CallerAction:
    """Audio the caller sent: ``kind`` press, say, play, silence or audio; call-time seconds."""

    kind: str
    label: str
    start: float
    end: float


class VirtualCaller:
    """Returned by :meth:`RelayServer.dial_in` (and, for a call the IVR placed, by
    :meth:`VirtualCallees.expect_answered`); drives the far end of one call.

    It is an adapter on the call interface: it sends audio into the call and reads the call's
    log (:mod:`relaykit.calls.events`) and the media the IVR played.

    Args:
        service: the call service the call runs on.
        call: the call (an inbound call this caller placed, or an outbound call it answered).
        tts: the synthesiser :meth:`say` speaks with.
        recognizer: checks what audio prompts say (:meth:`expect_prompt`).
        inline: run synthesis and recognition on the event loop (fast-clock tests).
    """

    def __init__(
        self,
        service: CallService,
        call: Call,
        *,
        tts: TtsEngine,
        recognizer: Recognizer,
        inline: bool = False,
    ) -> None:
        self._service = service
        self._call = call
        self._tts = tts
        self._recognizer = recognizer
        self._inline = inline
        self._cursor = 0  # heard items before this index were consumed by expect_prompt
        self._recognized: dict[tuple[int, str], float | None] = {}  # (item id, phrase) → confidence
        self._changed = asyncio.Event()
        self._heard_keys: list[tuple[float, str]] = []
        self._key_detector: ChannelDtmfDetector | None = None
        call.log.subscribe(self._on_event)
        call.media.keep_audio = True  # expect_prompt may check what an audio prompt says

    def _on_event(self, event: CallEvent) -> None:
        self._changed.set()
        if isinstance(event, ComponentChanged) and event.component == "send_digits":
            self.listen_for_digits()

    @property
    def call_id(self) -> str:
        return self._call.call_id

    @property
    def state(self) -> str:
        return self._call.state.value

    @property
    def ended(self) -> bool:
        return self._call.ended

    @property
    def heard(self) -> list[Heard]:
        return [
            Heard(
                h.kind,
                h.label,
                round(h.started_at, 3),
                None if h.ended_at is None else round(h.ended_at, 3),
                h.volume_db,
            )
            for h in self._call.media.heard
        ]

    @property
    def transcript(self) -> list[TranscriptEntry]:
        """The call's readable account, drawn from its log."""
        return self._call.log.transcript()

    @property
    def events(self) -> list[CallEvent]:
        """The call's log: every event so far, in order."""
        return list(self._call.log)

    @property
    def actions(self) -> list[CallerAction]:
        """What the caller sent into the call, in order, with call times."""
        return [
            CallerAction(span.kind, span.label, span.start, span.end or span.start)
            for span in caller_spans(self._call.log)
        ]

    @property
    def end_reason(self) -> str | None:
        return self._call.end_reason

    @property
    def context(self) -> str:
        return self._call.context

    @property
    def now(self) -> float:
        """Call time in seconds (the media clock of this call)."""
        return self._now()

    def on_transcript(self, listener: Callable[[TranscriptEntry], None]) -> Callable[[], None]:
        """Call ``listener(entry)`` for every transcript entry, past ones first.

        Returns a function that removes the listener again.
        """

        def entry_of(event: CallEvent) -> None:
            entry = transcript_entry(event)
            if entry is not None:
                listener(entry)

        return self._call.log.subscribe(entry_of, replay=True)

    def on_event(self, listener: Callable[[CallEvent], None]) -> Callable[[], None]:
        """Call ``listener(event)`` for every event of the call's log, past ones first.

        Returns a function that removes the listener again.
        """
        return self._call.log.subscribe(listener, replay=True)

    async def wait_for_state(self, state: str, timeout: float = 5.0) -> None:
        """Wait until the call reaches ``state`` (or a later one)."""
        order = [s.value for s in CallState]
        if state not in order:
            raise ValueError(f"unknown call state {state!r}")
        target = order.index(state)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while order.index(self._call.state.value) < target:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise RelayTimeoutError(
                    f"call is {self._call.state.value!r} after {timeout:g}s, not {state!r}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._call.state_changed.wait(), remaining)

    async def wait_answered(self, timeout: float = 5.0) -> None:
        await self.wait_for_state("answered", timeout)
        if self._call.state is not CallState.ANSWERED:
            raise CallEndedError(f"the call ended before it was answered ({self._call.end_reason})")

    async def press(self, digits: str, *, tone_ms: int = 100, gap_ms: int = 100) -> None:
        """Send ``digits`` as real DTMF tones; returns once the last gap has been sent."""
        samples = generate_dtmf(digits, tone_ms=tone_ms, gap_ms=gap_ms)
        await self._send(samples, "press", digits)

    async def say(
        self, text: str, *, language: str | None = None, gender: str | None = None
    ) -> None:
        """Speak ``text`` (synthesised with the server's TTS) into the call."""
        samples = await self._work(self._tts.synthesize, text, language=language, gender=gender)
        await self._send(samples, "say", text)

    async def play_wav(self, path: str | Path) -> None:
        """Send a recording (WAV, MP3, FLAC or OGG; any rate) into the call."""
        samples = await self._work(load_audio, str(path))
        await self._send(samples, "play", Path(path).name)

    async def silence(self, seconds: float) -> None:
        """Stay silent for ``seconds`` of call time."""
        await self._send(np.zeros(round(seconds * SAMPLE_RATE), dtype=np.int16), "silence", "")

    async def send_audio(self, samples: np.ndarray, *, label: str | None = None) -> None:
        """Send 16 kHz int16 audio into the call; returns when it has all been played.

        With ``label`` (a file name, say) the transcript notes "plays LABEL".
        """
        await self._send(samples, "audio" if label is None else "play", label or "")

    async def _send(self, samples: np.ndarray, kind: str, label: str) -> None:
        if self._call.ended:
            raise CallEndedError("the call has ended")
        start = self._now() + self._call.media.inbound_pending
        end = round(start + len(samples) / SAMPLE_RATE, 3)
        self._service.caller_acted(self._call, kind, label, end, at=start)
        done = asyncio.get_running_loop().create_future()

        def finished() -> None:
            if not done.done():
                done.set_result(None)

        self._service.inject_audio(self._call, samples, finished)
        await done

    async def answer_as_machine(
        self,
        greeting: str = MACHINE_GREETING,
        *,
        beep_tone: bool = True,
        language: str | None = None,
        gender: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        """Behave as an answering machine once the IVR has answered: speak ``greeting``
        (a long one by default), then a 0.5 s beep at 1400 Hz; returns after the beep.

        For the IVR's answering-machine detection (``detect_answering_machine``).
        """
        await self.wait_answered(timeout)
        samples = await self._work(self._tts.synthesize, greeting, language=language, gender=gender)
        await self._send(samples, "say", greeting)
        if beep_tone:
            await self._send(beep(0.5, MACHINE_BEEP_HZ), "play", "beep")

    async def answer_as_human(
        self,
        text: str = "Hello?",
        *,
        language: str | None = None,
        gender: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        """Answer as a person would once the IVR has answered: a short ``text``, then silence."""
        await self.wait_answered(timeout)
        await self.say(text, language=language, gender=gender)

    def listen_for_digits(self) -> None:
        """Decode DTMF keys in what the IVR sends from now on (:meth:`heard_digits`).

        Started by itself when the IVR starts sending digits (``send_digits``); call it first
        to hear keys the IVR plays in other ways (an audio file of tones).
        """
        if self._key_detector is not None:
            return
        detector = self._key_detector = ChannelDtmfDetector()
        media = self._call.media
        previous = media.on_outbound

        def hear(frame: np.ndarray) -> None:
            if previous is not None:
                previous(frame)
            keys = detector.push(frame)
            if keys:
                now = round(self._now(), 3)
                self._heard_keys += [(now, key) for key in keys]
                self._changed.set()

        media.on_outbound = hear

    def heard_digits(self) -> str:
        """The DTMF keys decoded so far in the IVR's audio, in order (``"123#"``)."""
        return "".join(key for _, key in self._heard_keys)

    @property
    def heard_keys(self) -> list[tuple[float, str]]:
        """The keys decoded in the IVR's audio with their call times (onset of each tone)."""
        return list(self._heard_keys)

    async def hangup(self) -> None:
        """Hang up from the caller's side (end_reason ``hangup``)."""
        if not self._call.ended:
            self._service.caller_acted(self._call, "hangup")
            self._service.far_end_hung_up(self._call, "hangup")

    def recording(self) -> np.ndarray:
        """The call so far as (n, 2) int16 samples at 16 kHz: left the caller, right the IVR."""
        return self._call.media.recording()

    def save_wav(self, path: str | Path, *, event_log: bool = True) -> Path:
        """Write the call as a stereo 16 kHz WAV (left: caller, right: IVR).

        With ``event_log`` (the default) the call's event log goes beside it as JSON
        (``call.wav`` → ``call.json``), ready for ``relaykit timeline call.json``.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        recorder = self._call.media.recorder
        if recorder is not None:
            recorder.write_wav(path)  # streamed from the call's recording file
        else:
            with wave.open(str(path), "wb") as out:
                out.setnchannels(2)
                out.setsampwidth(2)
                out.setframerate(SAMPLE_RATE)
        if event_log:
            self.save_log(path.with_suffix(".json"), wav=path.name)
        return path

    def save_log(self, path: str | Path, *, wav: str | None = None) -> Path:
        """Write :meth:`event_log` as JSON; ``wav`` names the recording beside it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        log = self.event_log()
        if wav is not None:
            log["wav"] = wav
        path.write_text(json.dumps(log, indent=1, ensure_ascii=False) + "\n")
        return path

    def event_log(self) -> dict[str, Any]:
        """The call as JSON-ready data: see :func:`call_event_log`."""
        return call_event_log(self._call)

    # -- expectations -----------------------------------------------------------------------------
    async def expect_prompt(
        self,
        contains: str | None = None,
        *,
        matches: str | re.Pattern[str] | None = None,
        url: str | None = None,
        timeout: float = 5.0,
        recognize: bool = True,
    ) -> Heard:
        """Wait until the IVR starts playing a prompt that matches; return it (``end`` None).

        Args:
            contains: text the prompt must contain (case, accents and punctuation ignored).
                TTS prompts are compared by their text; for audio files the speech recogniser
                checks whether the recording says it (whole sentences or clauses only; see
                :mod:`relaykit.testing.expect`).
            matches: a regular expression the TTS text must match (case-insensitive).
            url: a substring of the audio file's URL.
            timeout: seconds of call time to wait.
            recognize: run the speech recogniser on audio files (``contains`` only).

        Each prompt is matched once: the next ``expect_prompt`` looks only at prompts that
        started after the one returned. Raises :class:`ExpectationError` listing what the IVR
        played (with times) when nothing matches in time or the call ends.
        """
        __tracebackhide__ = True  # pytest shows the test line, not this
        matcher = PromptMatcher.build(contains, matches, url)
        started = self._now()

        async def check() -> Heard | None:
            media = self._call.media.heard
            for index in range(self._cursor, len(media)):
                if await self._item_matches(media[index], matcher, recognize):
                    self._cursor = index + 1
                    return self.heard[index]
            return None

        def failure(why: str) -> ExpectationError:
            return ExpectationError(
                f"expect_prompt({matcher.describe()}): {why}\n{self._describe_heard(matcher)}"
            )

        return await self._wait_until(
            check,
            timeout,
            lambda: failure(
                f"nothing matching was played in {timeout:g} s of call time "
                f"({started:.2f} s to {self._now():.2f} s)"
            ),
            lambda: failure(f"the call ended ({self._call.end_reason}) before a matching prompt"),
        )

    async def expect_hangup(self, timeout: float = 10.0) -> str:
        """Wait until the call ends (the IVR hangs up); returns the end reason.

        Raises :class:`ExpectationError` with the last events if the call is still up after
        ``timeout`` seconds of call time.
        """

        __tracebackhide__ = True  # pytest shows the test line, not this

        async def check() -> str | None:
            return (self._call.end_reason or "hangup") if self._call.ended else None

        return await self._wait_until(
            check,
            timeout,
            lambda: ExpectationError(
                f"expect_hangup(): the call is still {self.state} after {timeout:g} s of call time"
                f"\n{self._describe_transcript()}"
            ),
            None,
        )

    async def wait_listening(self, timeout: float = 5.0) -> None:
        """Wait until the IVR is collecting input (a prompt runs), so keys and speech count."""

        __tracebackhide__ = True  # pytest shows the test line, not this

        async def check() -> bool | None:
            return True if self._service.is_collecting(self._call) else None

        await self._wait_until(
            check,
            timeout,
            lambda: ExpectationError(
                f"wait_listening(): no prompt was collecting input within {timeout:g} s of call "
                f"time\n{self._describe_transcript()}"
            ),
            lambda: ExpectationError(
                f"wait_listening(): the call ended ({self._call.end_reason}) before a prompt "
                f"started\n{self._describe_transcript()}"
            ),
            poll=True,
        )

    async def _wait_until(
        self,
        check: Callable[[], Awaitable[_T | None]],
        timeout: float,
        on_timeout: Callable[[], Exception],
        on_ended: Callable[[], Exception] | None,
        *,
        poll: bool = False,
    ) -> _T:
        """Re-run ``check`` on every transcript change until it returns a value.

        ``timeout`` counts call time (media frames), so a slow machine does not make the wait
        shorter; a loop-time backstop ends it should the media clock stall.
        """
        __tracebackhide__ = True  # pytest shows the test line, not this
        loop = asyncio.get_running_loop()
        deadline = self._now() + timeout
        backstop = loop.time() + 3 * timeout + 10.0
        while True:
            self._changed.clear()
            result = await check()
            if result is not None:
                return result
            if self._call.ended and on_ended is not None:
                raise on_ended()
            remaining = deadline - self._now()
            if remaining <= 0 or loop.time() >= backstop or self._call.ended:
                raise on_timeout()
            wait = min(remaining, FRAME_SECONDS) if poll else remaining
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(wait, FRAME_SECONDS))

    async def _item_matches(
        self, item: HeardMedia, matcher: PromptMatcher, recognize: bool
    ) -> bool:
        if item.kind == "tts":
            return matcher.text_matches(item.label)
        if item.kind != "audio":
            return False
        by_url = matcher.url_matches(item.label)
        if by_url is not None:
            return by_url and (matcher.contains is None or await self._says(item, matcher))
        if not recognize or matcher.phrase is None or matcher.matches is not None:
            return False
        return await self._says(item, matcher)

    async def _says(self, item: HeardMedia, matcher: PromptMatcher) -> bool:
        phrase = matcher.phrase
        samples = item.item.samples
        if phrase is None or samples is None:
            return False
        key = (id(item), phrase)
        if key not in self._recognized:
            self._recognized[key] = await self._work(audio_says, self._recognizer, samples, phrase)
        return self._recognized[key] is not None

    def _describe_heard(self, matcher: PromptMatcher) -> str:
        heard = self.heard
        if not heard:
            lines = ["The IVR played nothing."]
        else:
            lines = ["The IVR played:"]
            for index, (h, media) in enumerate(zip(heard, self._call.media.heard, strict=True)):
                end = "…" if h.end is None else f"{h.end:6.2f}"
                note = ""
                if index < self._cursor:
                    note = "  (matched by an earlier expect_prompt)"
                elif h.kind == "audio":
                    confidence = self._recognized.get((id(media), matcher.phrase or ""), "?")
                    if confidence is None:
                        note = f"  (speech recognition: does not say {matcher.phrase!r})"
                shown = repr(h.label) if h.kind == "tts" else h.label
                lines.append(f"  {h.start:6.2f} – {end} s  {h.kind:<8} {shown}{note}")
        lines.append(
            f"Call state: {self.state}"
            + (f" ({self._call.end_reason})" if self._call.ended else "")
        )
        return "\n".join(lines)

    def _describe_transcript(self, last: int = 12) -> str:
        transcript = self.transcript
        entries = transcript[-last:]
        lines = ["Last events:" if len(transcript) > last else "Events:"]
        lines += [f"  {e.at:6.2f} s  {e.actor:>6}  {e.text}" for e in entries]
        return "\n".join(lines)

    async def _work(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """CPU work (TTS, decoding, recognition): on the loop when the server runs inline."""
        if self._inline:
            return fn(*args, **kwargs)
        return await asyncio.to_thread(fn, *args, **kwargs)

    def _now(self) -> float:
        return self._service.call_time(self._call)
