"""Detectors on the caller's audio: keys, fax tones, and answering machines (AMD).

Each is a :class:`~relaykit.media.components.MediaComponent` that reports results as updates
whose state is v2's detect event (a key, ``CED``/``CNG``, ``HUMAN``, ``MACHINE``, ``UNKNOWN``,
``READY``, ``NOT_READY``) and ends with ``finished`` after ``timeout`` seconds, when stopped,
when the call ends, or when its answer is complete (AMD).

Fax tones
    T.30's calling tone CNG (1100 Hz, 0.5 s bursts) and answer tone CED (2100 Hz, 2.6-4 s).
    Per frame, the power at both frequencies (a DFT bin, one small matrix product) is compared
    with the frame's power: a frame is *tone* when one of them holds at least 60 % of it at
    -45 dBFS or louder. 0.35 s of CNG frames or 0.5 s of CED frames in a row report the tone,
    once per burst.

Answering machines
    By voice-activity timing, as v2's parameters describe it. After the caller's first speech
    (within ``initial_timeout``, else ``UNKNOWN``) the greeting is timed: once it holds
    ``machine_voice_threshold`` seconds of speech (its pauses not counted) or
    ``machine_words_threshold`` words (bursts of speech between quiet frames), it is a
    ``MACHINE``; if it stops for ``end_silence_timeout`` before that, a ``HUMAN``. A machine
    is ``READY`` for a message when its greeting ends: at the end of a beep (a steady pure tone
    of 120 ms or more), or after ``end_silence_timeout`` of silence; speech resuming after a
    pause of half that is reported ``NOT_READY``. HUMAN, UNKNOWN and READY end the detector.
    Accuracy on generated greetings and answers: ``python -m benchmarks.amd``.
"""

from __future__ import annotations

__all__ = ["DigitDetector", "FaxToneDetector", "MachineDetector", "ToneTracker"]

import numpy as np

from .components import MediaComponent, Update
from .engine import VoiceDetector
from .frames import FRAME_SECONDS, SAMPLE_RATE, SAMPLES_PER_FRAME

_FULL_SCALE_POWER = 32768.0 * 32768.0


class _Detector(MediaComponent):
    """A detector that ends with ``finished`` after ``timeout`` seconds."""

    kind = "detect"
    detect_type = ""

    def __init__(self, control_id: str, timeout: float) -> None:
        super().__init__(control_id)
        self.timeout = timeout
        self.results: list[str] = []

    def result(self, event: str) -> Update:
        self.results.append(event)
        return Update(event, {"type": self.detect_type})

    def finish(
        self, state: str, reason: str, params: dict[str, object] | None = None
    ) -> list[Update]:
        return super().finish(state, reason, {"type": self.detect_type, **(params or {})})

    def timed_out(self, now: float) -> list[Update]:
        if now - self.started_at >= self.timeout:
            return self.finish("finished", "timeout")
        return []

    def hear(
        self, inbound: np.ndarray | None, outbound: np.ndarray | None, now: float
    ) -> list[Update]:
        return self.timed_out(now)


class DigitDetector(_Detector):
    """Reports each key of ``digits`` the caller presses (``detect`` type ``digit``)."""

    detect_type = "digit"

    def __init__(self, control_id: str, timeout: float, digits: str = "0123456789#*") -> None:
        super().__init__(control_id, timeout)
        self.digits = digits.upper()

    def key(self, key: str, now: float) -> list[Update]:
        return [self.result(key)] if key.upper() in self.digits else []


class ToneTracker:
    """Power share of a few pure tones in each 20 ms frame (a DFT bin per tone)."""

    def __init__(self, frequencies: tuple[float, ...]) -> None:
        t = np.arange(SAMPLES_PER_FRAME) / SAMPLE_RATE
        rows = [np.cos(2 * np.pi * f * t) for f in frequencies]
        rows += [np.sin(2 * np.pi * f * t) for f in frequencies]
        self._basis = np.array(rows, dtype=np.float64)
        self._n = len(frequencies)

    def shares(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """Each tone's share of the frame's power (0-1), and the frame's level in dBFS."""
        x = frame.astype(np.float64)
        energy = float(np.dot(x, x))
        if energy <= 0.0:
            return np.zeros(self._n), -120.0
        proj = self._basis @ x
        power = proj[: self._n] ** 2 + proj[self._n :] ** 2
        shares = 2.0 * power / (SAMPLES_PER_FRAME * energy)
        level = 10.0 * np.log10(energy / SAMPLES_PER_FRAME / _FULL_SCALE_POWER)
        return shares, level


_FAX_TONES = {"CNG": (1100.0, 0.35), "CED": (2100.0, 0.5)}  # frequency, seconds to report
_TONE_SHARE = 0.6
_TONE_LEVEL_DB = -45.0
_TONE_REARM_FRAMES = 5


class FaxToneDetector(_Detector):
    """Reports fax tones (``detect`` type ``fax``): ``tone`` CED or CNG, None for both."""

    detect_type = "fax"

    def __init__(self, control_id: str, timeout: float, tone: str | None = None) -> None:
        super().__init__(control_id, timeout)
        self.tones = tuple(_FAX_TONES) if tone is None else (tone,)
        self._tracker = ToneTracker(tuple(_FAX_TONES[t][0] for t in self.tones))
        self._need = [round(_FAX_TONES[t][1] / FRAME_SECONDS) for t in self.tones]
        self._run = [0] * len(self.tones)
        self._quiet = [0] * len(self.tones)
        self._reported = [False] * len(self.tones)

    def hear(
        self, inbound: np.ndarray | None, outbound: np.ndarray | None, now: float
    ) -> list[Update]:
        updates: list[Update] = []
        if inbound is not None:
            shares, level = self._tracker.shares(inbound)
        else:
            shares, level = np.zeros(len(self.tones)), -120.0
        for i, tone in enumerate(self.tones):
            if level >= _TONE_LEVEL_DB and shares[i] >= _TONE_SHARE:
                self._run[i] += 1
                self._quiet[i] = 0
                if self._run[i] >= self._need[i] and not self._reported[i]:
                    self._reported[i] = True
                    updates.append(self.result(tone))
            else:
                self._quiet[i] += 1
                if self._quiet[i] >= _TONE_REARM_FRAMES:
                    self._run[i] = 0
                    self._reported[i] = False
        return updates + self.timed_out(now)


_BEEP_SHARE = 0.8  # of a frame's power in its strongest peak
_BEEP_LEVEL_DB = -40.0
_BEEP_MIN_SECONDS = 0.12
_PEAK_HALF_WIDTH = 2  # FFT bins each side of a peak


class MachineDetector(_Detector):
    """Answering-machine detection (``detect`` type ``machine``); see the module docstring."""

    detect_type = "machine"

    def __init__(
        self,
        control_id: str,
        timeout: float,
        vad: VoiceDetector,
        *,
        initial_timeout: float = 4.5,
        end_silence_timeout: float = 1.0,
        machine_voice_threshold: float = 1.25,
        machine_words_threshold: int = 6,
    ) -> None:
        super().__init__(control_id, timeout)
        self.vad = vad
        self.initial_timeout = initial_timeout
        self.end_silence_timeout = end_silence_timeout
        self.machine_voice_threshold = machine_voice_threshold
        self.machine_words_threshold = machine_words_threshold
        self.verdict: str | None = None  # HUMAN, MACHINE or UNKNOWN
        self.words = 0
        self._voiced = 0.0
        self._greeting_from: float | None = None
        self._last_voice = 0.0
        self._was_voice = False
        self._paused = False  # a machine's greeting paused (NOT_READY when it goes on)
        self._beep_bin = -1
        self._beep_frames = 0
        self._window = np.hanning(SAMPLES_PER_FRAME + 2)[1:-1]

    def hear(
        self, inbound: np.ndarray | None, outbound: np.ndarray | None, now: float
    ) -> list[Update]:
        frame = np.zeros(SAMPLES_PER_FRAME, dtype=np.int16) if inbound is None else inbound
        voice = self.vad.push(frame)
        if self._greeting_from is None:
            updates = self._waiting(voice, now)
        elif self.verdict is None:
            updates = self._greeting(voice, now)
        else:
            updates = self._machine(voice, frame, now)
        self._was_voice = voice
        if self.done:
            return updates
        return updates + self.timed_out(now)

    def _waiting(self, voice: bool, now: float) -> list[Update]:
        if voice:
            self._greeting_from = now
            self._last_voice = now
            self.words = 1
            return []
        if now - self.started_at >= self.initial_timeout:
            return self._decide("UNKNOWN", now, final=True)
        return []

    def _greeting(self, voice: bool, now: float) -> list[Update]:
        assert self._greeting_from is not None
        if voice:
            if not self._was_voice:
                self.words += 1
            self._last_voice = now
            self._voiced += FRAME_SECONDS
            long_enough = self._voiced >= self.machine_voice_threshold
            if long_enough or self.words >= self.machine_words_threshold:
                return self._decide("MACHINE", now)
            return []
        if now - self._last_voice >= self.end_silence_timeout:
            return self._decide("HUMAN", now, final=True)
        return []

    def _machine(self, voice: bool, frame: np.ndarray, now: float) -> list[Update]:
        tonal, beep_ended = self._beep(frame)
        if beep_ended:
            return self._ready()
        if tonal:  # a beep going on: not speech, but the greeting has not ended
            self._last_voice = now
            return []
        if voice:
            self._last_voice = now
            if self._paused:
                self._paused = False
                return [self.result("NOT_READY")]
            return []
        silent_for = now - self._last_voice
        if silent_for >= self.end_silence_timeout:
            return self._ready()
        if silent_for >= self.end_silence_timeout / 2:
            self._paused = True
        return []

    def _decide(self, verdict: str, now: float, *, final: bool = False) -> list[Update]:
        self.verdict = verdict
        updates = [self.result(verdict)]
        if final:
            updates += self.finish("finished", verdict.lower())
        return updates

    def _ready(self) -> list[Update]:
        return [self.result("READY"), *self.finish("finished", "ready")]

    def _beep(self, frame: np.ndarray) -> tuple[bool, bool]:
        """Whether ``frame`` is a steady pure tone, and whether a beep (such a tone of at
        least 120 ms) ended just before it."""
        x = frame.astype(np.float64)
        power = float(np.dot(x, x)) / SAMPLES_PER_FRAME / _FULL_SCALE_POWER
        peak = -1
        if power > 10.0 ** (_BEEP_LEVEL_DB / 10.0):
            spectrum = np.abs(np.fft.rfft(x * self._window)) ** 2
            p = int(spectrum.argmax())
            lo, hi = max(0, p - _PEAK_HALF_WIDTH), p + _PEAK_HALF_WIDTH + 1
            if spectrum[lo:hi].sum() >= _BEEP_SHARE * spectrum.sum():
                peak = p
        if peak >= 0 and (self._beep_frames == 0 or abs(peak - self._beep_bin) <= 1):
            self._beep_bin = peak
            self._beep_frames += 1
            return True, False
        ended = self._beep_frames * FRAME_SECONDS >= _BEEP_MIN_SECONDS
        self._beep_frames = 1 if peak >= 0 else 0
        self._beep_bin = peak
        return peak >= 0, ended
