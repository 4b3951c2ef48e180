"""One client WebSocket: frames in through a sans-I/O Peer, frames out through a bounded outbox.

The server's logic lives in :class:`~relaykit.server.app.RelayServer`; this adapter only reads,
dispatches, answers exactly once per request, writes in order, and always cleans up.
"""

from __future__ import annotations

__all__ = ["Connection"]

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection

from ..errors import (
    AuthenticationError,
    ErrorCode,
    LimitExceededError,
    ProtocolError,
    RelayError,
)
from ..protocol import Malformed, Peer, ReplyReceived, RequestReceived, blade
from ..protocol.jsonrpc import Request
from .sessions import ServerSession

if TYPE_CHECKING:
    from .app import RelayServer

log = logging.getLogger("relaykit.server")

_YIELD_EVERY = 32  # frames handled back to back before letting other connections run


class Connection:
    def __init__(self, server: RelayServer, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.peer = Peer()
        self.session: ServerSession | None = None
        self.address = str(ws.remote_address[0]) if ws.remote_address else "unknown"
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._closing = False
        self._tokens = float(server.max_request_burst)
        self._tokens_at = asyncio.get_running_loop().time()

    # -- out ------------------------------------------------------------------------------------
    def send(self, text: str) -> None:
        """Queue a frame; a client that stops reading is disconnected, not buffered for ever."""
        if self._closing:
            return
        if self._outbox.qsize() >= self.server.max_outbox:
            log.warning("! %s is not reading its events; closing", self.address)
            self._closing = True
            self._outbox.put_nowait(None)
            asyncio.get_running_loop().create_task(
                self.ws.close(1008, "client too slow: event backlog full")
            )
            return
        self._outbox.put_nowait(text)

    async def _write(self) -> None:
        while (text := await self._outbox.get()) is not None:
            try:
                await self.ws.send(text)
            except Exception:
                return

    async def close(self, reason: str = "server shutting down") -> None:
        """Tell the client (``blade.disconnect``), flush what is queued, then close."""
        if not self._closing:
            _id, text = self.peer.request(blade.DISCONNECT, {}, expect_reply=False)
            self._outbox.put_nowait(text)
            self._closing = True
            self._outbox.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(1001, reason), 5)

    # -- in -------------------------------------------------------------------------------------
    async def run(self) -> None:
        writer = asyncio.create_task(self._write())
        pinger = asyncio.create_task(self._ping()) if self.server.ping_interval else None
        handled = 0
        try:
            async for frame in self.ws:
                if not await self._handle(frame):
                    break
                handled += 1
                if handled % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        except Exception:
            log.debug("! connection from %s closed abruptly", self.address, exc_info=True)
        finally:
            if pinger is not None:
                pinger.cancel()
            if self.session is not None:
                self.server._detach(self.session, self)
            if not self._closing:
                self._closing = True
                self._outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 5)
            writer.cancel()
            await self.ws.close()

    async def _handle(self, frame: str | bytes) -> bool:
        """Handle one frame; False ends the connection."""
        incoming = self.peer.receive(frame)
        if isinstance(incoming, Malformed):
            log.info("! malformed frame from %s: %s", self.address, incoming.error)
            if incoming.reply is not None:
                self.send(incoming.reply)
            return True
        if isinstance(incoming, ReplyReceived) or not isinstance(incoming, RequestReceived):
            return True  # answers to our pings, or stray replies
        request = incoming.request
        try:
            if not self._take_token():
                raise LimitExceededError(
                    f"too many requests: at most {self.server.max_request_rate:g} per second"
                )
            reply = await self._answer(request)
        except AuthenticationError as exc:
            self._send_error(request, exc)
            log.info("! authentication refused for %s", self.address)
            return False
        except RelayError as exc:
            self._send_error(request, exc)
            return True
        except Exception:
            log.exception("! %s failed", request.method)
            reply = self.peer.respond_error(
                request, ErrorCode.INTERNAL_ERROR, "internal server error; see server log"
            )
        if reply is not None:
            self.send(reply)
        return True

    async def _answer(self, request: Request) -> str | None:
        if request.method == blade.CONNECT:
            if self.session is not None:
                raise ProtocolError("already connected", field="method")
            session, result = await self.server._connect(request.params, self)
            self.session = session
            return self.peer.respond(request, result)
        if self.session is None:
            raise AuthenticationError("blade.connect must come first")
        result = await self.server._request(self.session, request)
        return self.peer.respond(request, result)

    def _send_error(self, request: Request, exc: RelayError) -> None:
        code = exc.code if isinstance(exc.code, int) else ErrorCode.SERVER_ERROR
        reply = self.peer.respond_error(request, int(code), str(exc))
        if reply is not None:
            self.send(reply)

    def _take_token(self) -> bool:
        now = asyncio.get_running_loop().time()
        rate = self.server.max_request_rate
        self._tokens = min(
            float(self.server.max_request_burst), self._tokens + (now - self._tokens_at) * rate
        )
        self._tokens_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    async def _ping(self) -> None:
        loop = asyncio.get_running_loop()
        last: str | None = None
        assert self.server.ping_interval is not None
        while True:
            await asyncio.sleep(self.server.ping_interval)
            if last is not None:
                self.peer.forget(last)  # v2 SDKs never answer a server ping (§3.3)
            last, text = self.peer.request(blade.PING, {"timestamp": loop.time()})
            self.send(text)
