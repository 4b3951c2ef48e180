"""The virtual caller: the far end of an inbound call, pressing real DTMF tones into its audio."""

from __future__ import annotations

__all__ = ["Heard", "VirtualCaller"]

import asyncio
import contextlib
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CallEndedError, RelayTimeoutError
from ..media.dtmf import generate_dtmf
from ..media.frames import SAMPLE_RATE
from ..media.sources import load_audio
from ..server.calls import CallState, ServerCall, TranscriptEntry

if TYPE_CHECKING:
    from ..server.app import RelayServer


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


class VirtualCaller:
    """Returned by :meth:`RelayServer.dial_in`; drives the caller's side of one call."""

    def __init__(self, server: RelayServer, call: ServerCall) -> None:
        self._server = server
        self._call = call

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
        return list(self._call.transcript)

    def on_transcript(self, listener: Callable[[TranscriptEntry], None]) -> None:
        """Call ``listener(entry)`` for every transcript entry, past ones first."""
        for entry in self._call.transcript:
            listener(entry)
        self._call.listeners.append(listener)

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
        self._call.note(self._now(), "caller", f"presses {digits}")
        await self.send_audio(samples)

    async def say(
        self, text: str, *, language: str | None = None, gender: str | None = None
    ) -> None:
        """Speak ``text`` (synthesised with the server's TTS) into the call."""
        tts = self._server.loader.tts
        samples = await asyncio.to_thread(tts.synthesize, text, language=language, gender=gender)
        self._call.note(self._now(), "caller", f"says {text!r}")
        await self.send_audio(samples)

    async def play_wav(self, path: str | Path) -> None:
        """Send a recording (WAV, MP3, FLAC or OGG; any rate) into the call."""
        samples = await asyncio.to_thread(load_audio, str(path))
        self._call.note(self._now(), "caller", f"plays {Path(path).name}")
        await self.send_audio(samples)

    async def silence(self, seconds: float) -> None:
        """Stay silent for ``seconds`` of call time."""
        await self.send_audio(np.zeros(round(seconds * SAMPLE_RATE), dtype=np.int16))

    async def send_audio(self, samples: np.ndarray) -> None:
        """Send 16 kHz int16 audio into the call; returns when it has all been played."""
        if self._call.ended:
            raise CallEndedError("the call has ended")
        done = asyncio.get_running_loop().create_future()

        def finished() -> None:
            if not done.done():
                done.set_result(None)

        self._call.media.push_inbound(samples, finished)
        await done

    async def hangup(self) -> None:
        """Hang up from the caller's side (end_reason ``hangup``)."""
        if not self._call.ended:
            self._call.note(self._now(), "caller", "hangs up")
            self._server.hangup_from_caller(self._call)

    def recording(self) -> np.ndarray:
        """The call so far as (n, 2) int16 samples at 16 kHz: left the caller, right the IVR."""
        return self._call.media.recording()

    def save_wav(self, path: str | Path) -> Path:
        """Write the call as a stereo 16 kHz WAV (left: caller, right: IVR)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.recording()
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(data.astype("<i2").tobytes())
        return path

    def _now(self) -> float:
        return self._server.engine.call_time(self._call.media)
