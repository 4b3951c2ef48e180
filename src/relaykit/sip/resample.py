"""2:1 resampling between the media engine (16 kHz) and G.711 (8 kHz), batched over calls.

One linear-phase half-band FIR (55 taps, Kaiser window β = 6; flat to 3.4 kHz within
0.01 dB, at least 62 dB down from 4.6 kHz) serves both directions: decimation filters the
16 kHz frames and keeps every second sample; interpolation is its polyphase form (one phase a
delayed copy of the input, the other 14 symmetric tap pairs). Each stream carries its own
filter history, so consecutive frames join without clicks, and a whole batch of streams (one
row each) is filtered by a dozen numpy operations, whatever the number of calls.
"""

from __future__ import annotations

__all__ = ["HISTORY", "UP_HISTORY", "downsample2", "upsample2"]

import numpy as np

_TAPS = 55
_CENTER = (_TAPS - 1) // 2  # 27
HISTORY = _TAPS - 1  # input samples of history each stream keeps (16 kHz side)


def _design() -> np.ndarray:
    n = np.arange(_TAPS) - _CENTER
    h = 0.5 * np.sinc(0.5 * n) * np.kaiser(_TAPS, 6.0)
    h[(n % 2 == 0) & (n != 0)] = 0.0  # exact half-band zeros
    return np.asarray(h / h.sum(), dtype=np.float64)


_H = _design()
# (offset from centre, coefficient) for the non-zero pairs: offsets 1, 3, ..., 27
_PAIRS = [(k, float(_H[_CENTER + k])) for k in range(1, _CENTER + 1, 2)]
_C0 = float(_H[_CENTER])


def downsample2(frames: np.ndarray, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """16 kHz → 8 kHz.

    Args:
        frames: (n, 2m) int16, one row per stream.
        history: (n, HISTORY) float32, each stream's last input samples (zeros at first).

    Returns:
        (n, m) int16 output and the new (n, HISTORY) history.
    """
    n, length = frames.shape
    m = length // 2
    x = np.empty((n, HISTORY + length), dtype=np.float32)
    x[:, :HISTORY] = history
    x[:, HISTORY:] = frames
    # Output j is centred on input HISTORY - _CENTER + 2j = 27 + 2j (a fixed 27-sample delay),
    # an odd index; its other taps (27 + 2j ± k, k odd) fall on even ones. So the filter runs
    # on the two phases as contiguous rows: odd[i] = x[2i + 1], even[i] = x[2i].
    odd = x[:, 1::2]
    even = x[:, 0::2].copy()
    acc = odd[:, _CENTER // 2 : _CENTER // 2 + m] * np.float32(_C0)
    pair = np.empty_like(acc)
    for k, c in _PAIRS:
        lo, hi = (_CENTER - k) // 2, (_CENTER + k) // 2
        np.add(even[:, lo : lo + m], even[:, hi : hi + m], out=pair)
        pair *= np.float32(c)
        acc += pair
    return _to_int16(acc), x[:, -HISTORY:]


def _to_int16(samples: np.ndarray) -> np.ndarray:
    """Round float32 samples to int16, saturating (in place on ``samples``)."""
    np.rint(samples, out=samples)
    np.clip(samples, -32768, 32767, out=samples)
    return samples.astype(np.int16)


UP_HISTORY = _CENTER + 1  # 8 kHz samples of history for interpolation (14 pairs each side)


def upsample2(chunks: np.ndarray, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8 kHz → 16 kHz.

    Args:
        chunks: (n, m) int16, one row per stream.
        history: (n, UP_HISTORY) float32, each stream's last 8 kHz input samples.

    Returns:
        (n, 2m) int16 output and the new history.
    """
    n, m = chunks.shape
    x = np.empty((n, UP_HISTORY + m), dtype=np.float32)
    x[:, :UP_HISTORY] = history
    x[:, UP_HISTORY:] = chunks
    half = UP_HISTORY // 2  # 14: output pairs are centred `half` input samples back
    out = np.empty((n, 2 * m), dtype=np.float32)
    # even outputs: the input sample itself (gain 2 × centre tap = 1)
    out[:, 0::2] = x[:, UP_HISTORY - half : UP_HISTORY - half + m]
    # odd outputs: halfway between input samples i and i+1 (taps at ±1, ±3, ... /2)
    acc = np.zeros((n, m), dtype=np.float32)
    pair = np.empty_like(acc)
    for k, c in _PAIRS:
        j = (k + 1) // 2  # 1..14
        left = UP_HISTORY - half - j + 1
        right = UP_HISTORY - half + j
        np.add(x[:, left : left + m], x[:, right : right + m], out=pair)
        pair *= np.float32(2.0 * c)
        acc += pair
    out[:, 1::2] = acc
    return _to_int16(out), x[:, -UP_HISTORY:]
