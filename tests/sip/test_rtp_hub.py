"""The RTP hub on real loopback sockets, without signalling: packets are read at the ticks,
and a new call's stream is a new stream even when it takes over the row of a call that ended."""

from __future__ import annotations

import asyncio
import itertools
import select
import socket
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
import pytest_asyncio

from relaykit.media.engine import MediaEngine
from relaykit.sip.g711 import ALAW, ULAW, ulaw_encode
from relaykit.sip.jitter import JitterBuffer, JitterRun
from relaykit.sip.leg import RtpHub, RtpLeg
from relaykit.sip.rtp import DtmfEvent, RtpPacket, rtp_header
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


class _PerPacketBuffer(JitterBuffer):
    """A jitter buffer that never hands its packets over: its leg stays off the hub's
    steady path, so every packet goes through ``RtpLeg.datagram_received`` one by one."""

    def hand_over(self, payload_size: int) -> JitterRun | None:
        return None


def _rough_stream(seed: int) -> list[list[bytes]]:
    """A phone's packets tick by tick: 20 ms PCMU of random codes across the sequence number
    and timestamp wrap-around, a short and a long key press as RFC 4733 events (the in-band
    audio goes on under them, and is muted), and a network that loses, repeats, reorders,
    bunches and pauses."""
    rng = np.random.default_rng(seed)
    packets: list[bytes] = []
    seq, ts = 65_400, 0xFFFF_FFFF - 16_000
    event_start = 0
    for n in range(280):
        codes = rng.integers(0, 256, 160, dtype=np.uint8).tobytes()
        packets.append(rtp_header(0, seq, ts, 0xFACE, n == 0) + codes)
        seq += 1
        # a short press with an event packet every 20 ms, a long one with one every 80 ms
        for first, key, every, length in ((70, 5, 1, 3), (170, 11, 4, 40)):
            if n == first:
                event_start = ts
            end = first + length <= n < first + length + 3
            if end or (first <= n < first + length and (n - first) % every == 0):
                duration = min(n - first + 1, length) * 160
                event = DtmfEvent(key, end=end, duration=duration).serialize()
                packets.append(rtp_header(101, seq, event_start, 0xFACE, n == first) + event)
                seq += 1
        ts += 160
    ticks: list[list[bytes]] = []
    i = 0
    paused = False
    while i < len(packets):
        roll = rng.random()
        if i >= 120 and not paused:  # the phone pauses (longer than the idle flush)
            ticks += [[] for _ in range(6)]
            paused = True
        if roll < 0.04:
            i += 1  # lost
        elif roll < 0.08 and i + 1 < len(packets):
            ticks.append([packets[i + 1], packets[i]])  # reordered
            i += 2
        elif roll < 0.11:
            ticks.append([packets[i], packets[i]])  # repeated
            i += 1
        elif roll < 0.15:
            ticks.append([])
            ticks.append(packets[i : i + 3])  # held up, then bunched
            i += 3
        else:
            ticks.append([packets[i]])
            i += 1
    return ticks


def _as_pcma(packet: bytes) -> bytes:
    """The same packet with PCMA's payload type where it has PCMU's."""
    if packet[1] & 0x7F:
        return packet
    return packet[:1] + bytes([packet[1] | 8]) + packet[2:]


@pytest.mark.looptime
async def test_the_steady_path_hears_what_the_per_packet_path_hears(
    hub: tuple[MediaEngine, RtpHub],
) -> None:
    """Calls get the same rough stream, in PCMU and in PCMA: one leg of each codec takes its
    in-sequence packets on the hub's steady path (array operations over all legs), the other
    every packet one by one. The engine hears the same audio from both legs of a codec,
    sample for sample, and they hear the same keys."""
    engine, rtp = hub
    kinds = [(ULAW, False), (ULAW, True), (ALAW, False), (ALAW, True)]  # (codec, per packet)
    phones = [phone_socket() for _ in kinds]
    legs: list[RtpLeg] = []
    medias = []
    try:
        for i, ((codec, per_packet), phone) in enumerate(zip(kinds, phones, strict=True)):
            media = engine.add_call(f"call-{i}", record=True)
            leg = await RtpLeg.open(rtp, LOOPBACK)
            if per_packet:
                leg.jitter = _PerPacketBuffer()
            leg.start(media, codec, 101, phone.getsockname())
            legs.append(leg)
            medias.append(media)
        for tick in _rough_stream(seed=17):
            for packet in tick:
                for (codec, _), phone, leg in zip(kinds, phones, legs, strict=True):
                    data = packet if codec is ULAW else _as_pcma(packet)
                    phone.sendto(data, (LOOPBACK, leg.port))
            if tick:  # (loopback delivers at once; this only guards a slow machine)
                select.select([leg.sock for leg in legs if leg.sock], [], [], WAIT)
            engine.tick()
            await asyncio.sleep(0.02)  # the loop's clock: 20 ms a tick, on looptime
        for _ in range(10):  # what the buffers still hold, and the engine's queue
            engine.tick()
            await asyncio.sleep(0.02)
    finally:
        for phone in phones:
            phone.close()
    heard = [media.recording()[:, 0] for media in medias]
    for steady, per_packet in (heard[0:2], heard[2:4]):
        assert np.abs(per_packet.astype(np.int32)).max() > 1000  # random codes: loud audio
        np.testing.assert_array_equal(steady, per_packet)
    assert not np.array_equal(heard[0], heard[2])  # the codecs differ
    assert all(leg.keys_received == ["5", "#"] for leg in legs)
    assert len({leg.received for leg in legs}) == 1
    assert rtp.steady_packets > 300  # most of the steady legs' packets went the array way
