"""Audio frame constants shared by every part of the media engine.

Internally all audio is 16-bit signed mono PCM at 16 kHz: the bundled speech model wants 16 kHz,
and telephone legs (8 kHz G.711) are resampled at the edge.
"""

from __future__ import annotations

__all__ = [
    "FRAME_SECONDS",
    "SAMPLES_PER_FRAME",
    "SAMPLE_DTYPE",
    "SAMPLE_RATE",
    "db_to_gain",
    "frames_for",
    "seconds_to_samples",
]

import numpy as np

SAMPLE_RATE = 16_000  # Hz
FRAME_SECONDS = 0.020  # 20 ms
SAMPLES_PER_FRAME = 320  # SAMPLE_RATE * FRAME_SECONDS
SAMPLE_DTYPE = np.int16


def seconds_to_samples(seconds: float, rate: int = SAMPLE_RATE) -> int:
    return round(seconds * rate)


def frames_for(seconds: float) -> int:
    """Number of whole 20 ms frames that cover ``seconds`` (at least 1 for any positive time)."""
    if seconds <= 0:
        return 0
    return max(1, round(seconds / FRAME_SECONDS))


def db_to_gain(db: float) -> float:
    """Amplitude gain for a level in dB; -40 dB and below is silence, as RELAY documents."""
    if db <= -40.0:
        return 0.0
    return float(10.0 ** (db / 20.0))
