"""The outbox's batched writer on a real WebSocket: every frame arrives whole, in order, at
each of the three lengths a frame header can carry (RFC 6455 §5.2: 7, 16 and 64 bits)."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from relaykit.server.outbox import Outbox, websocket_writer
from tests.helpers import WAIT

pytestmark = pytest.mark.asyncio

SIZES = (0, 1, 125, 126, 127, 65_535, 65_536, 200_000)


async def test_batched_frames_arrive_whole_and_in_order_at_every_header_length():
    texts = [(f"{size}:" + "x" * size)[:size] for size in SIZES]  # exactly `size` bytes
    texts += [f'{{"n":{i}}}' for i in range(50)]  # many small frames in one batch

    async def handler(ws: ServerConnection) -> None:
        outbox = Outbox(
            websocket_writer(ws), max_frames=1000, max_bytes=1 << 24, on_overflow=lambda: None
        )
        for text in texts:  # queued at once: written together
            assert outbox.send(text)
        await outbox.drain(WAIT)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None) as client:
            received = [await asyncio.wait_for(client.recv(), WAIT) for _ in texts]
    assert received == texts


async def test_a_compressed_connection_still_gets_its_frames():
    """With permessage-deflate negotiated, websockets frames (and compresses) them itself."""
    texts = ["y" * 300, "z", '{"a":1}']

    async def handler(ws: ServerConnection) -> None:
        outbox = Outbox(websocket_writer(ws), max_frames=10, max_bytes=1 << 20, on_overflow=print)
        for text in texts:
            outbox.send(text)
        await outbox.drain(WAIT)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:  # compression on (the default)
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as client:
            assert client.protocol.extensions  # deflate was negotiated
            received = [await asyncio.wait_for(client.recv(), WAIT) for _ in texts]
    assert received == texts
