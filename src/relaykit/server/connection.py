"""One client WebSocket: frames in through a sans-I/O Peer, frames out through a bounded outbox.

Logging in is the session registry's job and answering requests the router's; this adapter
only reads, dispatches, answers exactly once per request, writes in order, and always cleans up.
"""

from __future__ import annotations

__all__ = ["Connection", "ConnectionLimits"]

import asyncio
import contextlib
import logging
from dataclasses import dataclass

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
from .outbox import Outbox, websocket_writer
from .router import Router
from .sessions import ServerSession, SessionRegistry, signature

log = logging.getLogger("relaykit.server")

_YIELD_EVERY = 32  # frames handled back to back before letting other connections run


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Per-connection limits (see :class:`~relaykit.server.app.RelayServer`)."""

    ping_interval: float | None = 30.0
    max_request_rate: float = 5000.0
    max_request_burst: int = 10_000
    max_outbox: int = 10_000


class Connection:
    """One RELAY client socket, from the first frame to the close."""

    def __init__(
        self,
        ws: ServerConnection,
        sessions: SessionRegistry,
        router: Router,
        limits: ConnectionLimits,
    ) -> None:
        self.ws = ws
        self.sessions = sessions
        self.router = router
        self.limits = limits
        self.peer = Peer()
        self.session: ServerSession | None = None
        self.address = str(ws.remote_address[0]) if ws.remote_address else "unknown"
        self.outbox = Outbox(
            websocket_writer(ws), max_frames=limits.max_outbox, on_overflow=self._too_slow
        )
        self._tokens = float(limits.max_request_burst)
        self._tokens_at = asyncio.get_running_loop().time()

    # -- out ------------------------------------------------------------------------------------
    def send(self, text: str) -> None:
        """Queue a frame; a client that stops reading is disconnected, not buffered for ever."""
        self.outbox.send(text)

    def _too_slow(self) -> None:
        log.warning("! %s is not reading its events; closing", self.address)
        asyncio.get_running_loop().create_task(
            self.ws.close(1008, "client too slow: event backlog full")
        )

    async def close(self, reason: str = "server shutting down") -> None:
        """Tell the client (``blade.disconnect``), flush what is queued, then close."""
        if not self.outbox.closed:
            _id, text = self.peer.request(blade.DISCONNECT, {}, expect_reply=False)
            self.outbox.send(text)
            self.outbox.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(1001, reason), 5)

    # -- in -------------------------------------------------------------------------------------
    async def run(self) -> None:
        pinger = asyncio.create_task(self._ping()) if self.limits.ping_interval else None
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
                self.sessions.detach(self.session, self.send)
            await self.outbox.drain(5)
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
                    f"too many requests: at most {self.limits.max_request_rate:g} per second"
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
            connect = blade.ConnectParams.parse(request.params)
            session, restored = await self.sessions.connect(connect, self.address, self.send)
            self.session = session
            result = blade.connect_result(
                sessionid=session.sessionid,
                nodeid=self.sessions.nodeid,
                project=session.project,
                signature=signature(session.project),
                restored=restored,
            )
            return self.peer.respond(request, result)
        if self.session is None:
            raise AuthenticationError("blade.connect must come first")
        result = await self.router.request(self.session, request)
        return self.peer.respond(request, result)

    def _send_error(self, request: Request, exc: RelayError) -> None:
        code = exc.code if isinstance(exc.code, int) else ErrorCode.SERVER_ERROR
        reply = self.peer.respond_error(request, int(code), str(exc))
        if reply is not None:
            self.send(reply)

    def _take_token(self) -> bool:
        now = asyncio.get_running_loop().time()
        rate = self.limits.max_request_rate
        self._tokens = min(
            float(self.limits.max_request_burst), self._tokens + (now - self._tokens_at) * rate
        )
        self._tokens_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    async def _ping(self) -> None:
        loop = asyncio.get_running_loop()
        last: str | None = None
        assert self.limits.ping_interval is not None
        while True:
            await asyncio.sleep(self.limits.ping_interval)
            if last is not None:
                self.peer.forget(last)  # v2 SDKs never answer a server ping (§3.3)
            last, text = self.peer.request(blade.PING, {"timestamp": loop.time()})
            self.send(text)
