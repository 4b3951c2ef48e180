"""The SDK's WebSocket short path (relaykit.client.wire) against a raw TCP peer that writes
exactly the bytes a test chooses, cut wherever it likes."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.utils import accept_key

from relaykit.client.wire import RelayConnection, send_text

pytestmark = pytest.mark.asyncio


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """An unmasked frame, as a server writes it."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 1 << 16:
        return bytes((first, 126)) + struct.pack("!H", size) + payload
    return bytes((first, 127)) + struct.pack("!Q", size) + payload


async def read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """The client's next frame but its keepalive pings: opcode, masked or not, payload."""
    while (got := await _read_frame(reader))[0] == 9:
        pass
    return got


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    masked = bool(second & 0x80)
    mask = await reader.readexactly(4) if masked else b"\0\0\0\0"
    data = await reader.readexactly(size)
    return first & 0x0F, masked, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


@dataclass
class RawPeer:
    """A WebSocket server by hand: it answers the handshake, then the test drives the bytes."""

    url: str = ""
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(
        default_factory=asyncio.Queue
    )

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key.decode()).encode() + b"\r\n\r\n"
        )
        await writer.drain()
        await self.accepted.put((reader, writer))


@pytest_asyncio.fixture
async def peer() -> AsyncIterator[RawPeer]:
    raw = RawPeer()
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    raw.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield raw


@contextlib.asynccontextmanager
async def linked(
    peer: RawPeer,
) -> AsyncIterator[tuple[RelayConnection, list[str], asyncio.StreamReader, asyncio.StreamWriter]]:
    async with connect(
        peer.url, create_connection=RelayConnection, compression=None, close_timeout=0.5
    ) as ws:
        assert isinstance(ws, RelayConnection)
        texts: list[str] = []
        ws.deliver_to(texts.append)
        reader, writer = await peer.accepted.get()
        try:
            yield ws, texts, reader, writer
        finally:
            writer.close()


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_text_frames_cut_anywhere_arrive_whole_and_in_order(peer):
    """Short, 16-bit and 64-bit lengths, non-ASCII text, written one byte at a time."""
    messages = ["{}", "é" * 100, "x" * 300, "y" * 70_000]
    data = b"".join(frame(1, text.encode()) for text in messages)
    async with linked(peer) as (_ws, texts, _reader, writer):
        for i in range(0, 400):  # the first frames byte by byte, the rest at once
            writer.write(data[i : i + 1])
            await writer.drain()
        writer.write(data[400:])
        await until(lambda: len(texts) == len(messages))
        assert texts == messages


async def test_a_ping_is_answered_and_text_after_it_still_takes_the_short_path(peer):
    async with linked(peer) as (_ws, texts, reader, writer):
        writer.write(frame(1, b"one") + frame(9, b"are you there") + frame(1, b"two"))
        assert await read_client_frame(reader) == (0xA, True, b"are you there")
        await until(lambda: len(texts) == 2)
        assert texts == ["one", "two"]


async def test_a_fragmented_message_and_all_after_it_go_through_websockets_in_order(peer):
    """From the first frame it does not read itself on, websockets' recv gets everything."""
    async with linked(peer) as (ws, texts, _reader, writer):
        writer.write(
            frame(1, b"short")
            + frame(1, b"frag", fin=False)
            + frame(0, b"mented")
            + frame(1, b"after")
        )
        assert await asyncio.wait_for(ws.recv(), 5) == "fragmented"
        assert await asyncio.wait_for(ws.recv(), 5) == "after"
        assert texts == ["short"]


async def test_invalid_utf8_closes_the_connection_as_websockets_does(peer):
    """websockets reads it (the client's reader is always in recv) and closes with 1007."""
    async with linked(peer) as (ws, texts, reader, writer):
        receiving = asyncio.create_task(ws.recv())
        writer.write(frame(1, b"\xff\xfe"))
        opcode, _masked, payload = await read_client_frame(reader)
        assert (opcode, payload[:2]) == (8, struct.pack("!H", 1007))  # invalid payload data
        writer.write(frame(8, payload[:2]))  # the closing handshake's answer
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(receiving, 5)
        assert closed.value.sent is not None and closed.value.sent.code == 1007
        assert texts == []


async def test_send_text_writes_one_masked_text_frame_with_a_fresh_mask(peer):
    async with linked(peer) as (ws, _texts, reader, _writer):
        sizes = (5, 200, 70_000)
        for size in sizes:
            assert send_text(ws, "z" * size)
        masks = set()
        for size in sizes:
            opcode, masked, payload = await read_client_frame(reader)
            assert (opcode, masked, payload) == (1, True, b"z" * size)
        for _ in range(300):
            masks.add(ws.next_mask())
        assert len(masks) > 290  # fresh random keys (RFC 6455 §5.3), not one reused


async def test_send_text_leaves_a_closed_connection_to_websockets(peer):
    async with linked(peer) as (ws, _texts, _reader, _writer):
        await ws.close()
        assert not send_text(ws, "late")
        with pytest.raises(ConnectionClosed):
            await ws.send("late")
