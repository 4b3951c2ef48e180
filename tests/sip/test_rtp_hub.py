"""The RTP hub on real loopback sockets, without signalling: packets are read at the ticks,
and a new call's stream is a new stream even when it takes over the row of a call that ended."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
import pytest_asyncio

from relaykit.media.engine import MediaEngine
from relaykit.sip.g711 import ULAW, ulaw_encode
from relaykit.sip.leg import RtpHub, RtpLeg
from relaykit.sip.rtp import RtpPacket, rtp_header
from tests.helpers import WAIT
from tests.sip.peers import LOOPBACK

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def hub() -> AsyncIterator[tuple[MediaEngine, RtpHub]]:
    engine = MediaEngine()
    rtp = RtpHub(engine)
    await rtp.start()
    yield engine, rtp
    await rtp.stop()


def phone_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.setblocking(False)
    return sock


def send_audio(phone: socket.socket, leg: RtpLeg, sequence: int) -> None:
    codes = ulaw_encode(np.full(160, 1000, np.int16)).tobytes()
    header = rtp_header(0, sequence, 160 * sequence, 0xBEEF, sequence == 0)
    phone.sendto(header + codes, (LOOPBACK, leg.port))


async def tick_until(engine: MediaEngine, done: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not done():
            engine.tick()
            await asyncio.sleep(0.01)


async def started_leg(
    engine: MediaEngine, hub: RtpHub, call_id: str, phone: socket.socket
) -> RtpLeg:
    """A leg whose phone has sent a packet (so media goes back to it)."""
    media = engine.add_call(call_id, record=False)
    leg = await RtpLeg.open(hub, LOOPBACK)
    leg.start(media, ULAW, 101, phone.getsockname())
    send_audio(phone, leg, 0)
    await tick_until(engine, lambda: leg.latched)
    return leg


async def packets_out(
    engine: MediaEngine, hub: RtpHub, leg: RtpLeg, phone: socket.socket, count: int
) -> list[RtpPacket]:
    """Frames the engine plays on ``leg`` (as after ticks), as the phone receives them."""
    loop = asyncio.get_running_loop()
    tone = (np.sin(np.arange(320) / 5) * 8000).astype(np.int16)
    received = []
    for _ in range(count):
        hub.queue_out(leg, tone)
        engine.tick()  # the frame counter (RTP timestamps) advances; nothing else plays
        async with asyncio.timeout(WAIT):
            received.append(RtpPacket.parse(await loop.sock_recv(phone, 2048)))
    return received


async def test_packets_that_arrived_are_heard_at_the_next_tick(hub):
    engine, rtp = hub
    phone = phone_socket()
    try:
        leg = await started_leg(engine, rtp, "a", phone)
        for n in range(1, 6):
            send_audio(phone, leg, n)
        await tick_until(engine, lambda: leg.received >= 6)
        assert leg.received == 6 and leg.ignored == 0
        assert leg.locked and leg.remote == phone.getsockname()
    finally:
        phone.close()


async def test_a_call_on_a_reused_row_starts_a_new_stream(hub):
    """The second call takes the first call's row: new SSRC, its own sequence, marker bit."""
    engine, rtp = hub
    first_phone, second_phone = phone_socket(), phone_socket()
    try:
        first = await started_leg(engine, rtp, "first", first_phone)
        before = await packets_out(engine, rtp, first, first_phone, 3)
        first.close()
        engine.end_call("first")
        second = await started_leg(engine, rtp, "second", second_phone)
        assert second.slot == first.slot
        after = await packets_out(engine, rtp, second, second_phone, 3)
    finally:
        first_phone.close()
        second_phone.close()
    for stream in (before, after):
        pairs = list(itertools.pairwise(stream))
        assert len({p.ssrc for p in stream}) == 1
        assert [p.marker for p in stream] == [True, False, False]
        assert [(b.sequence_number - a.sequence_number) & 0xFFFF for a, b in pairs] == [1, 1]
        assert [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in pairs] == [160, 160]
    assert before[0].ssrc != after[0].ssrc
