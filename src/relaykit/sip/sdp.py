"""SDP (RFC 4566) for one audio stream: parse an offer or answer, negotiate, build ours.

Only what a G.711 phone call needs: the connection address, the audio port, the payload
types with their ``rtpmap``, ``ptime`` and the direction. Malformed input raises
:class:`SdpError` (a ValueError).
"""

from __future__ import annotations

__all__ = [
    "AudioOffer",
    "Negotiated",
    "SdpError",
    "build_sdp",
    "negotiate",
    "parse_sdp",
]

from dataclasses import dataclass, field

from .g711 import ALAW, ULAW, Codec

_STATIC = {0: ("PCMU", 8000), 8: ("PCMA", 8000)}
TELEPHONE_EVENT = "telephone-event"


class SdpError(ValueError):
    """The session description is malformed or offers nothing we can use."""


@dataclass(slots=True)
class AudioOffer:
    """The first audio stream of a session description."""

    address: str
    port: int
    payload_types: list[int]
    rtpmap: dict[int, tuple[str, int]] = field(default_factory=dict)
    ptime: int | None = None
    direction: str = "sendrecv"

    def codec_name(self, pt: int) -> tuple[str, int] | None:
        return self.rtpmap.get(pt) or _STATIC.get(pt)


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What an SDP offer/answer settled on: the codec and the RFC 4733 payload type."""

    codec: Codec
    telephone_event: int | None  # the peer's payload type for RFC 4733 events, if any


def parse_sdp(body: bytes | str) -> AudioOffer:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
    session_address: str | None = None
    audio: AudioOffer | None = None
    in_audio = False
    seen_media = False
    direction = "sendrecv"
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"bad SDP line {line[:40]!r}")
        kind, value = line[0], line[2:]
        if kind == "c":
            parts = value.split()
            if len(parts) < 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
                raise SdpError(f"bad connection line {value[:40]!r}")
            address = parts[2].split("/")[0]
            if in_audio and audio is not None:
                audio.address = address
            elif not seen_media:
                session_address = address
        elif kind == "m":
            seen_media = True
            parts = value.split()
            if len(parts) < 3:
                raise SdpError(f"bad media line {value[:40]!r}")
            in_audio = parts[0] == "audio" and audio is None
            if in_audio:
                try:
                    port = int(parts[1].split("/")[0])
                    pts = [int(p) for p in parts[3:]]
                except ValueError:
                    raise SdpError(f"bad media line {value[:40]!r}") from None
                if not 0 <= port <= 65535 or any(not 0 <= p <= 127 for p in pts):
                    raise SdpError(f"bad media line {value[:40]!r}")
                audio = AudioOffer(session_address or "", port, pts, direction=direction)
        elif kind == "a":
            name, _, arg = value.partition(":")
            if name in ("sendrecv", "sendonly", "recvonly", "inactive"):
                if in_audio and audio is not None:
                    audio.direction = name
                elif not seen_media:
                    direction = name
            elif in_audio and audio is not None:
                if name == "rtpmap":
                    pt_text, _, encoding = arg.partition(" ")
                    enc = encoding.strip().split("/")
                    try:
                        pt = int(pt_text)
                        rate = int(enc[1]) if len(enc) > 1 else 8000
                    except ValueError:
                        raise SdpError(f"bad rtpmap {arg[:40]!r}") from None
                    audio.rtpmap[pt] = (enc[0], rate)
                elif name == "ptime":
                    try:
                        audio.ptime = int(float(arg))
                    except ValueError:
                        raise SdpError(f"bad ptime {arg[:40]!r}") from None
    if audio is None:
        raise SdpError("no audio stream")
    if not audio.address:
        raise SdpError("no connection address for the audio stream")
    return audio


def negotiate(offer: AudioOffer, prefer: tuple[Codec, ...] = (ULAW, ALAW)) -> Negotiated:
    """Pick the first G.711 codec in the offerer's order, and its telephone-event type."""
    codec = None
    names = {c.name: c for c in prefer}
    for pt in offer.payload_types:
        named = offer.codec_name(pt)
        if named is not None and named[0].upper() in names and named[1] == 8000:
            codec = names[named[0].upper()]
            break
    if codec is None or offer.port == 0:
        raise SdpError("no common codec (PCMU or PCMA at 8000 Hz)")
    te = None
    for pt in offer.payload_types:
        named = offer.codec_name(pt)
        if named is not None and named[0].lower() == TELEPHONE_EVENT and named[1] == 8000:
            te = pt
            break
    return Negotiated(codec, te)


def build_sdp(
    address: str,
    port: int,
    codecs: tuple[Codec, ...],
    telephone_event: int | None = 101,
    *,
    session_id: int = 1,
    version: int = 1,
    ptime: int = 20,
) -> bytes:
    """Our description: one audio stream with ``codecs`` and optionally telephone-event."""
    pts = [c.payload_type for c in codecs]
    if telephone_event is not None:
        pts.append(telephone_event)
    lines = [
        "v=0",
        f"o=relaykit {session_id} {version} IN IP4 {address}",
        "s=relaykit",
        f"c=IN IP4 {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(map(str, pts))}",
    ]
    lines += [f"a=rtpmap:{c.payload_type} {c.name}/{c.clock_rate}" for c in codecs]
    if telephone_event is not None:
        lines += [
            f"a=rtpmap:{telephone_event} {TELEPHONE_EVENT}/8000",
            f"a=fmtp:{telephone_event} 0-16",
        ]
    lines += [f"a=ptime:{ptime}", "a=sendrecv"]
    return ("\r\n".join(lines) + "\r\n").encode()
