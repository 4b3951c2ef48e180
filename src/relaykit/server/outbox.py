"""The one outbox writer: frames queued without waiting, written in order by one task.

A peer that stops reading is disconnected once ``max_frames`` frames wait for it, instead of
being buffered for ever.
"""

from __future__ import annotations

__all__ = ["Outbox"]

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("relaykit.server")


class Outbox:
    """Queues text frames for ``write`` (e.g. a WebSocket's ``send``) and writes them in order.

    Args:
        write: sends one frame; an exception ends the writer (the peer is gone).
        max_frames: frames allowed to wait; one more calls ``on_overflow`` and closes the outbox.
        on_overflow: what to do with a peer that does not read (close its socket).
    """

    def __init__(
        self,
        write: Callable[[str], Awaitable[None]],
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
        while (text := await self._queue.get()) is not None:
            try:
                await self._write(text)
            except Exception:
                return
