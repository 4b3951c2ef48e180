"""The one outbox writer: frames queued without waiting, written in order by one task.

Every frame waiting when the writer runs goes out in one batch (:func:`websocket_writer`: one
WebSocket send context and one socket write for all of them), so a burst of events costs one
system call, not one per event; the frames on the wire are the same. A peer that stops
reading is disconnected once ``max_frames`` frames wait for it, instead of being buffered for
ever.
"""

from __future__ import annotations

__all__ = ["Outbox"]

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from websockets.asyncio.connection import Connection

log = logging.getLogger("relaykit.server")

_MAX_BATCH = 1024  # frames written at once at most


def websocket_writer(ws: Connection) -> Callable[[list[str]], Awaitable[None]]:
    """Writes a batch of text frames to ``ws`` in order, with one socket write."""

    async def write(texts: list[str]) -> None:
        async with ws.send_context():  # websockets' state checks and flow control
            for text in texts:
                ws.protocol.send_text(text.encode())
            data = ws.protocol.data_to_send()
            if all(data):
                ws.transport.write(b"".join(data))
            else:  # an end of stream among them: websockets writes the lot itself
                ws.protocol.writes.extend(data)

    return write


class Outbox:
    """Queues text frames for ``write`` and writes them in order, in batches.

    Args:
        write: sends a batch of frames (:func:`websocket_writer`); an exception ends the
            writer (the peer is gone).
        max_frames: frames allowed to wait; one more calls ``on_overflow`` and closes the outbox.
        on_overflow: what to do with a peer that does not read (close its socket).
    """

    def __init__(
        self,
        write: Callable[[list[str]], Awaitable[None]],
        *,
        max_frames: int,
        on_overflow: Callable[[], None],
    ) -> None:
        self._write = write
        self.max_frames = max_frames
        self._on_overflow = on_overflow
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    def send(self, text: str) -> None:
        """Queue one frame; never waits."""
        if self.closed:
            return
        if self._queue.qsize() >= self.max_frames:
            self.close()
            self._on_overflow()
            return
        self._queue.put_nowait(text)

    def close(self) -> None:
        """Write what is queued, then stop. Idempotent."""
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    async def drain(self, timeout: float) -> None:
        """Close and wait (up to ``timeout`` seconds) until everything queued is written."""
        self.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        self._task.cancel()

    async def _run(self) -> None:
        queue = self._queue
        while True:
            batch: list[str] = []
            text = await queue.get()
            while text is not None:
                batch.append(text)
                if queue.empty() or len(batch) >= _MAX_BATCH:
                    break
                text = queue.get_nowait()
            if batch:
                try:
                    await self._write(batch)
                except Exception:
                    return
            if text is None:
                return
