"""calling.tap end to end: a real UDP socket and a real WebSocket server receive the call's
audio as G.711 RTP; unreachable targets are refused; nothing is left open."""

from __future__ import annotations

import asyncio
import os
import socket

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve

from relaykit import Call
from relaykit.media.frames import SAMPLE_RATE
from relaykit.sip.g711 import alaw_decode, ulaw_decode
from relaykit.sip.rtp import RtpPacket
from tests.helpers import WAIT, outcome

pytestmark = pytest.mark.asyncio


def tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def peak_hz(samples: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


class UdpReceiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[RtpPacket] = []
        self.sources: set[tuple[str, int]] = set()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append(RtpPacket.parse(data))
        self.sources.add(addr[:2])


async def udp_receiver() -> tuple[asyncio.DatagramTransport, UdpReceiver]:
    loop = asyncio.get_running_loop()
    return await loop.create_datagram_endpoint(UdpReceiver, local_addr=("127.0.0.1", 0))


def open_sockets() -> int:
    return sum(
        1
        for fd in os.listdir("/proc/self/fd")
        if os.path.exists(f"/proc/self/fd/{fd}")
        and os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    )


async def test_tap_streams_the_callers_audio_as_pcmu_rtp_over_udp(server, run_ivr):
    """direction speak, ptime 30: 240-byte PCMU packets, consecutive sequence numbers,
    timestamps 240 apart, the marker on the first; the payload is the caller's 440 Hz tone."""
    transport, receiver = await udp_receiver()
    port = transport.get_extra_info("sockname")[1]
    go: asyncio.Queue = asyncio.Queue()
    tapping: asyncio.Queue = asyncio.Queue()

    async def ivr(call: Call):
        await call.answer()
        action = await call.tap_async("speak", "rtp", "127.0.0.1", port, target_ptime=30)
        await tapping.put(action.state)
        await go.get()
        await action.stop()
        return action

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    assert await asyncio.wait_for(tapping.get(), WAIT) in ("", "tapping")
    await caller.send_audio(tone(1.0))
    await caller.silence(0.1)  # the last packet of the tone goes out
    await go.put("stop")
    action = await outcome(outcomes)
    transport.close()
    result = action.result
    assert result.successful and result.event.name == "finished"
    assert result.destination_device == {
        "type": "rtp",
        "params": {"codec": "PCMU", "ptime": 30, "addr": "127.0.0.1", "port": port},
    }
    assert result.tap == {"type": "audio", "params": {"direction": "speak"}}
    source = action.source_device
    assert source["type"] == "rtp" and (source["params"]["addr"], source["params"]["port"]) in (
        receiver.sources
    )
    packets = receiver.packets
    assert len(packets) >= 30
    assert {p.payload_type for p in packets} == {0} and {len(p.payload) for p in packets} == {240}
    assert [p.marker for p in packets[:2]] == [True, False]
    assert np.all(np.diff([p.sequence_number for p in packets]) % 65536 == 1)
    assert np.all(np.diff([p.timestamp for p in packets]) % 2**32 == 240)
    assert len({p.ssrc for p in packets}) == 1
    audio = np.concatenate([ulaw_decode(p.payload) for p in packets])
    loud = np.flatnonzero(np.abs(audio) > 2000)
    assert (loud[-1] - loud[0]) / 8000 == pytest.approx(1.0, abs=0.02)  # the tone, at 8 kHz
    assert peak_hz(audio[loud[0] : loud[-1]]) == pytest.approx(440.0, abs=5.0)


async def test_tap_streams_what_the_caller_hears_as_pcma_over_a_websocket(server, run_ivr):
    """A ws device gets the same RTP packets as binary messages; direction listen carries what
    the IVR plays (a US ringback: 440 + 480 Hz)."""
    received: list[bytes] = []
    closed = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            assert isinstance(message, bytes)
            received.append(message)
        closed.set()

    async with serve(handler, "127.0.0.1", 0) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]

        async def ivr(call: Call):
            await call.answer()
            action = await call.tap_async(
                "listen", "ws", target_uri=f"ws://127.0.0.1:{port}/tap", codec="PCMA"
            )
            await call.play_ringtone("us", duration=1.0)
            await action.stop()
            return action

        outcomes = await run_ivr(ivr)
        await server.dial_in(context="office")
        action = await outcome(outcomes)
        await asyncio.wait_for(closed.wait(), WAIT)  # the tap closed its WebSocket
    assert action.result.successful
    assert action.source_device["type"] == "ws"
    packets = [RtpPacket.parse(m) for m in received]
    assert {p.payload_type for p in packets} == {8} and len(packets) >= 50
    audio = np.concatenate([alaw_decode(p.payload) for p in packets])
    # the US ringback: 440 + 480 Hz
    spectrum = np.abs(np.fft.rfft(audio))
    freqs = np.fft.rfftfreq(len(audio), 1 / 8000)
    strongest = sorted(freqs[np.argsort(spectrum)[-6:]])
    assert min(abs(f - 440) for f in strongest) < 5 and min(abs(f - 480) for f in strongest) < 5


async def test_unreachable_targets_are_refused_with_a_clear_error(server, run_ivr):
    """Nothing listening on the UDP port, a name that does not resolve, a refused WebSocket:
    the command fails naming the device, and no component runs."""
    closed_port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed_port.bind(("127.0.0.1", 0))
    udp_port = closed_port.getsockname()[1]
    closed_port.close()
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    ws_port = tcp.getsockname()[1]
    tcp.close()

    async def ivr(call: Call):
        await call.answer()
        return (
            await call.tap_async("both", "rtp", "127.0.0.1", udp_port),
            await call.tap_async("both", "rtp", "no-such-host.invalid", 4000),
            await call.tap_async("both", "ws", target_uri=f"ws://127.0.0.1:{ws_port}/"),
            await call.tap_async("both", "rtp", "127.0.0.1", 4000, codec="OPUS"),  # type: ignore[arg-type]
        )

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    actions = await outcome(outcomes)
    for action in actions:
        assert action.completed and not action.result.successful
    messages = [a.result.event.payload["message"] for a in actions]
    assert all(m.startswith("device") for m in messages), messages
    assert "not reachable" in messages[0] and "refused" in messages[0].lower()
    assert "no-such-host.invalid" in messages[1]
    assert f"127.0.0.1:{ws_port}" in messages[2]
    assert "OPUS" in messages[3]
    assert not [e for e in caller.events if getattr(e, "component", None) == "tap"]


async def test_a_tap_ends_with_the_call_and_closes_its_socket(server, run_ivr):
    transport, receiver = await udp_receiver()
    port = transport.get_extra_info("sockname")[1]
    go: asyncio.Queue = asyncio.Queue()

    async def ivr(call: Call):
        await call.answer()
        await go.get()
        return await call.tap_async("both", "rtp", "127.0.0.1", port)

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    before = open_sockets()
    await go.put("tap")
    action = await outcome(outcomes)
    assert open_sockets() == before + 1  # the tap's socket
    await caller.silence(0.3)
    await caller.hangup()
    for _ in range(100):
        if action.completed:
            break
        await asyncio.sleep(0.02)
    count = len(receiver.packets)
    await asyncio.sleep(0.2)
    assert len(receiver.packets) == count >= 10  # nothing after the hang-up
    assert open_sockets() == before
    ended = [e for e in caller.events if getattr(e, "component", None) == "tap" and e.final]
    assert [(e.state, e.reason) for e in ended] == [("finished", "hangup")]
    transport.close()


async def test_a_tap_whose_receiver_goes_away_ends(server, run_ivr):
    """The receiving port closes mid-tap: ICMP errors end the tap (reason error)."""
    transport, _receiver = await udp_receiver()
    port = transport.get_extra_info("sockname")[1]

    async def ivr(call: Call):
        await call.answer()
        action = await call.tap_async("speak", "rtp", "127.0.0.1", port)
        transport.close()
        await action.wait(WAIT)
        return action

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    action = await outcome(outcomes)
    assert action.completed
    ended = [e for e in caller.events if getattr(e, "component", None) == "tap" and e.final]
    assert [(e.state, e.reason) for e in ended] == [("finished", "error")]
