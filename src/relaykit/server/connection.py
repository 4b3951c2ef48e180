"""One client WebSocket: frames in through a sans-I/O Peer, frames out through a bounded outbox.

Logging in is the session registry's job and answering requests the router's; this adapter
only reads, dispatches, answers exactly once per request, writes in order, and always cleans up.
Until it logs in, a connection is a visitor of :class:`~relaykit.server.auth.Logins`: it must
send ``blade.connect`` within the login timeout, its frames may be at most
:data:`LOGIN_FRAME_BYTES`, what waits for it at most :data:`LOGIN_OUTBOX_BYTES`, and its first
invalid frame or refused request (answered) ends it.
"""

from __future__ import annotations

__all__ = ["LOGIN_FRAME_BYTES", "LOGIN_OUTBOX_BYTES", "Connection", "ConnectionLimits"]

import asyncio
import contextlib
import logging
from collections.abc import Callable
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
from .auth import TryLater, Visitor
from .outbox import Outbox, websocket_writer
from .router import Router
from .sessions import ServerSession, SessionRegistry, signature

log = logging.getLogger("relaykit.server")

# Frames, or characters, handled back to back before letting other connections run.
_YIELD_EVERY = 32
_YIELD_EVERY_BYTES = 64 * 1024
LOGIN_FRAME_BYTES = 64 * 1024  # largest frame before logging in (blade.connect is small)
LOGIN_OUTBOX_BYTES = 64 * 1024  # what may wait for a client that has not logged in

# Close codes: 1008 policy violation, 1013 try again later (RFC 6455 §7.4.1, IANA registry).
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Per-connection limits (see :class:`~relaykit.server.app.RelayServer`)."""

    ping_interval: float | None = 30.0
    max_request_rate: float = 5000.0
    max_request_burst: int = 10_000
    max_outbox: int = 10_000
    max_outbox_bytes: int = 16 << 20
    max_message_size: int = 1 << 20


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
            websocket_writer(ws),
            max_frames=limits.max_outbox,
            max_bytes=min(limits.max_outbox_bytes, LOGIN_OUTBOX_BYTES),
            on_overflow=self._too_slow,
        )
        self._loop = asyncio.get_running_loop()
        self._tokens = float(limits.max_request_burst)
        self._tokens_at = self._loop.time()
        self._visitor: Visitor | None = None
        self._closing: asyncio.Task[None] | None = None  # a close started from outside the reader
        self._close_with: tuple[int, str] = (1000, "")  # how the reader closes, when it stops
        self._pinger: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None  # to log in

    # -- out ------------------------------------------------------------------------------------
    def send(self, text: str) -> None:
        """Queue a frame; a client that stops reading is disconnected, not buffered for ever."""
        self.outbox.send(text)

    def send_event(self, text: str, written: Callable[[], None]) -> bool:
        """An event of the attached session (see :class:`~relaykit.server.sessions.SessionLink`)."""
        return self.outbox.send(text, written)

    def taken_over(self) -> None:
        """The session resumed on another connection: this one is stale; close it."""
        log.info("= %s: session taken over by a new connection; closing this one", self.address)
        self.session = None
        self.outbox.abort()  # its events go out on the new connection instead
        self._close_soon(POLICY_VIOLATION, "session resumed on another connection")

    def _too_slow(self) -> None:
        log.warning("! %s is not reading its events; closing", self.address)
        self._close_soon(POLICY_VIOLATION, "client too slow: outbox full")

    def _close_soon(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self.ws.close(code, reason))

    async def close(self, reason: str = "server shutting down") -> None:
        """Tell the client (``blade.disconnect``), flush what is queued, then close."""
        if not self.outbox.closed:
            _id, text = self.peer.request(blade.DISCONNECT, {}, expect_reply=False)
            self.outbox.send(text)
        await self.outbox.drain(3)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(1001, reason), 5)

    # -- in -------------------------------------------------------------------------------------
    async def run(self) -> None:
        logins = self.sessions.logins
        try:
            self._visitor = logins.admit(self.address, self._evicted)
        except TryLater as exc:
            log.info("! %s refused: %s", self.address, exc)
            self.outbox.abort()
            with contextlib.suppress(Exception):
                await self.ws.close(TRY_AGAIN_LATER, str(exc))
            return
        self.ws.protocol.max_message_size = min(self.limits.max_message_size, LOGIN_FRAME_BYTES)
        self._deadline = asyncio.get_running_loop().call_later(logins.timeout, self._login_expired)
        handled = size = 0
        try:
            async for frame in self.ws:
                if not await self._handle(frame):
                    break
                handled += 1
                size += len(frame)
                if handled >= _YIELD_EVERY or size >= _YIELD_EVERY_BYTES:
                    handled = size = 0
                    await asyncio.sleep(0)
        except Exception:
            log.debug("! connection from %s closed abruptly", self.address, exc_info=True)
        finally:
            self._deadline.cancel()
            self._visitor.leave()
            if self._pinger is not None:
                self._pinger.cancel()
            if self.session is not None:
                self.sessions.detach(self.session, self)
            await self.outbox.drain(5)
            if self._closing is not None:
                with contextlib.suppress(Exception):
                    await self._closing
            else:
                await self.ws.close(*self._close_with)

    def _evicted(self, reason: str) -> None:
        log.info("! %s closed before logging in: %s", self.address, reason)
        self._close_soon(TRY_AGAIN_LATER, reason)

    def _login_expired(self) -> None:
        visitor = self._visitor
        if self.session is None and visitor is not None and not visitor.attempting:
            seconds = self.sessions.logins.timeout
            self._close_soon(POLICY_VIOLATION, f"log in (blade.connect) within {seconds:g} s")

    def _logged_in(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self.ws.protocol.max_message_size = self.limits.max_message_size
        self.outbox.max_bytes = self.limits.max_outbox_bytes
        if self.limits.ping_interval:
            self._pinger = asyncio.get_running_loop().create_task(self._ping())

    async def _handle(self, frame: str | bytes) -> bool:
        """Handle one frame; False ends the connection."""
        if self._closing is not None:
            return False  # taken over, evicted or too slow: nothing more is read
        incoming = self.peer.receive(frame)
        if isinstance(incoming, Malformed):
            log.info("! malformed frame from %s: %s", self.address, incoming.error)
            if incoming.reply is not None:
                self.send(incoming.reply)
            return self.session is not None  # before logging in, one is enough
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
        except TryLater as exc:  # no reply: the client should retry, not give up
            log.info("! %s refused: %s", self.address, exc)
            self._close_with = (TRY_AGAIN_LATER, str(exc))
            return False
        except RelayError as exc:
            self._send_error(request, exc)
            return self.session is not None  # before logging in, a refusal ends the connection
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
            assert self._visitor is not None
            session, restored = await self.sessions.connect(connect, self._visitor, self)
            self.session = session
            self._logged_in()
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
        now = self._loop.time()  # (asyncio.get_running_loop() is a getpid system call)
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
