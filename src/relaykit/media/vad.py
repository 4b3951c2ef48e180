"""Voice activity detection: start and end of a caller's speech, one 20 ms frame at a time.

Method
    An energy detector with an adaptive noise floor and hysteresis, in plain numpy:

    * the level of each 20 ms frame, and of its two 10 ms halves, is measured in dBFS (mean
      square of the int16 samples);
    * the noise floor follows the quietest recent frames: it drops quickly onto any quieter
      frame and rises by at most ``floor_rise_db`` per second, so it tracks steady background
      noise but not speech, whose pauses pull it back down;
    * a block is *loud* when it is at least ``threshold_db`` (absolute) **and** ``snr_db``
      above the floor; once speech has started, ``hysteresis_db`` less suffices for both, so
      fading word endings still count;
    * steady tones are not sound for this purpose: when one or two spectral peaks hold at least
      ``tone_purity`` (99 %) of a frame's power, at the same frequencies and within 1 dB of the
      same power as in the frame before (or hold 99.9 % of it in both frames, for two tones so
      close that they beat), the frame is measured without them. A DTMF key, a dial, busy or
      ringback tone (or a single test tone) on the line thus never starts speech nor keeps it
      going, and the noise floor does not learn from it; speech over such a tone still counts.
      The first 20 ms of a tone, not yet known to be steady, count as sound;
    * speech **starts** once 60 ms (``start_frames`` × 20 ms) of uninterrupted loud 10 ms blocks
      have been heard — a click of up to 40 ms never starts speech, nor one of up to 50 ms
      that starts on a 10 ms boundary; 60 ms of loud sound always does — and, as far
      as the detector's own state goes, ends after ``end_frames`` frames without a loud block
      (300 ms).

    :meth:`VoiceActivityDetector.push` returns "is this frame speech?": ``True`` from the frame
    that confirms the start, then for every frame with a loud block until the detector leaves
    speech. The loud frames before the confirmation report ``False`` (``onset_frame`` says where
    the speech began); keep a pre-roll if the audio must include them. Timing the end of an
    utterance on a longer silence (RELAY's ``speech.end_silence_timeout``) is the caller's job
    — or use :class:`SpeechSegmenter`, which wraps a detector and emits ``SPEECH_START`` /
    ``SPEECH_END`` events after a configurable silence.

Limits
    Energy says "sound", not "voice": music and sustained noise louder than the thresholds
    also count as speech, and so do tones in noise (the noise keeps them under
    ``tone_purity``; the prompt engine keeps DTMF from the detector with its key detector).
    Synthetic voices now and then put 99 % of a frame in two steady harmonics; such a frame
    counts as what is left of it, which for speech well above the threshold is still loud. Over
    espeak-ng's 104 voice variants (832 utterances at -20 and -30 dBFS) this changes 0.8 % of
    the speech frames and moves the start or end of 2 or 3 utterances by 20-40 ms
    (``python -m benchmarks.dtmf_edges --vad``).
    The floor starts at the first frame's level, so noise present from the start is ignored,
    but speech already under way in the very first frame is only picked up at its first pause;
    noise that *appears* later and is louder than the thresholds counts as speech until the
    floor has risen to it (``floor_rise_db``, 10 dB per second by default). Defaults suit
    telephone speech around -20 dBFS; speech quieter than ``threshold_db`` (-40 dBFS) is missed.
    Work per frame is O(frame length), plus an FFT of the frame when it is loud enough to
    matter; state is a handful of floats.
"""

from __future__ import annotations

__all__ = [
    "SpeechSegmenter",
    "VadEvent",
    "VadEventType",
    "VoiceActivityDetector",
    "frame_level_db",
]

import enum
from dataclasses import dataclass

import numpy as np

from relaykit.media.frames import FRAME_SECONDS, SAMPLES_PER_FRAME, frames_for

_FULL_SCALE_POWER = 32768.0 * 32768.0
_SILENCE_DB = -120.0  # level reported for all-zero frames
_BLOCK = SAMPLES_PER_FRAME // 2  # 10 ms: resolution of the start-of-speech timing
_PEAK_HALF_WIDTH = 2  # bins each side of a peak: a Hann window's main lobe
_MIN_TONE_FRAME = 64  # frames shorter than this are not analysed for tones
_STEADY_POWER_MIN, _STEADY_POWER_MAX = 10.0**-0.1, 10.0**0.1  # a steady tone: within 1 dB


def frame_level_db(frame: np.ndarray) -> float:
    """Level of a frame of int16 samples in dBFS (a full-scale square wave is 0 dBFS)."""
    x = np.asarray(frame, dtype=np.float64).reshape(-1)
    if x.size == 0:
        return _SILENCE_DB
    power = float(np.dot(x, x)) / x.size / _FULL_SCALE_POWER
    return 10.0 * np.log10(power) if power > 1e-12 else _SILENCE_DB


class VoiceActivityDetector:
    """Per-frame speech decision for one audio stream (see the module docstring).

    Args:
        threshold_db: a frame quieter than this (dBFS) is never speech.
        snr_db: how far above the noise floor a frame must be to be speech.
        hysteresis_db: how much both limits relax while in speech.
        start_frames: how much continuous loud sound starts speech, in 20 ms frames (3 = 60 ms),
            measured on 10 ms blocks so a click is judged by its length, not by how many
            frames it straddles.
        end_frames: quiet frames after which the detector leaves speech (15 = 300 ms).
        floor_rise_db: how fast (dB per second) the noise floor may rise.
        tone_purity: the share of a frame's power in at most two steady spectral peaks from
            which on the frame is measured without them; 1.0 or more turns this off.
        initial_floor_db: noise floor assumed before any audio was seen; ``None`` (default)
            takes the level of the first frame, capped at ``threshold_db + snr_db``, so noise
            already present when the detector starts is not taken for speech.
    """

    def __init__(
        self,
        *,
        threshold_db: float = -40.0,
        snr_db: float = 10.0,
        hysteresis_db: float = 4.0,
        start_frames: int = 3,
        end_frames: int = 15,
        floor_rise_db: float = 10.0,
        tone_purity: float = 0.99,
        initial_floor_db: float | None = None,
    ) -> None:
        if start_frames < 1 or end_frames < 1:
            raise ValueError("start_frames and end_frames must be at least 1")
        self.threshold_db = float(threshold_db)
        self.snr_db = float(snr_db)
        self.hysteresis_db = float(hysteresis_db)
        self.start_frames = int(start_frames)
        self.end_frames = int(end_frames)
        self._start_samples = self.start_frames * SAMPLES_PER_FRAME
        self._rise = float(floor_rise_db) * FRAME_SECONDS  # dB per frame
        self.tone_purity = float(tone_purity)
        self._windows: dict[int, np.ndarray] = {}  # Hann window per frame length
        self._initial_floor = None if initial_floor_db is None else float(initial_floor_db)
        self.reset()

    def reset(self) -> None:
        """Forget everything: back to silence with the initial noise floor."""
        self.floor_db: float | None = self._initial_floor  # None: set from the first frame
        self.level_db = _SILENCE_DB  # level of the last frame
        self.in_speech = False
        self.frames = 0  # frames pushed so far
        self.onset_frame = -1  # frame where the current (or last) speech began
        self._loud_samples = 0  # length of the current run of loud blocks (not in speech)
        self._run_start = 0  # frame holding the first block of that run
        self._quiet_run = 0  # consecutive quiet frames (in speech)
        # the last frame's tone: its two peaks (FFT bins), windowed power, share in the peaks
        self._peaks: tuple[int, int, float, float] | None = None

    def push(self, frame: np.ndarray) -> bool:
        """Take one frame (int16; normally 20 ms) and say whether it is speech."""
        index = self.frames
        self.frames += 1
        x = np.asarray(frame, dtype=np.float64).reshape(-1)
        n = x.size
        # 10 ms blocks when the frame divides into them, else the frame is one block
        block = _BLOCK if n >= _BLOCK and n % _BLOCK == 0 else max(n, 1)
        power = (x * x).reshape(-1, block).mean(axis=1) / _FULL_SCALE_POWER if n else np.zeros(1)
        frame_power = float(power.mean())
        level = 10.0 * np.log10(frame_power) if frame_power > 1e-12 else _SILENCE_DB
        self.level_db = level
        if self.floor_db is None:
            self.floor_db = min(level, self.threshold_db + self.snr_db)

        relax = self.hysteresis_db if self.in_speech else 0.0
        limit_db = max(self.threshold_db, self.floor_db + self.snr_db) - relax
        limit = 10.0 ** (limit_db / 10.0)
        loud = power >= limit  # per 10 ms block
        if loud.any() and self.tone_purity < 1.0 and n >= _MIN_TONE_FRAME:
            rest = self._without_steady_tones(x)
            if rest < 1.0:  # measure the frame without its tones
                power = power * rest
                frame_power *= rest
                level = 10.0 * np.log10(frame_power) if frame_power > 1e-12 else _SILENCE_DB
                self.level_db = level
                loud = power >= limit
        else:
            self._peaks = None

        # the floor follows quiet frames down fast and rises slowly (a minimum tracker)
        if level < self.floor_db:
            self.floor_db += 0.5 * (level - self.floor_db)
        else:
            self.floor_db += min(level - self.floor_db, self._rise)

        if self.in_speech:
            if loud.any():
                self._quiet_run = 0
                return True
            self._quiet_run += 1
            if self._quiet_run >= self.end_frames:
                self.in_speech = False
                self._loud_samples = 0
            return False
        for block_loud in loud:
            if not block_loud:
                self._loud_samples = 0
                continue
            if self._loud_samples == 0:
                self._run_start = index
            self._loud_samples += block
        if self._loud_samples >= self._start_samples:
            self.in_speech = True
            self.onset_frame = self._run_start
            self._quiet_run = 0
            return True
        return False

    def _without_steady_tones(self, x: np.ndarray) -> float:
        """Share of the frame's power left without its steady tones (1.0: it has none)."""
        n = x.size
        window = self._windows.get(n)
        if window is None:
            window = self._windows[n] = np.hanning(n + 2)[1:-1]
        spectrum = np.abs(np.fft.rfft(x * window)) ** 2
        total = float(spectrum.sum())
        if total <= 0.0:
            self._peaks = None
            return 1.0
        peaks = []
        in_peaks = 0.0
        for _ in range(2):
            p = int(spectrum.argmax())
            lo, hi = max(0, p - _PEAK_HALF_WIDTH), p + _PEAK_HALF_WIDTH + 1
            in_peaks += float(spectrum[lo:hi].sum())
            spectrum[lo:hi] = 0.0
            peaks.append(p)
        share = in_peaks / total
        if share < self.tone_purity:
            self._peaks = None
            return 1.0
        a, b = sorted(peaks)
        last, self._peaks = self._peaks, (a, b, total, share)
        if last is None:
            return 1.0  # not steady (yet)
        moved = max(abs(a - last[0]), abs(b - last[1]))
        steady = moved <= 1 and _STEADY_POWER_MIN <= total / last[2] <= _STEADY_POWER_MAX
        # Two tones closer than a bin (ringback's 440 + 480 Hz) beat: their peak wanders and
        # the frame's power swings. Purer than any voice, they are steady all the same.
        pure = 1.0 - (1.0 - self.tone_purity) / 10.0
        steady |= moved <= 2 and min(share, last[3]) >= pure
        return 1.0 - share if steady else 1.0


class VadEventType(enum.Enum):
    """What a :class:`VadEvent` marks: the start or the end of an utterance."""

    SPEECH_START = "speech_start"
    SPEECH_END = "speech_end"


@dataclass(frozen=True, slots=True)
class VadEvent:
    """A start or end of speech.

    ``frame`` is the index (from 0, counting frames pushed) where speech began — the frame
    holding the first of the loud blocks that confirmed it — for ``SPEECH_START``, or just
    after the last speech frame for ``SPEECH_END``. The event itself is emitted later: once
    ``start_frames`` × 20 ms of loud sound have been seen, or ``end_silence`` after the end.
    """

    type: VadEventType
    frame: int

    @property
    def seconds(self) -> float:
        """``frame`` as a time, assuming 20 ms frames."""
        return self.frame * FRAME_SECONDS


class SpeechSegmenter:
    """Start/end-of-speech events over a :class:`VoiceActivityDetector`.

    ``SPEECH_END`` is emitted once ``end_silence_timeout`` seconds (RELAY's
    ``speech.end_silence_timeout``, 1.0 s by default) have passed without a speech frame.
    """

    def __init__(
        self,
        detector: VoiceActivityDetector | None = None,
        *,
        end_silence_timeout: float = 1.0,
    ) -> None:
        self.detector = detector if detector is not None else VoiceActivityDetector()
        self.end_silence_frames = max(1, frames_for(end_silence_timeout))
        self.frame = 0  # frames pushed so far
        self.speaking = False
        self._last_speech = -1  # index of the last speech frame

    def push(self, frame: np.ndarray) -> VadEvent | None:
        """Take one 20 ms frame; return the event it completes, if any."""
        index = self.frame
        self.frame += 1
        if self.detector.push(frame):
            self._last_speech = index
            if not self.speaking:
                self.speaking = True
                onset = index - (self.detector.frames - 1 - self.detector.onset_frame)
                return VadEvent(VadEventType.SPEECH_START, max(0, onset))
            return None
        if self.speaking and index - self._last_speech >= self.end_silence_frames:
            self.speaking = False
            return VadEvent(VadEventType.SPEECH_END, self._last_speech + 1)
        return None

    def push_samples(self, samples: np.ndarray) -> list[VadEvent]:
        """Push whole 20 ms frames of ``samples`` (a trailing partial frame is ignored)."""
        pcm = np.asarray(samples).reshape(-1)
        n = len(pcm) // SAMPLES_PER_FRAME
        events: list[VadEvent] = []
        for i in range(n):
            event = self.push(pcm[i * SAMPLES_PER_FRAME : (i + 1) * SAMPLES_PER_FRAME])
            if event is not None:
                events.append(event)
        return events
