"""G.711 µ-law (PCMU) and A-law (PCMA) as numpy lookup tables, bit-exact with ``audioop``.

The tables are built once from the reference algorithms that ``audioop`` uses (Sun's g711.c):
µ-law encodes the 14-bit value ``x >> 2`` (bias 33, clip 8159), A-law the 13-bit value
``x >> 3``. Encoding is one 64 K-entry table lookup per sample (indexed by the sample's bits
read as uint16, so no conversion pass), decoding a 256-entry one; both take whole arrays (one
RTP payload or a batch of calls). ``audioop`` is not used: it is gone in
Python 3.13.
"""

from __future__ import annotations

__all__ = ["ALAW", "ULAW", "Codec", "alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]

from dataclasses import dataclass

import numpy as np


def _segment(values: np.ndarray, ends: tuple[int, ...]) -> np.ndarray:
    """Index of the first segment end that is >= value (8 when none is)."""
    return np.searchsorted(np.asarray(ends), values, side="left")


def _build_ulaw_encode() -> np.ndarray:
    x = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit, arithmetic shift as in C
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), 8159) + 33
    seg = _segment(mag, (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF))
    code = (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0xF)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _build_ulaw_decode() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_encode() -> np.ndarray:
    x = np.arange(-32768, 32768, dtype=np.int32) >> 3  # 13-bit
    mask = np.where(x >= 0, 0xD5, 0x55)
    mag = np.where(x >= 0, x, -x - 1)
    seg = _segment(mag, (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF))
    segc = np.minimum(seg, 7)
    quant = np.where(seg < 2, (mag >> 1) & 0xF, (mag >> np.maximum(segc, 1)) & 0xF)
    code = np.where(seg >= 8, 0x7F, (segc << 4) | quant)
    return (code ^ mask).astype(np.uint8)


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


# The encoders' tables are indexed by the int16 sample's bits as uint16 (0..32767, then the
# negatives from -32768): the reference tables (indexed by sample + 32768) rotated half way.
_ULAW_ENC = np.roll(_build_ulaw_encode(), 32768)
_ULAW_DEC = _build_ulaw_decode()
_ALAW_ENC = np.roll(_build_alaw_encode(), 32768)
_ALAW_DEC = _build_alaw_decode()
for _table in (_ULAW_ENC, _ULAW_DEC, _ALAW_ENC, _ALAW_DEC):
    _table.flags.writeable = False


def _bits(samples: np.ndarray) -> np.ndarray:
    """int16 samples' bits as uint16 (the encoders' table index)."""
    return np.ascontiguousarray(samples, dtype=np.int16).view(np.uint16)


def _codes(codes: bytes | np.ndarray) -> np.ndarray:
    if isinstance(codes, bytes | bytearray | memoryview):
        return np.frombuffer(codes, dtype=np.uint8)
    return np.asarray(codes, dtype=np.uint8)


def ulaw_encode(samples: np.ndarray) -> np.ndarray:
    """int16 samples (any shape) → µ-law codes (uint8, same shape)."""
    codes: np.ndarray = np.take(_ULAW_ENC, _bits(samples))
    return codes


def ulaw_decode(codes: bytes | np.ndarray) -> np.ndarray:
    """µ-law codes (bytes or uint8 array) → int16 samples."""
    samples: np.ndarray = np.take(_ULAW_DEC, _codes(codes).astype(np.intp))
    return samples


def alaw_encode(samples: np.ndarray) -> np.ndarray:
    """int16 samples (any shape) → A-law codes (uint8, same shape)."""
    codes: np.ndarray = np.take(_ALAW_ENC, _bits(samples))
    return codes


def alaw_decode(codes: bytes | np.ndarray) -> np.ndarray:
    """A-law codes (bytes or uint8 array) → int16 samples."""
    samples: np.ndarray = np.take(_ALAW_DEC, _codes(codes).astype(np.intp))
    return samples


@dataclass(frozen=True, slots=True)
class Codec:
    """An 8 kHz G.711 codec as SDP names it, with its static RTP payload type."""

    name: str  # "PCMU" or "PCMA"
    payload_type: int
    clock_rate: int = 8000

    def encode(self, samples: np.ndarray) -> np.ndarray:
        return ulaw_encode(samples) if self.payload_type == 0 else alaw_encode(samples)

    def decode(self, codes: bytes | np.ndarray) -> np.ndarray:
        return ulaw_decode(codes) if self.payload_type == 0 else alaw_decode(codes)


ULAW = Codec("PCMU", 0)
ALAW = Codec("PCMA", 8)
