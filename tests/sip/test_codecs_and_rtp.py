"""Pure media data structures: G.711 tables, RTP and RFC 4733 packets, resampling, SDP."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soxr

from relaykit.sip.g711 import ALAW, ULAW, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from relaykit.sip.resample import HISTORY, UP_HISTORY, downsample2, upsample2
from relaykit.sip.rtp import DtmfEvent, RtpPacket, is_rtcp, rtp_header
from relaykit.sip.sdp import SdpError, build_sdp, negotiate, parse_sdp

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the reference; gone in 3.13, hence our own tables

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


# -- G.711 -------------------------------------------------------------------------------------
def test_ulaw_encoder_is_bit_exact_with_audioop_for_every_sample():
    assert ulaw_encode(ALL_SAMPLES).tobytes() == audioop.lin2ulaw(ALL_SAMPLES.tobytes(), 2)


def test_alaw_encoder_is_bit_exact_with_audioop_for_every_sample():
    assert alaw_encode(ALL_SAMPLES).tobytes() == audioop.lin2alaw(ALL_SAMPLES.tobytes(), 2)


def test_decoders_are_bit_exact_with_audioop_for_every_code():
    assert ulaw_decode(ALL_CODES).tobytes() == audioop.ulaw2lin(ALL_CODES, 2)
    assert alaw_decode(ALL_CODES).tobytes() == audioop.alaw2lin(ALL_CODES, 2)


def test_codec_objects_name_their_static_payload_types():
    assert (ULAW.name, ULAW.payload_type, ALAW.name, ALAW.payload_type) == ("PCMU", 0, "PCMA", 8)
    tone = (8000 * np.sin(np.arange(160) / 3)).astype(np.int16)
    for codec in (ULAW, ALAW):
        back = codec.decode(codec.encode(tone).tobytes())
        assert np.max(np.abs(back.astype(int) - tone)) < 300  # G.711 quantisation only


# -- RTP ---------------------------------------------------------------------------------------
def test_rtp_packet_round_trips_every_field():
    packet = RtpPacket(
        payload_type=0,
        sequence_number=65535,
        timestamp=0xFFFFFFF0,
        ssrc=0x12345678,
        payload=b"\xff" * 160,
        marker=True,
        csrc=(1, 2),
        extension=(0xBEDE, b"\x10\x20\x00\x00"),
        padding=4,
    )
    data = bytes(packet)
    assert RtpPacket.parse(data) == packet
    assert bytes(RtpPacket.parse(data)) == data


def test_fast_header_matches_the_full_serializer():
    header = rtp_header(8, 7, 1600, 99, True)
    assert header == bytes(RtpPacket(8, 7, 1600, 99, b"", marker=True))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00", "RTP packet length is less than 12 bytes"),
        (b"\x40" + bytes(11), "RTP packet has invalid version"),
        (b"\x82" + bytes(11), "RTP packet is truncated in its CSRC list"),
        (b"\x90" + bytes(11) + b"\x00\x00\x00\x05", "RTP packet is truncated in its extension"),
        (b"\xa0" + bytes(11) + b"\x00", "RTP packet has invalid padding length"),
    ],
)
def test_malformed_rtp_raises_value_error_saying_why(data, message):
    with pytest.raises(ValueError, match=message):
        RtpPacket.parse(data)


def test_rtcp_is_told_apart_from_rtp():
    assert is_rtcp(b"\x80\xc8" + bytes(26))  # sender report
    assert not is_rtcp(rtp_header(0, 1, 2, 3, False))
    assert not is_rtcp(rtp_header(101, 1, 2, 3, True))


def test_rfc4733_event_round_trips_and_names_its_key():
    event = DtmfEvent.for_key("#", end=True, volume=10, duration=1280)
    assert event.event == 11 and event.key == "#"
    assert DtmfEvent.parse(bytes(event)) == event
    assert bytes(event) == b"\x0b\x8a\x05\x00"


def test_rfc4733_events_from_sipp_pcap_payloads():
    """The payloads in sip-tester's dtmf_2833_4.pcap: key 4, volume 10, growing duration."""
    assert DtmfEvent.parse(bytes.fromhex("040a0140")) == DtmfEvent(4, False, 10, 320)
    assert DtmfEvent.parse(bytes.fromhex("048a0640")).end
    assert DtmfEvent(16).key is None  # flash, not a key
    with pytest.raises(ValueError, match="shorter than 4 bytes"):
        DtmfEvent.parse(b"\x04")
    with pytest.raises(ValueError, match="not a DTMF key"):
        DtmfEvent.for_key("x")


# -- resampling --------------------------------------------------------------------------------
def _stream(fn, signal: np.ndarray, chunk: int, history: int) -> np.ndarray:
    state = np.zeros((1, history), dtype=np.float32)
    out = []
    for i in range(0, len(signal) - chunk + 1, chunk):
        y, state = fn(signal[None, i : i + chunk], state)
        out.append(y[0])
    return np.concatenate(out)


def _level_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-9)


@pytest.mark.parametrize("hz", [300, 1000, 3000, 3400])
def test_downsampling_keeps_the_telephone_band_like_soxr(hz):
    t = np.arange(16000) / 16000
    tone = (10000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    ours = _stream(downsample2, tone, 320, HISTORY)[400:]
    reference = soxr.resample(tone, 16000, 8000)[400 : 400 + len(ours)]
    assert abs(_level_db(ours) - _level_db(reference)) < 0.1


def test_downsampling_rejects_what_would_alias():
    t = np.arange(16000) / 16000
    tone = (10000 * np.sin(2 * np.pi * 5000 * t)).astype(np.int16)  # would fold to 3 kHz
    assert _level_db(_stream(downsample2, tone, 320, HISTORY)[400:]) < _level_db(tone) - 60


def test_upsampling_matches_soxr_and_joins_chunks_without_clicks():
    t = np.arange(8000) / 8000
    tone = (10000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    ours = _stream(upsample2, tone, 160, UP_HISTORY)
    # a pure delay of 28 samples (14 at 8 kHz): compare against the ideal tone
    ideal = 10000 * np.sin(2 * np.pi * 1000 * (np.arange(len(ours)) - 28) / 16000)
    assert np.max(np.abs(ours[400:] - ideal[400:])) < 2
    assert abs(_level_db(ours[400:]) - _level_db(soxr.resample(tone, 8000, 16000)[400:])) < 0.1


def test_batches_of_streams_are_independent():
    rng = np.random.default_rng(1)
    a = (rng.standard_normal(640) * 3000).astype(np.int16)
    b = (rng.standard_normal(640) * 3000).astype(np.int16)
    state = np.zeros((2, HISTORY), dtype=np.float32)
    y1, state = downsample2(np.stack([a[:320], b[:320]]), state)
    y2, state = downsample2(np.stack([a[320:], b[320:]]), state)
    alone = _stream(downsample2, a, 320, HISTORY)
    assert np.array_equal(np.concatenate([y1[0], y2[0]]), alone)


# -- SDP ---------------------------------------------------------------------------------------
SIPP_OFFER = (
    "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n"
)


def test_offer_is_parsed_and_the_offerers_first_codec_wins():
    offer = parse_sdp(SIPP_OFFER.encode())
    assert (offer.address, offer.port, offer.payload_types, offer.ptime) == (
        "127.0.0.1",
        6000,
        [8, 0, 101],
        20,
    )
    negotiated = negotiate(offer)
    assert negotiated.codec is ALAW and negotiated.telephone_event == 101


def test_static_payload_types_need_no_rtpmap_and_media_level_c_wins():
    offer = parse_sdp("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 7000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\n")
    assert offer.address == "10.0.0.2"
    assert negotiate(offer).codec is ULAW and negotiate(offer).telephone_event is None


@pytest.mark.parametrize(
    "text",
    [
        "v=0\r\nc=IN IP4 1.2.3.4\r\n",  # no audio
        "v=0\r\nm=audio 7000 RTP/AVP 0\r\n",  # no address
        "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",
        "garbage",
    ],
)
def test_unusable_descriptions_raise_sdp_error(text):
    with pytest.raises(SdpError):
        parse_sdp(text)


def test_offer_without_g711_cannot_be_negotiated():
    offer = parse_sdp("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 7000 RTP/AVP 18\r\n")
    with pytest.raises(SdpError, match="no common codec"):
        negotiate(offer)


def test_our_answer_parses_back():
    answer = parse_sdp(build_sdp("127.0.0.1", 40000, (ULAW,), 101))
    assert (answer.port, answer.payload_types) == (40000, [0, 101])
    assert answer.rtpmap[101] == ("telephone-event", 8000)


@pytest.mark.parametrize(
    "name", ["g711", "rtp", "jitter", "sdp", "message", "resample"], ids=lambda n: f"sip/{n}.py"
)
def test_sip_cores_do_no_io(name):
    """The parsing and media cores are sans-I/O: no asyncio, sockets or threads."""
    import ast
    from pathlib import Path

    import relaykit.sip

    path = Path(relaykit.sip.__file__).parent / f"{name}.py"
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "socket", "threading", "websockets"}
