"""Every non-speech thing a prompt can play: silence, national ringing tones, audio files.

Silence and ringtones come two ways: as arrays (``silence``, ``ringtone``) and as sources that
make their samples on demand (``silence_source``, ``ringtone_source``), which is what calls
play: an hour of ringing costs one cadence cycle. Arrays are 16 kHz mono int16 (see
:mod:`relaykit.media.frames`); errors are :class:`~relaykit.errors.MediaError` with a message
that says what went wrong and where.

``decode_audio`` turns encoded bytes (WAV, MP3, FLAC, OGG) into samples; fetching them is the
I/O layer's job (:mod:`relaykit.calls.fetch`). ``load_audio`` reads a local file for the test
kit (a virtual caller playing a WAV). Both block: run them off the event loop.
"""

from __future__ import annotations

__all__ = [
    "MAX_AUDIO_SECONDS",
    "MAX_SILENCE_SECONDS",
    "RINGTONES",
    "RINGTONE_LEVEL_DBFS",
    "AudioTooLong",
    "Pieces",
    "Repeating",
    "Ringtone",
    "Silence",
    "apply_gain_db",
    "decode_audio",
    "load_audio",
    "ringtone",
    "ringtone_source",
    "silence",
    "silence_source",
]

import bisect
import functools
import io
import math
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import soundfile as sf
import soxr

from relaykit.errors import MediaError
from relaykit.media.frames import SAMPLE_DTYPE, SAMPLE_RATE, db_to_gain

MAX_SILENCE_SECONDS = 3600.0
MAX_AUDIO_SECONDS = 3600.0  # longest decoded audio accepted
RINGTONE_LEVEL_DBFS = -16.0  # peak level of each tone component (a full-scale sine is 0 dBFS)

_DECODE_BLOCK = 64 * 1024  # frames per decoded block; keeps peak memory near the output size


class AudioTooLong(MediaError):
    """Decoded audio would be longer than allowed; ``seconds`` is its length."""

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


# --------------------------------------------------------------------------------------- silence


def _check_seconds(value: object, name: str, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MediaError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or seconds > maximum:
        raise MediaError(f"{name} must be between 0 and {maximum:g} seconds, got {value!r}")
    return seconds


_ZEROS = np.zeros(4096, dtype=SAMPLE_DTYPE)
_ZEROS.flags.writeable = False


class Silence:
    """``len()`` samples of digital silence, made on demand (read-only views)."""

    __slots__ = ("_length",)

    def __init__(self, samples: int) -> None:
        self._length = max(0, samples)

    def __len__(self) -> int:
        return self._length

    def read(self, start: int, count: int) -> np.ndarray:
        n = max(0, min(count, self._length - start))
        return _ZEROS[:n] if n <= _ZEROS.size else np.zeros(n, dtype=SAMPLE_DTYPE)


class Repeating:
    """``cycle`` repeated to ``len()`` samples, made on demand (a ringtone's cadence)."""

    __slots__ = ("_cycle", "_length")

    def __init__(self, cycle: np.ndarray, samples: int) -> None:
        if not cycle.size:
            raise ValueError("the cycle must not be empty")
        self._cycle = cycle
        self._length = max(0, samples)

    def __len__(self) -> int:
        return self._length

    def read(self, start: int, count: int) -> np.ndarray:
        n = max(0, min(count, self._length - start))
        a = start % self._cycle.size
        if a + n <= self._cycle.size:
            return self._cycle[a : a + n]
        out: np.ndarray = np.take(self._cycle, np.arange(a, a + n), mode="wrap")
        return out


class Pieces:
    """Arrays played one after the other as one item (long speech synthesised in pieces),
    without copying them into one."""

    __slots__ = ("_pieces", "_starts")

    def __init__(self, pieces: list[np.ndarray]) -> None:
        self._pieces = [p for p in pieces if p.size]
        self._starts = [0]
        for piece in self._pieces:
            self._starts.append(self._starts[-1] + piece.size)

    def __len__(self) -> int:
        return self._starts[-1]

    def read(self, start: int, count: int) -> np.ndarray:
        end = min(start + count, len(self))
        if end <= start:
            return _ZEROS[:0]
        i = bisect.bisect_right(self._starts, start) - 1
        offset = start - self._starts[i]
        piece = self._pieces[i]
        if offset + (end - start) <= piece.size:
            return piece[offset : offset + end - start]  # within one piece: a view
        out = np.empty(end - start, dtype=SAMPLE_DTYPE)
        pos = 0
        while pos < out.size:
            piece = self._pieces[i]
            take = min(out.size - pos, piece.size - offset)
            out[pos : pos + take] = piece[offset : offset + take]
            pos, offset, i = pos + take, 0, i + 1
        return out


def silence_source(duration: float) -> Silence:
    """``duration`` seconds of digital silence (0 ≤ duration ≤ 3600), made on demand."""
    seconds = _check_seconds(duration, "duration", MAX_SILENCE_SECONDS)
    return Silence(round(seconds * SAMPLE_RATE))


def silence(duration: float) -> np.ndarray:
    """``duration`` seconds of digital silence (0 ≤ duration ≤ 3600)."""
    return np.zeros(len(silence_source(duration)), dtype=SAMPLE_DTYPE)


# ------------------------------------------------------------------------------------- ringtones


@dataclass(frozen=True, slots=True)
class Ringtone:
    """A national ringing tone (the ringback a caller hears while the far end rings).

    ``frequencies`` are summed sines; with ``modulation_hz`` the (single) carrier is amplitude
    modulated at that rate and ``modulation_depth`` instead. ``cadence`` alternates on and off
    times in seconds, starting with on, and repeats.
    """

    name: str
    country: str
    frequencies: tuple[float, ...]
    cadence: tuple[float, ...]
    modulation_hz: float | None = None
    modulation_depth: float = 0.9

    @property
    def cycle_seconds(self) -> float:
        return float(sum(self.cadence))

    def segments(self) -> list[tuple[float, float]]:
        """``(start, end)`` seconds of each tone burst within one cycle."""
        out, t = [], 0.0
        for i, length in enumerate(self.cadence):
            if i % 2 == 0:
                out.append((t, t + length))
            t += length
        return out


def _tone(
    name: str,
    country: str,
    freqs: tuple[float, ...],
    cadence: tuple[float, ...],
    modulation_hz: float | None = None,
    depth: float = 0.9,
) -> Ringtone:
    return Ringtone(name, country, freqs, cadence, modulation_hz, depth)


_DOUBLE = (0.4, 0.2, 0.4, 2.0)  # the British-style double ring

# Ringing (ringback) tones as in ITU-T E.180 Supplement 2 ("Various tones used in national
# networks"), cross-checked against Asterisk's indications.conf. The names are exactly the ones
# SignalWire RELAY documents for ``ringtone`` media (note "uk", not "gb"; no "ca", which rings
# like "us"), so a prompt that plays here also plays on the real service. Modulated tones use
# 90 % depth unless the national spec says otherwise (Singapore: 100 %).
RINGTONES: Mapping[str, Ringtone] = MappingProxyType(
    {
        t.name: t
        for t in (
            _tone("at", "Austria", (420,), (1.0, 5.0)),
            _tone("au", "Australia", (413, 438), _DOUBLE),
            _tone("be", "Belgium", (425,), (1.0, 3.0)),
            _tone("bg", "Bulgaria", (425,), (1.0, 4.0)),
            _tone("br", "Brazil", (425,), (1.0, 4.0)),
            _tone("ch", "Switzerland", (425,), (1.0, 4.0)),
            _tone("cl", "Chile", (400,), (1.0, 3.0)),
            _tone("cn", "China", (450,), (1.0, 4.0)),
            _tone("cz", "Czech Republic", (425,), (1.0, 4.0)),
            _tone("de", "Germany", (425,), (1.0, 4.0)),
            _tone("dk", "Denmark", (425,), (1.0, 4.0)),
            _tone("ee", "Estonia", (425,), (1.0, 4.0)),
            _tone("es", "Spain", (425,), (1.5, 3.0)),
            _tone("fi", "Finland", (425,), (1.0, 4.0)),
            _tone("fr", "France", (440,), (1.5, 3.5)),
            _tone("gr", "Greece", (425,), (1.0, 4.0)),
            _tone("hu", "Hungary", (425,), (1.25, 3.75)),
            _tone("il", "Israel", (414,), (1.0, 3.0)),
            _tone("in", "India", (400,), _DOUBLE, modulation_hz=25),
            _tone("it", "Italy", (425,), (1.0, 4.0)),
            _tone("jp", "Japan", (400,), (1.0, 2.0), modulation_hz=16),
            _tone("lt", "Lithuania", (425,), (1.0, 4.0)),
            _tone("mx", "Mexico", (425,), (1.0, 4.0)),
            _tone("my", "Malaysia", (425,), _DOUBLE),
            _tone("nl", "Netherlands", (425,), (1.0, 4.0)),
            _tone("no", "Norway", (425,), (1.0, 4.0)),
            _tone("nz", "New Zealand", (400, 450), _DOUBLE),
            _tone("ph", "Philippines", (425, 480), (1.0, 4.0)),
            _tone("pl", "Poland", (425,), (1.0, 4.0)),
            _tone("pt", "Portugal", (425,), (1.0, 5.0)),
            _tone("ru", "Russia", (425,), (1.0, 4.0)),
            _tone("se", "Sweden", (425,), (1.0, 5.0)),
            _tone("sg", "Singapore", (425,), _DOUBLE, modulation_hz=24, depth=1.0),
            _tone("th", "Thailand", (420,), (1.0, 5.0)),
            _tone("tw", "Taiwan", (440, 480), (1.0, 2.0)),
            _tone("uk", "United Kingdom", (400, 450), _DOUBLE),
            _tone("us", "United States", (440, 480), (2.0, 4.0)),
            _tone("ve", "Venezuela", (425,), (1.0, 4.0)),
            _tone("za", "South Africa", (400,), _DOUBLE, modulation_hz=33),
        )
    }
)

_RAMP_SECONDS = 0.004  # raised-cosine edges on each burst, so the cadence does not click


def ringtone_source(name: str, duration: float | None = None) -> Repeating:
    """The ringing tone of country ``name`` (``"us"``, ``"uk"``, ``"de"`` …; see RINGTONES),
    made on demand.

    With ``duration`` None: exactly one cadence cycle; otherwise exactly ``duration`` seconds,
    repeating the cadence (a burst cut by the end stops there).
    """
    tone = RINGTONES.get(name.lower()) if isinstance(name, str) else None
    if tone is None:
        raise MediaError(f"unknown ringtone {name!r}; valid names: {', '.join(sorted(RINGTONES))}")
    seconds = (
        tone.cycle_seconds
        if duration is None
        else _check_seconds(duration, "duration", MAX_SILENCE_SECONDS)
    )
    return Repeating(_ringtone_cycle(tone), round(seconds * SAMPLE_RATE))


def ringtone(name: str, duration: float | None = None) -> np.ndarray:
    """:func:`ringtone_source` as one array."""
    source = ringtone_source(name, duration)
    return np.array(source.read(0, len(source)), dtype=SAMPLE_DTYPE)


@functools.cache
def _ringtone_cycle(tone: Ringtone) -> np.ndarray:
    """One cadence cycle, computed once per tone (read-only; callers copy)."""
    n = round(tone.cycle_seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    amplitude = 32767.0 * 10.0 ** (RINGTONE_LEVEL_DBFS / 20.0)
    if tone.modulation_hz:
        d = tone.modulation_depth  # envelope peaks at 1, dips to 1 - 2d/(1+d)
        envelope = (1.0 + d * np.sin(2 * np.pi * tone.modulation_hz * t)) / (1.0 + d)
        wave = envelope * np.sin(2 * np.pi * tone.frequencies[0] * t)
    else:
        wave = np.sum([np.sin(2 * np.pi * f * t) for f in tone.frequencies], axis=0)
    gate = np.zeros(n)
    ramp_n = round(_RAMP_SECONDS * SAMPLE_RATE)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp_n) / ramp_n)
    for start, end in tone.segments():
        a, b = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
        gate[a:b] = 1.0
        k = min(ramp_n, (b - a) // 2)
        gate[a : a + k] = ramp[:k]
        gate[b - k : b] = ramp[:k][::-1]
    cycle: np.ndarray = np.round(wave * gate * amplitude).astype(SAMPLE_DTYPE)
    cycle.flags.writeable = False
    return cycle


# ---------------------------------------------------------------------------------------- decode


def load_audio(location: str, *, max_bytes: int = 50 * 2**20) -> np.ndarray:
    """Decode a WAV/MP3/FLAC/OGG file at a local path or ``file://`` URL (the test kit's files).

    Refuses more than ``max_bytes`` of encoded data. Returns the audio mixed to mono and
    resampled to 16 kHz. The server fetches ``audio`` media through :mod:`relaykit.calls.fetch`.
    """
    if not isinstance(location, str) or not location.strip():
        raise MediaError(f"audio location must be a non-empty string, got {location!r}")
    location = location.strip()
    parts = urllib.parse.urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise MediaError(f"file URL {location!r} names host {parts.netloc!r}; only local")
        path = Path(urllib.request.url2pathname(parts.path))
    elif scheme == "" or (len(scheme) == 1 and location[1:3] in (":\\", ":/")):  # C:\ paths
        path = Path(location)
    else:
        raise MediaError(
            f"unsupported URL scheme {parts.scheme!r} in {location!r}; use a path or file://"
        )
    return decode_audio(_read_file(path, location, max_bytes), location)


def _read_file(path: Path, where: str, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise MediaError(f"audio file {where!r} is not a regular file")
        if size > max_bytes:
            raise MediaError(f"audio file {where!r} is {size} bytes; the limit is {max_bytes}")
        return path.read_bytes()
    except FileNotFoundError:
        raise MediaError(f"audio file not found: {where!r}") from None
    except OSError as exc:
        raise MediaError(f"cannot read audio file {where!r}: {exc.strerror or exc}") from None


def decode_audio(data: bytes, where: str, *, max_seconds: float = MAX_AUDIO_SECONDS) -> np.ndarray:
    """Any format libsndfile reads, mixed to mono, converted to 16 kHz int16.

    Audio longer than ``max_seconds`` raises :class:`AudioTooLong` before it is decoded.
    """
    if not data:
        raise MediaError(f"audio at {where!r} is empty")
    limit = min(max_seconds, MAX_AUDIO_SECONDS)
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, channels = f.samplerate, f.channels
            if f.frames > limit * rate:
                seconds = f.frames / rate
                raise AudioTooLong(
                    f"audio at {where!r} is {seconds:.0f} s long; the limit is {limit:g} s",
                    seconds,
                )
            resampler = (
                soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
                if rate != SAMPLE_RATE
                else None
            )
            parts: list[np.ndarray] = []
            for block in f.blocks(blocksize=_DECODE_BLOCK, dtype="float32", always_2d=True):
                mono = block[:, 0] if channels == 1 else block.mean(axis=1, dtype=np.float32)
                if resampler is not None:
                    mono = resampler.resample_chunk(np.ascontiguousarray(mono))
                parts.append(_float_to_int16(mono))
            if resampler is not None:
                parts.append(_float_to_int16(resampler.resample_chunk(_EMPTY_F32, last=True)))
    except MediaError:
        raise
    except sf.LibsndfileError as exc:
        raise MediaError(f"cannot decode audio at {where!r}: {exc.error_string}") from None
    except (RuntimeError, ValueError, TypeError, OSError) as exc:
        raise MediaError(f"cannot decode audio at {where!r}: {exc}") from None
    return np.concatenate(parts) if parts else np.zeros(0, dtype=SAMPLE_DTYPE)


_EMPTY_F32 = np.zeros(0, dtype=np.float32)


def _float_to_int16(x: np.ndarray) -> np.ndarray:
    # libsndfile's float scale is 1/32768, so 16-bit sources come back bit-exact
    return np.clip(np.rint(x * 32768.0), -32768, 32767).astype(SAMPLE_DTYPE)


# ------------------------------------------------------------------------------------------ gain


def apply_gain_db(samples: np.ndarray, db: float) -> np.ndarray:
    """A new int16 array: ``samples`` scaled by ``db`` decibels and clipped.

    -40 dB and below is silence, as RELAY documents for ``volume``.
    """
    if isinstance(db, bool) or not isinstance(db, int | float) or not math.isfinite(db):
        raise MediaError(f"volume must be a finite number of dB, got {db!r}")
    samples = np.asarray(samples)
    gain = db_to_gain(float(db))
    if gain == 0.0:
        return np.zeros(samples.shape, dtype=SAMPLE_DTYPE)
    if gain == 1.0:
        return samples.astype(SAMPLE_DTYPE, copy=True)
    scaled = np.rint(samples.astype(np.float32) * np.float32(gain))
    out: np.ndarray = np.clip(scaled, -32768, 32767).astype(SAMPLE_DTYPE)
    return out
