"""``calling.tap``'s network side: the call's audio as G.711 RTP, over UDP or a WebSocket.

The engine's tap hands one 16 kHz frame per 20 ms tick (:class:`~relaykit.media.tap.AudioTap`);
here it is resampled to 8 kHz, encoded as PCMU or PCMA, and cut into RTP packets of the
device's ``ptime`` (RFC 3550 headers, a random SSRC, sequence number and timestamp base, the
marker bit on the first packet). An ``rtp`` device gets the packets as UDP datagrams at
``addr:port``; a ``ws`` device gets the same packets as binary WebSocket messages.

A target that cannot be reached is refused before the tap starts: a name that does not
resolve, a WebSocket that does not open, or a UDP port that answers the first packet with
ICMP "port unreachable" (the stream's first packet, silence, is sent at once for that). A
target that goes away later ends the tap.
"""

from __future__ import annotations

__all__ = ["RtpPacketizer", "Taps"]

import asyncio
import contextlib
import logging
import secrets
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ..protocol import calling
from ..sip.g711 import ALAW, ULAW, Codec
from ..sip.resample import HISTORY, downsample2
from ..sip.rtp import rtp_header

log = logging.getLogger("relaykit.server")

_PROBE_SECONDS = 0.05  # how long the first packet's ICMP answer is waited for
_WS_QUEUE = 500  # packets queued for a WebSocket target (10 s at 20 ms) before it counts as gone


class RtpPacketizer:
    """16 kHz frames in, RTP packets (G.711 at 8 kHz, ``ptime`` ms each) out."""

    def __init__(self, codec: Codec, ptime: int) -> None:
        self.codec = codec
        self.samples_per_packet = 8 * ptime
        self.ssrc = secrets.randbits(32)
        self.sequence = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self._history = np.zeros((1, HISTORY), dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.uint8)
        self._first = True

    def push(self, frame: np.ndarray) -> list[bytes]:
        """The packets completed by one 20 ms frame (int16, 16 kHz)."""
        narrow, self._history = downsample2(frame.reshape(1, -1), self._history)
        self._pending = np.concatenate((self._pending, self.codec.encode(narrow[0])))
        packets = []
        while len(self._pending) >= self.samples_per_packet:
            payload = self._pending[: self.samples_per_packet].tobytes()
            self._pending = self._pending[self.samples_per_packet :]
            packets.append(self._packet(payload))
        return packets

    def silence(self) -> bytes:
        """One packet of silence (keeps the stream's timing)."""
        codes = self.codec.encode(np.zeros(self.samples_per_packet, dtype=np.int16))
        return self._packet(codes.tobytes())

    def _packet(self, payload: bytes) -> bytes:
        header = rtp_header(
            self.codec.payload_type, self.sequence, self.timestamp, self.ssrc, self._first
        )
        self._first = False
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + len(payload)) & 0xFFFFFFFF
        return header + payload


def _codec(name: str) -> Codec:
    return ALAW if name == "PCMA" else ULAW


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.error: str | None = None

    def error_received(self, exc: Exception) -> None:
        self.error = str(exc) or type(exc).__name__


class _UdpTap:
    """RTP over UDP to one address (a connected socket, so ICMP errors come back)."""

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        protocol: _UdpProtocol,
        packetizer: RtpPacketizer,
        device: calling.TapDevice,
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self._packetizer = packetizer
        addr, port = transport.get_extra_info("sockname")[:2]
        self.source_device: dict[str, Any] = {
            "type": "rtp",
            "params": {"addr": addr, "port": port, "codec": device.codec, "ptime": device.ptime},
        }

    def write(self, frame: np.ndarray) -> bool:
        if self._protocol.error is not None or self._transport.is_closing():
            return False
        for packet in self._packetizer.push(frame):
            self._transport.sendto(packet)
        return True

    def close(self) -> None:
        self._transport.close()


class _WebSocketTap:
    """The same RTP packets as binary WebSocket messages, sent by a task of their own."""

    def __init__(
        self, ws: ClientConnection, packetizer: RtpPacketizer, device: calling.TapDevice
    ) -> None:
        self._ws = ws
        self._packetizer = packetizer
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(_WS_QUEUE)
        self._gone = False
        self._sender = asyncio.get_running_loop().create_task(self._send())
        self.source_device: dict[str, Any] = {
            "type": "ws",
            "params": {"codec": device.codec, "ptime": device.ptime, "rate": 8000},
        }

    def write(self, frame: np.ndarray) -> bool:
        if self._gone:
            return False
        for packet in self._packetizer.push(frame):
            try:
                self._queue.put_nowait(packet)
            except asyncio.QueueFull:  # the target stopped reading
                log.warning("! tap target %s does not keep up; ending the tap", self._ws.id)
                self._gone = True
                return False
        return True

    async def _send(self) -> None:
        try:
            while (packet := await self._queue.get()) is not None:
                await self._ws.send(packet)
        except (ConnectionClosed, OSError):
            self._gone = True
        finally:
            await self._ws.close()

    def close(self) -> None:
        if not self._gone:
            self._gone = True
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)
                return
        self._sender.cancel()  # a full queue: drop what is left

    async def closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender


class Taps:
    """Opens tap targets for the call service (:class:`relaykit.calls.TapTargets`)."""

    def __init__(self) -> None:
        self._websockets: set[_WebSocketTap] = set()

    async def open(self, device: calling.TapDevice) -> _UdpTap | _WebSocketTap:
        packetizer = RtpPacketizer(_codec(device.codec), device.ptime)
        if device.type == "rtp":
            return await self._open_udp(device, packetizer)
        return await self._open_ws(device, packetizer)

    async def _open_udp(self, device: calling.TapDevice, packetizer: RtpPacketizer) -> _UdpTap:
        assert device.addr is not None and device.port is not None
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                _UdpProtocol, remote_addr=(device.addr, device.port)
            )
        except OSError as exc:
            raise ConnectionError(f"{device.addr}:{device.port}: {exc.strerror or exc}") from None
        transport.sendto(packetizer.silence())
        await asyncio.sleep(_PROBE_SECONDS)
        if protocol.error is not None:
            transport.close()
            raise ConnectionError(f"{device.addr}:{device.port}: {protocol.error}")
        return _UdpTap(transport, protocol, packetizer, device)

    async def _open_ws(self, device: calling.TapDevice, packetizer: RtpPacketizer) -> _WebSocketTap:
        assert device.uri is not None
        try:
            ws = await connect(device.uri, compression=None, open_timeout=None)
        except (OSError, InvalidURI, InvalidHandshake) as exc:
            raise ConnectionError(f"{device.uri}: {exc}") from None
        tap = _WebSocketTap(ws, packetizer, device)
        self._websockets.add(tap)
        tap._sender.add_done_callback(lambda _task: self._websockets.discard(tap))
        return tap

    async def aclose(self) -> None:
        """Wait for WebSocket taps to finish closing (the server's stop)."""
        for tap in list(self._websockets):
            tap.close()
        await asyncio.gather(*(tap.closed() for tap in list(self._websockets)))
