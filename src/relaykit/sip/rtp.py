"""RTP (RFC 3550) packets and RFC 4733 telephone events: pure data, parse and serialize.

``RtpPacket.parse(data)`` and ``bytes(packet)`` are symmetric; malformed input raises
:class:`ValueError` with an exact message. :func:`rtp_header` is the fast path for sending
(12 bytes, no CSRC, no extension). :class:`TelephoneEvents` turns one stream's event packets
into keys, each press once, and junk into nothing.
"""

from __future__ import annotations

__all__ = [
    "DTMF_EVENT_KEYS",
    "DtmfEvent",
    "RtpPacket",
    "TelephoneEvents",
    "is_rtcp",
    "rtp_header",
]

import struct
from collections import deque
from dataclasses import dataclass

_HEADER = struct.Struct("!BBHII")
_EVENT = struct.Struct("!BBH")

# RFC 4733 §3.2: events 0-9, *, #, A-D.
DTMF_EVENT_KEYS = "0123456789*#ABCD"


def rtp_header(payload_type: int, sequence: int, timestamp: int, ssrc: int, marker: bool) -> bytes:
    """The 12-byte header of a plain RTP packet (version 2, no padding/extension/CSRC)."""
    return _HEADER.pack(
        0x80,
        (0x80 if marker else 0) | payload_type,
        sequence & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc,
    )


def is_rtcp(data: bytes) -> bool:
    """RTCP multiplexed on the RTP port (RFC 5761 §4): packet types 192-223 in byte 1."""
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet. ``extension`` is ``(profile, data)``; ``padding`` the pad byte count."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < 12:
            raise ValueError("RTP packet length is less than 12 bytes")
        first, second, seq, ts, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != 2:
            raise ValueError("RTP packet has invalid version")
        pos = 12
        cc = first & 0x0F
        if len(data) < pos + 4 * cc:
            raise ValueError("RTP packet is truncated in its CSRC list")
        csrc = struct.unpack_from(f"!{cc}I", data, pos)
        pos += 4 * cc
        extension = None
        if first & 0x10:
            if len(data) < pos + 4:
                raise ValueError("RTP packet is truncated in its extension header")
            profile, words = struct.unpack_from("!HH", data, pos)
            pos += 4
            if len(data) < pos + 4 * words:
                raise ValueError("RTP packet is truncated in its extension")
            extension = (profile, bytes(data[pos : pos + 4 * words]))
            pos += 4 * words
        end = len(data)
        padding = 0
        if first & 0x20:
            padding = data[-1]
            if padding == 0 or end - padding < pos:
                raise ValueError("RTP packet has invalid padding length")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            marker=bool(second & 0x80),
            csrc=tuple(csrc),
            extension=extension,
            padding=padding,
        )

    def serialize(self) -> bytes:
        if not 0 <= self.payload_type <= 127:
            raise ValueError("RTP payload type must be 0-127")
        if len(self.csrc) > 15:
            raise ValueError("RTP packet can carry at most 15 CSRCs")
        first = 0x80 | (0x20 if self.padding else 0) | (0x10 if self.extension else 0)
        first |= len(self.csrc)
        out = bytearray(
            _HEADER.pack(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc & 0xFFFFFFFF,
            )
        )
        for c in self.csrc:
            out += struct.pack("!I", c)
        if self.extension is not None:
            profile, ext = self.extension
            if len(ext) % 4:
                raise ValueError("RTP extension length must be a multiple of 4")
            out += struct.pack("!HH", profile, len(ext) // 4) + ext
        out += self.payload
        if self.padding:
            out += bytes(self.padding - 1) + bytes([self.padding])
        return bytes(out)

    __bytes__ = serialize


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """An RFC 4733 §2.3 named-event payload: event code, end bit, volume (-dBm0), duration."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0  # in RTP timestamp units

    @property
    def key(self) -> str | None:
        """The DTMF key (``"0"``–``"9"``, ``"*"``, ``"#"``, ``"A"``–``"D"``) or None."""
        return DTMF_EVENT_KEYS[self.event] if self.event < len(DTMF_EVENT_KEYS) else None

    @classmethod
    def for_key(cls, key: str, **kwargs: object) -> DtmfEvent:
        index = DTMF_EVENT_KEYS.find(key.upper()) if len(key) == 1 else -1
        if index < 0:
            raise ValueError(f"{key!r} is not a DTMF key")
        return cls(index, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def parse(cls, payload: bytes) -> DtmfEvent:
        if len(payload) < 4:
            raise ValueError("telephone-event payload is shorter than 4 bytes")
        event, flags, duration = _EVENT.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def serialize(self) -> bytes:
        if not 0 <= self.event <= 255 or not 0 <= self.volume <= 63:
            raise ValueError("telephone-event code must be 0-255 and volume 0-63")
        return _EVENT.pack(
            self.event, (0x80 if self.end else 0) | self.volume, self.duration & 0xFFFF
        )

    __bytes__ = serialize


class TelephoneEvents:
    """The DTMF keys in one RTP stream's RFC 4733 event packets; sans-I/O.

    :meth:`feed` takes each event packet's RTP timestamp and payload and returns the key it
    confirms, or None. A key counts when two packets of the same event agree: same timestamp,
    same event code 0-15, a duration that never shrinks and is not 0 in the second (senders
    repeat every packet, and send the end packet three times). So:

    - events 16-255 (not DTMF) and lone packets (junk, or a spoofed packet) give no key;
    - each event (timestamp) gives at most one key however many packets repeat it, late
      copies included (the last ``remember`` events are remembered);
    - a long event split into segments (RFC 4733 §2.5.2.3: the next segment's timestamp is
      the previous one's plus its duration) stays one key.
    """

    def __init__(self, remember: int = 32) -> None:
        self._reported: deque[int] = deque(maxlen=remember)
        self._last: int | None = None  # timestamp of the last key
        self._last_end = 0  # ... and where its event reached (for long-event segments)
        self._last_code = -1
        self._pending: dict[int, tuple[int, int, bool]] = {}  # ts → (code, duration, end)
        self.ignored = 0

    def feed(self, timestamp: int, payload: bytes) -> str | None:
        """Raises ValueError for a payload shorter than 4 bytes."""
        event = DtmfEvent.parse(payload)
        ts = timestamp & 0xFFFFFFFF
        if event.event >= len(DTMF_EVENT_KEYS):
            self.ignored += 1
            return None
        if ts in self._reported:
            if ts == self._last:
                self._last_end = max(self._last_end, (ts + event.duration) & 0xFFFFFFFF)
            return None
        seen = self._pending.get(ts)
        self._pending[ts] = (event.event, event.duration, event.end)
        if len(self._pending) > 8:  # unconfirmed junk: keep the newest few
            del self._pending[next(iter(self._pending))]
        if seen is None:
            return None
        code, duration, ended = seen
        if code != event.event or event.duration < duration or event.duration == 0:
            self.ignored += 1
            del self._pending[ts]
            return None
        if ended and not event.end:
            self.ignored += 1  # the event had ended: nothing may follow but its end packets
            return None
        del self._pending[ts]
        continuation = self._last is not None and code == self._last_code and ts == self._last_end
        self._reported.append(ts)
        self._last, self._last_code = ts, code
        self._last_end = (ts + event.duration) & 0xFFFFFFFF
        return None if continuation else DTMF_EVENT_KEYS[code]
