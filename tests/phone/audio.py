"""Audio for the phone's tests: test tones, WAV files, and comparisons by segment."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 16000


def tone(frequency: float, seconds: float, level_dbfs: float) -> np.ndarray:
    """A sine whose RMS level is ``level_dbfs`` (a full-scale sine is -3 dBFS RMS)."""
    t = np.arange(round(seconds * RATE)) / RATE
    amplitude = 32768 * 10 ** (level_dbfs / 20) * np.sqrt(2)
    return np.round(amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.astype("<i2").tobytes())
    return path


def read_wav(data: bytes | Path) -> tuple[np.ndarray, int, int]:
    """``(samples as (n, channels), rate, channels)``."""
    import io

    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    with wave.open(source, "rb") as f:
        raw = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
        return raw.reshape(-1, f.getnchannels()), f.getframerate(), f.getnchannels()


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level relative to full scale."""
    x = samples.astype(np.float64) / 32768
    return float(10 * np.log10(np.mean(x * x) + 1e-12))


def dominant_frequency(samples: np.ndarray) -> float:
    """The strongest frequency, interpolated between FFT bins."""
    x = samples.astype(np.float64) * np.hanning(len(samples))
    power = np.abs(np.fft.rfft(x)) ** 2
    k = int(np.argmax(power[1:-1])) + 1
    a, b, c = np.log(power[k - 1 : k + 2] + 1e-20)
    shift = 0.0 if a - 2 * b + c == 0 else 0.5 * (a - c) / (a - 2 * b + c)
    return float((k + shift) * RATE / len(samples))


def find(segment: np.ndarray, signal: np.ndarray) -> tuple[int, float]:
    """Where ``segment`` best matches inside ``signal``: ``(offset, normalised correlation)``."""
    a = segment.astype(np.float64)
    b = signal.astype(np.float64)
    n = len(a) + len(b)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)[
        : len(b) - len(a) + 1
    ]
    offset = int(np.argmax(corr))
    window = b[offset : offset + len(a)]
    score = float(np.dot(a, window) / (np.linalg.norm(a) * np.linalg.norm(window) + 1e-12))
    return offset, score


def envelope(samples: np.ndarray, frame: int = 160) -> np.ndarray:
    """RMS per 10 ms: the shape of speech, whatever filters it went through."""
    x = samples[: len(samples) // frame * frame].astype(np.float64).reshape(-1, frame)
    return np.sqrt(np.mean(x * x, axis=1))
