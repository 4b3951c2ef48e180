"""The SDK's WebSocket, with a short path for the frames a RELAY session is made of.

Nearly every frame either way is one unfragmented JSON text frame. websockets handles each in
several layers (a generator parser, an event, the message assembler, ``recv``; on the way out an
async context manager and a frame object): that was about a quarter of the SDK's CPU per
prompt. :class:`RelayConnection` reads such frames itself and hands their text straight to the
client, and :func:`send_text` frames and masks a text frame in one step. The bytes on the wire
are the same (RFC 6455 §5.2); every other frame — ping, pong, close, binary, fragmented,
compressed, invalid UTF-8, over-long — and every frame once one of those has arrived goes
through websockets as before, so its checks, replies and closing handshake are unchanged.
"""

from __future__ import annotations

__all__ = ["RelayConnection", "send_text"]

import logging
import os
import struct
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

log = logging.getLogger("relaykit.client")

_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
_MASK_POOL = 4 * 1024  # masking keys drawn from the OS at once (RFC 6455 §5.3: unpredictable)


class RelayConnection(ClientConnection):
    """A websockets client connection that delivers plain text frames to ``on_text``.

    Until :meth:`deliver_to` is called, and for good once a frame that is not a plain text
    frame arrives, it is websockets' own connection (messages come from ``recv``).
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._on_text: Callable[[str], None] | None = None
        self._pending = bytearray()  # the start of a frame not yet complete
        self._masks = b""
        self._mask_at = 0

    def deliver_to(self, on_text: Callable[[str], None]) -> None:
        """Send every later plain text frame to ``on_text`` as it is read.

        Called once the handshake is done and before anything is sent: the server has sent
        nothing yet, so websockets holds no part of a frame.
        """
        if self.protocol.state is State.OPEN and not self.protocol.reader.buffer:
            self._on_text = on_text

    def data_received(self, data: bytes) -> None:
        if self._on_text is None:
            super().data_received(data)
            return
        buffer = self._pending
        buffer += data
        at, end = 0, len(buffer)
        limits = (self.protocol.max_message_size, self.protocol.max_fragment_size)
        max_size = min((limit for limit in limits if limit is not None), default=None)
        while end - at >= 2:
            first, second = buffer[at], buffer[at + 1]
            size = second & 0x7F
            start = at + 2
            if size == 126:
                if end - at < 4:
                    break
                size = _U16.unpack_from(buffer, start)[0]
                start += 2
            elif size == 127:
                if end - at < 10:
                    break
                size = _U64.unpack_from(buffer, start)[0]
                start += 8
            stop = start + size
            # FIN + text, ping or pong; no RSV bits; unmasked (a server's); within the limit
            ours = first in (0x81, 0x89, 0x8A) and second < 0x80
            if ours and (max_size is None or size <= max_size):
                if stop > end:
                    break  # wait for the rest
                if first != 0x81:
                    super().data_received(bytes(buffer[at:stop]))  # websockets answers it
                    at = stop
                    continue
                try:
                    text = buffer[start:stop].decode()
                except UnicodeDecodeError:
                    ours = False
            else:
                ours = False
            if not ours:
                # anything else, and all that follows it, is websockets' from now on
                self._on_text = None
                rest = bytes(buffer[at:])
                buffer.clear()
                super().data_received(rest)
                return
            at = stop
            try:
                self._on_text(text)
            except Exception:
                log.exception("! failed to handle a frame; ignoring it")
        del buffer[:at]

    def eof_received(self) -> None:
        if self._pending:  # a frame cut short: websockets reports it as it would have
            rest = bytes(self._pending)
            self._pending.clear()
            self._on_text = None
            super().data_received(rest)
        return super().eof_received()

    def next_mask(self) -> bytes:
        """A fresh random masking key; the OS is asked for them a thousand at a time."""
        at = self._mask_at
        if at >= len(self._masks):
            self._masks, at = os.urandom(_MASK_POOL), 0
        self._mask_at = at + 4
        return self._masks[at : at + 4]


def send_text(ws: ClientConnection, text: str) -> bool:
    """Write ``text`` as one masked text frame, as websockets' ``send`` would, if nothing is
    in the way; returns False (nothing written) when websockets must send it: the connection
    is not open, is waiting for the socket to drain, or uses an extension or websockets'
    debug log."""
    protocol = ws.protocol
    if (
        not isinstance(ws, RelayConnection)
        or protocol.state is not State.OPEN
        or ws.paused
        or protocol.extensions
        or protocol.expect_continuation_frame
        or protocol.debug
        or ws.transport.is_closing()
    ):
        return False
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, 0x80 | size))
    elif size < 1 << 16:
        header = b"\x81\xfe" + _U16.pack(size)
    else:
        header = b"\x81\xff" + _U64.pack(size)
    mask = ws.next_mask()
    ws.transport.write(header + mask + apply_mask(payload, mask))
    return True
