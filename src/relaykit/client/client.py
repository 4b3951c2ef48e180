"""The RELAY v2 client: one WebSocket, the blade handshake, requests with timeouts, reconnects.

Fixes the v2 SDK's connection defects (spec §8.2): every request has a timeout; pending
requests fail when the socket drops instead of hanging; the server's ``blade.ping`` is
answered; a malformed or stray frame is logged, never fatal; the session id is sent on
reconnect.
"""

from __future__ import annotations

__all__ = ["Client"]

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from .._version import __version__
from ..errors import (
    AuthenticationError,
    CommandError,
    ErrorCode,
    RelayConnectionError,
    RelayError,
    RelayTimeoutError,
)
from ..protocol import Malformed, Peer, ReplyReceived, RequestReceived, StrayReply, blade
from .call import Calling
from .wire import RelayConnection, send_text

log = logging.getLogger("relaykit.client")

DEFAULT_HOST = "relay.signalwire.com"
DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_PING_INTERVAL = 10.0
DEFAULT_MAX_BACKOFF = 10.0
DEFAULT_RESUME_TIMEOUT = 30.0


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _url_for(host: str) -> str:
    return host if host.startswith(("ws://", "wss://")) else f"wss://{host}"


class Client:
    """Connects to a RELAY server and keeps the connection (and its contexts) alive.

    Args:
        project: the project id sent in ``blade.connect``.
        token: the project's token sent in ``blade.connect``.
        host: ``ws://…``/``wss://…`` URL, or a bare host (``wss://`` is added), as in v2.
        request_timeout: seconds to wait for any reply.
        ping_interval: seconds between keepalive pings.
        reconnect: reconnect with backoff after the socket drops.
        max_backoff: longest wait, in seconds, between two reconnection attempts.
        resume_timeout: seconds the calls in progress wait for the connection to come back with
            the same session (the server keeps it for its ``resume_grace``); after that, or if
            the server starts a new session, every running action completes unsuccessfully.
    """

    def __init__(
        self,
        project: str,
        token: str,
        host: str = DEFAULT_HOST,
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        reconnect: bool = True,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        resume_timeout: float = DEFAULT_RESUME_TIMEOUT,
    ) -> None:
        self.project = project
        self.token = token
        self.host = host
        self.url = _url_for(host)
        self.request_timeout = request_timeout
        self.ping_interval = ping_interval
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.resume_timeout = resume_timeout
        self._resume_timer: asyncio.TimerHandle | None = None
        self.session_id: str | None = None
        self.signature: str | None = None
        self.protocol: str | None = None
        self.contexts: set[str] = set()
        self.calling = Calling(self)
        self._ws: ClientConnection | None = None
        self._peer = Peer()
        self._replies: dict[str | int, asyncio.Future[dict[str, Any]]] = {}
        self._ready = asyncio.Event()
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ready_callbacks: list[Callable[[Client], Any]] = []
        self._runner: asyncio.Task[None] | None = None
        self._first_attempt: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # while connecting or connected

    @property
    def connected(self) -> bool:
        """The handshake is complete and the connection is up."""
        return self._ready.is_set()

    def on_ready(self, callback: Callable[[Client], Any]) -> None:
        """Run ``callback(client)`` after every successful handshake (reconnects included)."""
        self._ready_callbacks.append(callback)

    def on(self, event: str, callback: Callable[[Client], Any]) -> Client:
        """v2 spelling of :meth:`on_ready`: ``client.on("ready", cb)``."""
        if event != "ready":
            raise ValueError(f"unsupported client event {event!r}; relaykit offers 'ready'")
        self.on_ready(callback)
        return self

    # -- connection lifecycle -----------------------------------------------------------------
    async def connect(self, timeout: float | None = None) -> None:
        """Connect and complete the handshake; keep reconnecting in the background.

        Raises AuthenticationError if the credentials are refused, RelayConnectionError if the
        first attempt cannot reach the server.
        """
        if self._runner is None:
            self._closing = False
            self._first_attempt = asyncio.get_running_loop().create_future()
            self._runner = asyncio.create_task(self._run(), name="relaykit-client")
        assert self._first_attempt is not None
        await asyncio.wait_for(asyncio.shield(self._first_attempt), timeout or self.request_timeout)

    async def disconnect(self) -> None:
        """Close for good; idempotent."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        for task in list(self._tasks):
            task.cancel()
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        self.calling.connection_lost()

    async def wait_closed(self) -> None:
        """Wait until the client stops for good (after ``disconnect()`` or a refused login)."""
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._runner)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()  # (get_running_loop() is a getpid system call)
        try:
            await self._connections()
        finally:
            self._loop = None

    async def _connections(self) -> None:
        backoff = 0.5
        while not self._closing:
            try:
                async with connect(
                    self.url,
                    max_size=1 << 22,
                    compression=None,
                    open_timeout=self.request_timeout,
                    create_connection=RelayConnection,
                ) as ws:
                    self._ws = ws
                    if isinstance(ws, RelayConnection):
                        ws.deliver_to(self._on_frame)
                    reader = asyncio.create_task(self._read(ws))
                    try:
                        await self._handshake()
                        backoff = 0.5
                        self._settle_first(None)
                        pinger = asyncio.create_task(self._keepalive(ws))
                        try:
                            await reader
                        finally:
                            pinger.cancel()
                    finally:
                        reader.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await reader
            except AuthenticationError as exc:
                # Refused credentials do not improve by retrying (v2 retried every 5 s forever).
                log.error("! %s", exc)
                self._settle_first(exc)
                self._closing = True
            except (OSError, websockets.exceptions.WebSocketException, RelayError) as exc:
                log.warning("! connection to %s failed: %s", self.url, exc)
                self._settle_first(RelayConnectionError(f"cannot connect to {self.url}: {exc}"))
            finally:
                self._ws = None
                self._lost()
            if self._closing or not self.reconnect:
                return
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self.max_backoff)

    def _settle_first(self, exc: BaseException | None) -> None:
        first = self._first_attempt
        if first is not None and not first.done():
            if exc is None:
                first.set_result(None)
            else:
                first.set_exception(exc)

    def _lost(self) -> None:
        self._ready.clear()
        self.contexts.clear()
        error = RelayConnectionError("connection to the RELAY server lost")
        for future in self._replies.values():
            if not future.done():
                future.set_exception(error)
        self._replies.clear()
        self._peer = Peer()
        if self._closing or self.resume_timeout <= 0:
            self.calling.connection_lost()
        elif self._resume_timer is None:
            # Calls survive a short drop: the server keeps the session for its grace window.
            loop = asyncio.get_running_loop()
            self._resume_timer = loop.call_later(self.resume_timeout, self._give_up_resume)

    def _give_up_resume(self) -> None:
        self._resume_timer = None
        if not self.connected:
            self.calling.connection_lost()

    async def _handshake(self) -> None:
        result = await self.request(
            blade.CONNECT,
            blade.connect_params(
                self.project, self.token, agent=f"relaykit/{__version__}", sessionid=self.session_id
            ),
            ready=False,
        )
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        if not result.get("session_restored"):
            self.calling.connection_lost()  # a new session: the old calls are gone
        self.session_id = result.get("sessionid")
        auth = result.get("authorization")
        self.signature = auth.get("signature") if isinstance(auth, dict) else None
        setup = await self.request(
            blade.EXECUTE,
            blade.execute_params(blade.SETUP_PROTOCOL, "setup", {}),
            ready=False,
        )
        inner = setup.get("result")
        protocol = inner.get("protocol") if isinstance(inner, dict) else None
        if not isinstance(protocol, str):
            raise RelayConnectionError("setup returned no protocol")
        self.protocol = protocol
        await self.request(
            blade.SUBSCRIPTION,
            {"command": "add", "protocol": protocol, "channels": [blade.NOTIFICATIONS]},
            ready=False,
        )
        self._ready.set()
        for callback in list(self._ready_callbacks):
            outcome = callback(self)
            if asyncio.iscoroutine(outcome):
                await outcome

    async def _keepalive(self, ws: ClientConnection) -> None:
        while True:
            try:
                await self.request(blade.PING, {}, timeout=self.request_timeout)
            except RelayTimeoutError:
                log.warning("! keepalive ping unanswered; reconnecting")
                await ws.close()
                return
            except RelayError:
                return
            await asyncio.sleep(self.ping_interval)

    # -- frames in ----------------------------------------------------------------------------
    async def _read(self, ws: ClientConnection) -> None:
        async for frame in ws:
            try:
                self._on_frame(frame)
            except Exception:
                log.exception("! failed to handle a frame; ignoring it")

    def _on_frame(self, frame: str | bytes) -> None:
        incoming = self._peer.receive(frame)
        if isinstance(incoming, ReplyReceived):
            future = self._replies.pop(incoming.id, None)
            if future is None or future.done():
                return
            if incoming.error is not None:
                err = incoming.error
                exc: RelayError = (
                    AuthenticationError(err.message)
                    if incoming.method == blade.CONNECT
                    else CommandError(err.message, code=err.code)
                )
                future.set_exception(exc)
            else:
                future.set_result(incoming.result or {})
        elif isinstance(incoming, RequestReceived):
            self._on_request(incoming.request.method, incoming.request.params, incoming)
        elif isinstance(incoming, StrayReply):
            log.debug("! reply to unknown request %r ignored", incoming.id)
        elif isinstance(incoming, Malformed):
            log.warning("! malformed frame from server ignored: %s", incoming.error)

    def _on_request(self, method: str, params: dict[str, Any], incoming: RequestReceived) -> None:
        request = incoming.request
        if method == blade.BROADCAST:
            self._peer.settle(request)  # v2 clients never reply to a broadcast (§3.1)
            try:
                event = blade.parse_broadcast(params)
            except RelayError as exc:
                log.warning("! malformed broadcast ignored: %s", exc)
                return
            if event.protocol != self.protocol:
                log.debug("! broadcast for another protocol dropped")
                return
            if event.event == blade.RELAY_EVENTS:
                self.calling.dispatch(event.event_type, event.params)
        elif method == blade.PING:
            timestamp = params.get("timestamp")
            reply = self._peer.respond(request, {"timestamp": timestamp} if timestamp else {})
            self._send_nowait(reply)
        elif method == blade.DISCONNECT:
            self._send_nowait(self._peer.respond(request, {}))
            self._ready.clear()
        else:
            self._send_nowait(
                self._peer.respond_error(
                    request, ErrorCode.METHOD_NOT_FOUND, f"unknown method {method!r}"
                )
            )

    def _send_nowait(self, text: str | None) -> None:
        if text is None or self._ws is None:
            return
        if not send_text(self._ws, text):
            self._spawn(self._ws.send(text))

    # -- frames out ---------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        params: dict[str, Any],
        *,
        timeout: float | None = None,
        ready: bool = True,
    ) -> dict[str, Any]:
        """Send one request and return its ``result``; raises on error, timeout or drop."""
        if ready and not self._ready.is_set():
            await self._wait_ready(timeout)
        ws = self._ws
        if ws is None:
            raise RelayConnectionError("not connected to the RELAY server")
        request_id, text = self._peer.request(method, params)
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._replies[request_id] = future
        # one timer per request rather than wait_for's task around the future
        timer = loop.call_later(timeout or self.request_timeout, _expire, future)
        try:
            if not send_text(ws, text):
                await ws.send(text)
            return await future
        except TimeoutError:
            raise RelayTimeoutError(
                f"{method} got no reply within {timeout or self.request_timeout:g}s"
            ) from None
        except websockets.exceptions.ConnectionClosed as exc:
            raise RelayConnectionError(f"connection closed: {exc}") from None
        finally:
            timer.cancel()
            self._replies.pop(request_id, None)
            self._peer.forget(request_id)
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: a drop may have failed it while we sent

    async def _wait_ready(self, timeout: float | None) -> None:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout or self.request_timeout)
        except TimeoutError:
            raise RelayConnectionError("not connected to the RELAY server") from None

    async def execute(
        self, method: str, params: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Run a RELAY command through ``blade.execute``; returns the inner result (§1.4)."""
        if not self._ready.is_set():
            await self._wait_ready(timeout)
        assert self.protocol is not None
        outer = await self.request(
            blade.EXECUTE, blade.execute_params(self.protocol, method, params), timeout=timeout
        )
        return blade.unwrap_execute_result(outer)

    async def receive(self, contexts: list[str]) -> None:
        """Register ``contexts`` for inbound calls (``signalwire.receive``); only new ones sent."""
        new = [c for c in contexts if c not in self.contexts]
        if not new:
            return
        await self.execute("signalwire.receive", {"contexts": new})
        self.contexts.update(new)

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await awaitable
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("! background task failed")

        coro: Coroutine[Any, Any, None] = run()
        task = (self._loop or asyncio.get_running_loop()).create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
