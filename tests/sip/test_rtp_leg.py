"""RTP on a live call, from a hand-driven phone: symmetric RTP, RFC 4733 keys counted once,
in-band tones and RFC 4733 events for the same press not counted twice, pacing by the clock."""

from __future__ import annotations

import asyncio
import itertools
import socket

import numpy as np
import pytest

from relaykit import Call
from relaykit.media.dtmf import generate_dtmf
from relaykit.sip.g711 import ulaw_encode
from relaykit.sip.message import SipResponse
from relaykit.sip.rtp import DtmfEvent, RtpPacket, rtp_header
from relaykit.sip.sdp import parse_sdp
from tests.helpers import WAIT, outcome
from tests.sip.peers import LOOPBACK
from tests.sip.test_user_agent import Phone

pytestmark = pytest.mark.asyncio

NOWHERE_PORT = 9  # the SDP names a port nobody listens on: media must follow the packets


class RtpPhone:
    """Sends PCMU and telephone-events, 20 ms apart, from its own socket."""

    def __init__(self, remote: tuple[str, int]) -> None:
        self.remote = remote
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.setblocking(False)
        self.seq = 1000
        self.ts = 50_000
        self.event_seq = 0

    def close(self) -> None:
        self.sock.close()

    def _send(self, pt: int, payload: bytes, marker: bool = False, ts: int | None = None) -> None:
        header = rtp_header(pt, self.seq, self.ts if ts is None else ts, 0xCAFE, marker)
        self.seq += 1
        self.sock.sendto(header + payload, self.remote)

    async def audio(self, samples_16k: np.ndarray) -> None:
        codes = ulaw_encode(samples_16k[::2])
        for i in range(0, len(codes) - 159, 160):
            self._send(0, codes[i : i + 160].tobytes())
            self.ts += 160
            await asyncio.sleep(0.02)

    async def key(self, key: str, *, with_tone: bool = False, packets: int = 6) -> None:
        """One RFC 4733 event (3 end packets, as RFC 4733 §2.5.1.4 asks), optionally with the
        same key's tone in the audio stream at the same time."""
        start = self.ts
        tone = generate_dtmf(key, tone_ms=packets * 20, gap_ms=0)[::2]
        for i in range(packets):
            event = DtmfEvent.for_key(key, duration=(i + 1) * 160)
            self._send(101, bytes(event), marker=i == 0, ts=start)
            audio = tone[i * 160 : (i + 1) * 160] if with_tone else np.zeros(160, np.int16)
            self._send(0, ulaw_encode(audio).tobytes())
            self.ts += 160
            await asyncio.sleep(0.02)
        end = DtmfEvent.for_key(key, end=True, duration=packets * 160)
        for _ in range(3):
            self._send(101, bytes(end), ts=start)
        await self.audio(np.zeros(16000 // 5, np.int16))  # 200 ms of silence after

    async def received(self, count: int) -> list[RtpPacket]:
        loop = asyncio.get_running_loop()
        packets = []
        async with asyncio.timeout(WAIT):
            while len(packets) < count:
                packets.append(RtpPacket.parse(await loop.sock_recv(self.sock, 2048)))
        return packets


async def answered_call(server, run_ivr, ivr) -> tuple[asyncio.Queue, Phone, RtpPhone]:
    outcomes = await run_ivr(ivr)
    phone = Phone(server.sip.port)
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {NOWHERE_PORT} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    phone.send(phone.request("INVITE", body=sdp, call_id="rtp-call"))
    ok = await phone.response(200)
    assert isinstance(ok, SipResponse)
    to_tag = (ok.get("To") or "").split("tag=")[1]
    phone.send(phone.request("ACK", to_tag=to_tag, call_id="rtp-call", cseq="1 ACK"))
    answer = parse_sdp(ok.body)
    phone.to_tag = to_tag  # type: ignore[attr-defined]
    return outcomes, phone, RtpPhone((answer.address, answer.port))


async def test_rfc4733_keys_count_once_and_in_band_copies_are_ignored(server, run_ivr):
    """4 (event + tone), 4 again (event), # (event): the prompt gets 44#, not 444# or 4444##."""

    async def ivr(call: Call):
        await call.answer()
        return await call.prompt(
            "digits", [{"type": "silence", "duration": 0.1}], digits_max=8, digits_terminators="#",
            digits_timeout=5,
        )  # fmt: skip

    outcomes, phone, rtp = await answered_call(server, run_ivr, ivr)
    try:
        await rtp.audio(np.zeros(3200, np.int16))
        await rtp.key("4", with_tone=True)
        await rtp.key("4")
        await rtp.key("#", with_tone=True)
        result = await outcome(outcomes)
    finally:
        phone.close()
        rtp.close()
    assert (result.result, result.terminator) == ("44", "#")


async def test_media_is_sent_where_the_phone_sends_from(server, run_ivr):
    """Symmetric RTP: the SDP names a dead port; once our packets arrive, the IVR's audio comes
    back to the socket they came from, 20 ms packets of PCMU with RTP timestamps 160 apart."""

    async def ivr(call: Call):
        await call.answer()
        await call.play_tts("Hello from relaykit, this is a test of symmetric media")
        return "played"

    outcomes, phone, rtp = await answered_call(server, run_ivr, ivr)
    try:
        await rtp.audio(np.zeros(1600, np.int16))
        packets = await rtp.received(20)
        await outcome(outcomes)
    finally:
        phone.close()
        rtp.close()
    assert {p.payload_type for p in packets} == {0}
    assert {len(p.payload) for p in packets} == {160}
    pairs = list(itertools.pairwise(packets))
    steps = {(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in pairs}
    seqs = {(b.sequence_number - a.sequence_number) & 0xFFFF for a, b in pairs}
    assert steps == {160} and seqs == {1}
    assert len({p.ssrc for p in packets}) == 1


async def test_sip_info_keys_reach_the_prompt(server, run_ivr):
    """Phones set to SIP INFO DTMF (application/dtmf-relay) are heard too."""

    async def ivr(call: Call):
        await call.answer()
        return await call.prompt(
            "digits", [{"type": "silence", "duration": 0.1}], digits_max=2, digits_timeout=5
        )

    outcomes, phone, rtp = await answered_call(server, run_ivr, ivr)
    try:
        async with asyncio.timeout(WAIT):  # keys count once the prompt runs
            while not any(server.engine.component_count(c) for c in server.calls):
                await asyncio.sleep(0.01)
        for n, key in enumerate("58", start=2):
            body = f"Signal={key}\r\nDuration=160\r\n"
            phone.send(
                phone.request(
                    "INFO",
                    to_tag=phone.to_tag,  # type: ignore[attr-defined]
                    call_id="rtp-call",
                    cseq=f"{n} INFO",
                    body=body,
                    content_type="application/dtmf-relay",
                )
            )
            assert (await phone.response(200)).status == 200
        result = await outcome(outcomes)
    finally:
        phone.close()
        rtp.close()
    assert result.result == "58"
