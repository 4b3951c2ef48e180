"""RTP that cannot be hijacked: a live call on loopback, a phone, and an attacker's socket.

The phone's SDP names its real RTP socket. An attacker on another port sends spoofed audio and
complete RFC 4733 presses; an INVITE whose SDP names a third party's socket must not turn the
server into an amplifier.
"""

from __future__ import annotations

import asyncio
import random
import socket

import numpy as np
import pytest

from relaykit import Call
from relaykit.sip.message import SipResponse
from relaykit.sip.rtp import RtpPacket, rtp_header
from relaykit.sip.sdp import parse_sdp
from tests.helpers import WAIT, outcome
from tests.sip.peers import LOOPBACK
from tests.sip.test_rtp_leg import RtpPhone
from tests.sip.test_user_agent import Phone

pytestmark = pytest.mark.asyncio


def sdp_naming(port: int) -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    )


async def call_in(server, run_ivr, ivr, media_port: int, call_id: str):
    """INVITE with an SDP naming ``media_port``; ACK the 200. Returns (outcomes, SIP phone,
    the server's RTP address, the INVITE's size in bytes)."""
    outcomes = await run_ivr(ivr)
    phone = Phone(server.sip.port)
    invite = phone.request("INVITE", body=sdp_naming(media_port), call_id=call_id)
    phone.send(invite)
    ok = await phone.response(200)
    assert isinstance(ok, SipResponse)
    to_tag = (ok.get("To") or "").split("tag=")[1]
    phone.send(phone.request("ACK", to_tag=to_tag, call_id=call_id, cseq="1 ACK"))
    answer = parse_sdp(ok.body)
    return outcomes, phone, (answer.address, answer.port), len(invite)


def drain(sock: socket.socket) -> list[RtpPacket]:
    packets = []
    while True:
        try:
            packets.append(RtpPacket.parse(sock.recv(2048)))
        except BlockingIOError:
            return packets


async def test_a_spoofed_packet_neither_redirects_the_audio_nor_enters_keys(server, run_ivr):
    """The phone (its SDP names its socket) is heard; an attacker on another port sends a
    spoofed audio packet and a full RFC 4733 press of 9 and #: the IVR's audio keeps going to
    the phone, none reaches the attacker, and the PIN prompt gets the phone's keys only."""

    async def ivr(call: Call):
        await call.answer()
        await call.play_ringtone_async("us", 20)  # audio flowing throughout
        return await call.prompt(
            "digits", [{"type": "silence", "duration": 0.1}], digits_max=4,
            digits_terminators="#", digits_timeout=5, initial_timeout=10,
        )  # fmt: skip

    phone_rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone_rtp.bind((LOOPBACK, 0))
    outcomes, sip, server_rtp, _ = await call_in(
        server, run_ivr, ivr, phone_rtp.getsockname()[1], "hijack"
    )
    (leg,) = [state.rtp for state in server.sip.calls.values()]
    phone = RtpPhone(server_rtp)
    phone.sock.close()
    phone.sock = phone_rtp  # the phone sends from the socket its SDP names
    phone_rtp.setblocking(False)
    attacker = RtpPhone(server_rtp)
    try:
        await phone.audio(np.zeros(1600, np.int16))  # 100 ms: the server hears the phone
        async with asyncio.timeout(WAIT):
            while not drain(phone_rtp):
                await asyncio.sleep(0.02)
        attacker.seq, attacker.ts = phone.seq + 1, phone.ts + 160  # a plausible next packet
        attacker._send(0, bytes(160))
        await attacker.key("9")
        await attacker.key("#")
        drain(phone_rtp)
        await asyncio.sleep(0.3)
        to_phone = drain(phone_rtp)
        assert len(to_phone) >= 5, "the phone stopped hearing the IVR"
        assert drain(attacker.sock) == []
        await phone.key("4")
        await phone.key("2")
        await phone.key("#")
        result = await outcome(outcomes)
    finally:
        sip.close()
        phone.close()
        attacker.close()
    assert (result.result, result.terminator) == ("42", "#")
    assert leg.ignored >= 10  # the attacker's audio and event packets


async def test_junk_telephone_events_from_the_phone_press_nothing(server, run_ivr):
    """Random telephone-event payloads (one packet each) from the phone itself are no keys:
    the prompt ends with no input."""

    async def ivr(call: Call):
        await call.answer()
        return await call.prompt(
            "digits", [{"type": "silence", "duration": 0.1}], digits_max=1, initial_timeout=1.5
        )

    phone_rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone_rtp.bind((LOOPBACK, 0))
    outcomes, sip, server_rtp, _ = await call_in(
        server, run_ivr, ivr, phone_rtp.getsockname()[1], "junk"
    )
    rng = random.Random(20)
    try:
        ts, seq = 1000, 1
        for _ in range(60):
            payload = rng.randbytes(4)
            ts += rng.choice((160, 320, 4000))
            phone_rtp.sendto(rtp_header(101, seq, ts, 0xBEEF, False) + payload, server_rtp)
            seq += 1
            await asyncio.sleep(0.01)
        result = await outcome(outcomes)
    finally:
        sip.close()
        phone_rtp.close()
    assert result.prompt_type == "no_input"


async def test_an_sdp_naming_a_third_party_gets_a_few_probes_not_the_call_audio(server, run_ivr):
    """An INVITE whose SDP names someone else's socket (who never sends RTP): while the IVR
    plays 3 s of audio, that socket gets at most a probe every 200 ms — a few packets, not
    the 150 packets of the call's audio."""

    async def ivr(call: Call):
        await call.answer()
        await call.play_ringtone("us", 3)
        return "played"

    victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    victim.bind((LOOPBACK, 0))
    victim.setblocking(False)
    outcomes, sip, _, invite_bytes = await call_in(
        server, run_ivr, ivr, victim.getsockname()[1], "reflect"
    )
    try:
        assert await outcome(outcomes) == "played"
        await asyncio.sleep(0.1)
        received = drain(victim)
    finally:
        sip.close()
        victim.close()
    sent_bytes = sum(12 + len(p.payload) for p in received)
    assert 0 < len(received) <= 3 / 0.2 + 1
    assert sent_bytes < 8 * invite_bytes


async def test_the_phone_that_answers_a_probe_gets_the_full_audio(server, run_ivr):
    """A phone that only sends after it hears something (an echo test) is probed, answers,
    and from then on gets every 20 ms packet."""

    async def ivr(call: Call):
        await call.answer()
        await call.play_ringtone("us", 2)
        return "played"

    phone_rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone_rtp.bind((LOOPBACK, 0))
    phone_rtp.setblocking(False)
    outcomes, sip, server_rtp, _ = await call_in(
        server, run_ivr, ivr, phone_rtp.getsockname()[1], "echo"
    )
    loop = asyncio.get_running_loop()
    try:
        first = RtpPacket.parse(await asyncio.wait_for(loop.sock_recv(phone_rtp, 2048), WAIT))
        phone_rtp.sendto(bytes(first), server_rtp)  # echo it back
        await asyncio.sleep(0.5)
        later = drain(phone_rtp)
        assert await outcome(outcomes) == "played"
    finally:
        sip.close()
        phone_rtp.close()
    assert len(later) >= 15  # ~25 in 0.5 s at full rate, ~2 while probing
