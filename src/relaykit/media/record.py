"""The recorder: a call's audio, frame by frame, into a sink (the file writer lives above).

``direction`` picks the audio (``speak``: the caller, ``listen``: what the caller hears,
``both``: the two mixed), ``stereo`` keeps the two sides apart instead (left the caller, right
what the caller hears; a side outside ``direction`` stays silent). With ``beep`` the caller
first hears a short 1 kHz beep; recording starts when it ends. The recording ends on one of
``terminators`` pressed by the caller, on ``end_silence_timeout`` seconds of silence after
speech, with ``no_input`` when no speech came within ``initial_timeout`` seconds (0 turns
either timeout off), when stopped, or when the call ends. Speech is judged by a voice
detector on the caller's side (on what the caller hears when only that is recorded).
"""

from __future__ import annotations

__all__ = ["BEEP_FREQUENCY", "BEEP_SECONDS", "Recorder", "beep"]

import numpy as np

from .components import AudioSink, MediaComponent, Update, side_audio
from .engine import VoiceDetector
from .frames import FRAME_SECONDS, SAMPLE_RATE, SAMPLES_PER_FRAME

BEEP_FREQUENCY = 1000.0  # Hz
BEEP_SECONDS = 0.5
_BEEP_LEVEL = 0.25  # of full scale (-12 dBFS)
_SILENCE = np.zeros(SAMPLES_PER_FRAME, dtype=np.int16)


def beep(seconds: float = BEEP_SECONDS, frequency: float = BEEP_FREQUENCY) -> np.ndarray:
    """A sine beep with 5 ms ramps, int16 at 16 kHz."""
    n = round(seconds * SAMPLE_RATE)
    tone = np.sin(2 * np.pi * frequency * np.arange(n) / SAMPLE_RATE) * (32767 * _BEEP_LEVEL)
    ramp = min(n // 2, SAMPLE_RATE // 200)
    if ramp:
        envelope = np.linspace(0.0, 1.0, ramp)
        tone[:ramp] *= envelope
        tone[-ramp:] *= envelope[::-1]
    return np.round(tone).astype(np.int16)


class Recorder(MediaComponent):
    """``calling.record`` in the engine; see the module docstring. ``sink`` takes each frame."""

    kind = "record"
    renders = True

    def __init__(
        self,
        control_id: str,
        sink: AudioSink,
        *,
        direction: str = "speak",
        stereo: bool = False,
        beep_first: bool = False,
        initial_timeout: float = 0.0,
        end_silence_timeout: float = 0.0,
        terminators: str = "",
        vad: VoiceDetector | None = None,
    ) -> None:
        super().__init__(control_id)
        if direction not in ("speak", "listen", "both"):
            raise ValueError(f"unknown direction {direction!r}")
        if (initial_timeout > 0 or end_silence_timeout > 0) and vad is None:
            raise ValueError("timeouts need a voice detector")
        self.sink = sink
        self.direction = direction
        self.stereo = stereo
        self.initial_timeout = initial_timeout
        self.end_silence_timeout = end_silence_timeout
        self.terminators = terminators.upper()
        self.vad = vad
        self.frames = 0  # frames recorded
        self._beep: np.ndarray | None = beep() if beep_first else None
        self._beep_pos = 0
        self._recording_from: float | None = None
        self._last_voice: float | None = None

    @property
    def duration(self) -> float:
        """Seconds recorded so far."""
        return round(self.frames * FRAME_SECONDS, 3)

    @property
    def rendering(self) -> bool:
        return self._beep is not None and self._beep_pos < len(self._beep) and not self.done

    def render(self, mix: np.ndarray, now: float) -> list[Update]:
        if self._beep is None:
            return []
        chunk = self._beep[self._beep_pos : self._beep_pos + SAMPLES_PER_FRAME]
        mix[: len(chunk)] += chunk
        self._beep_pos += SAMPLES_PER_FRAME
        return []

    def key(self, key: str, now: float) -> list[Update]:
        if key.upper() in self.terminators:
            return self._end("finished", "terminator")
        return []

    def hear(
        self, inbound: np.ndarray | None, outbound: np.ndarray | None, now: float
    ) -> list[Update]:
        if self._beep is not None:
            if self._beep_pos < len(self._beep):
                return []
            self._beep = None  # the beep's last frame went out: record from the next one
            return []
        if self._recording_from is None:
            self._recording_from = now
        if self.stereo:
            left = inbound if inbound is not None and self.direction != "listen" else _SILENCE
            right = outbound if outbound is not None and self.direction != "speak" else _SILENCE
            frame = np.column_stack((left, right))
        else:
            frame = side_audio(self.direction, inbound, outbound)
        if not self.sink(frame):
            return self._end("error", "write failed")
        self.frames += 1
        if self.vad is None:
            return []
        voiced = inbound if self.direction != "listen" else outbound
        if self.vad.push(_SILENCE if voiced is None else voiced):
            self._last_voice = now
        if self._last_voice is None:
            if self.initial_timeout > 0 and now - self._recording_from >= self.initial_timeout:
                return self._end("no_input", "initial_timeout")
        elif self.end_silence_timeout > 0 and now - self._last_voice >= self.end_silence_timeout:
            return self._end("finished", "end_silence")
        return []

    def stop(self, now: float) -> list[Update]:
        return self._end("finished", "stopped")

    def hangup(self, now: float) -> list[Update]:
        return self._end("finished", "hangup")

    def _end(self, state: str, reason: str) -> list[Update]:
        return self.finish(state, reason, {"duration": self.duration})
