"""The one outbox writer: frames queued without waiting, written in order by one task.

A peer that stops reading is disconnected once ``max_frames`` frames or ``max_bytes``
characters of JSON text wait for it, instead of being buffered for ever. A frame may carry a
``written`` callback, called once the socket has taken it: that is how a session knows which of
its events were delivered and which to replay on the client's next connection.

Every frame waiting when the writer runs goes out in one batch (:func:`websocket_writer`: one
WebSocket send context and one socket write for all of them), so a burst of events costs one
system call, not one per event; the frames on the wire are the same.
"""

from __future__ import annotations

__all__ = ["Outbox", "websocket_writer"]

import asyncio
import itertools
import logging
import struct
from collections import deque
from collections.abc import Awaitable, Callable

from websockets.asyncio.connection import Connection
from websockets.protocol import Protocol, Side, State

log = logging.getLogger("relaykit.server")

Written = Callable[[], None]

_MAX_BATCH = 1024  # frames written at once at most
_HEADER_16 = struct.Struct("!BBH")  # FIN + text opcode, 126, 16-bit length
_HEADER_64 = struct.Struct("!BBQ")  # FIN + text opcode, 127, 64-bit length


def websocket_writer(ws: Connection) -> Callable[[list[str]], Awaitable[None]]:
    """Writes a batch of text frames to ``ws`` in order, with one socket write."""

    async def write(texts: list[str]) -> None:
        async with ws.send_context():  # websockets' state checks and flow control
            protocol = ws.protocol
            if _plain_server_frames(protocol):
                data = protocol.data_to_send()  # what websockets queued first (pongs…)
                data.append(_text_frames(texts))
            else:
                for text in texts:
                    protocol.send_text(text.encode())
                data = protocol.data_to_send()
            if all(data):
                ws.transport.write(b"".join(data))
            else:  # an end of stream among them: websockets writes the lot itself
                protocol.writes.extend(data)

    return write


def _plain_server_frames(protocol: Protocol) -> bool:
    """Whether a text frame on this connection is just a header and the payload (RFC 6455
    §5.2): a server's (unmasked), no extension (compression is off), no fragmented message
    under way, open, not logging frames (websockets' debug log)."""
    return (
        protocol.side is Side.SERVER
        and not protocol.extensions
        and not protocol.expect_continuation_frame
        and protocol.state is State.OPEN
        and not protocol.debug
    )


def _text_frames(texts: list[str]) -> bytes:
    """Unfragmented, unmasked text frames, as websockets' ``send_text`` writes them (one
    Python call per frame less than websockets' own framing)."""
    parts: list[bytes] = []
    for text in texts:
        payload = text.encode()
        size = len(payload)
        if size < 126:
            parts.append(bytes((0x81, size)))
        elif size < 1 << 16:
            parts.append(_HEADER_16.pack(0x81, 126, size))
        else:
            parts.append(_HEADER_64.pack(0x81, 127, size))
        parts.append(payload)
    return b"".join(parts)


class Outbox:
    """Queues text frames for ``write`` and writes them in order, in batches.

    Args:
        write: sends a batch of frames (:func:`websocket_writer`); an exception ends the
            writer (the peer is gone).
        max_frames: frames allowed to wait; one more calls ``on_overflow`` and closes the outbox.
        max_bytes: characters allowed to wait (RELAY frames are ASCII: bytes). A frame is always
            taken when nothing waits, so one large reply cannot wedge the outbox.
        on_overflow: what to do with a peer that does not read (close its socket).
    """

    def __init__(
        self,
        write: Callable[[list[str]], Awaitable[None]],
        *,
        max_frames: int,
        max_bytes: int,
        on_overflow: Callable[[], None],
    ) -> None:
        self._write = write
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._on_overflow = on_overflow
        self._queue: deque[tuple[str, Written | None]] = deque()
        self._bytes = 0
        self._wakeup = asyncio.Event()
        self.closed = False
        self._task: asyncio.Task[None] | None = None  # the writer, started by the first frame

    @property
    def waiting(self) -> tuple[int, int]:
        """Frames and characters queued and not yet written."""
        return len(self._queue), self._bytes

    def send(self, text: str, written: Written | None = None) -> bool:
        """Queue one frame; never waits. False if it was not taken (closed or overflowing)."""
        if self.closed:
            return False
        if self._queue and (
            len(self._queue) >= self.max_frames or self._bytes + len(text) > self.max_bytes
        ):
            self.close()
            self._on_overflow()
            return False
        self._queue.append((text, written))
        self._bytes += len(text)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wakeup.set()
        return True

    def close(self) -> None:
        """Write what is queued, then stop. Idempotent."""
        self.closed = True
        self._wakeup.set()

    def abort(self) -> None:
        """Stop now; what is queued is never written (nor reported written)."""
        self.closed = True
        self._queue.clear()
        self._bytes = 0
        if self._task is not None:
            self._task.cancel()

    async def drain(self, timeout: float) -> None:
        """Close and wait (up to ``timeout`` seconds) until everything queued is written."""
        self.close()
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task}, timeout=timeout)
            self._task.cancel()

    async def _run(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                if self.closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = list(itertools.islice(queue, _MAX_BATCH))
            try:
                await self._write([text for text, _written in batch])
            except Exception:
                self.closed = True  # the peer is gone: later frames would never be written
                return
            for text, written in batch:
                if not queue or queue[0][0] is not text:
                    return  # aborted while writing
                queue.popleft()
                self._bytes -= len(text)
                if written is not None:
                    written()
