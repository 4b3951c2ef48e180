"""``Consumer``: the v2 SDK's way to write an IVR (spec §7.1), on asyncio."""

from __future__ import annotations

__all__ = ["Consumer"]

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .call import Call
from .client import (
    DEFAULT_HOST,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_PING_INTERVAL,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_RESUME_TIMEOUT,
    Client,
)

log = logging.getLogger("relaykit.client")


class Consumer:
    """Subclass it, set ``project``, ``token`` and ``contexts`` (or pass them), override hooks.

    Hooks: ``setup()`` and ``teardown()`` (plain methods), ``ready()`` and
    ``on_incoming_call(call)`` (plain or ``async``). ``run()`` blocks until stopped;
    ``await serve()`` does the same inside a running event loop; ``await stop()`` ends it.
    ``url`` is accepted as another name for ``host``; the other options are the
    :class:`Client`'s.
    """

    project: str | None = None
    token: str | None = None
    contexts: Sequence[str] = ()
    host: str = DEFAULT_HOST

    def __init__(
        self,
        *,
        project: str | None = None,
        token: str | None = None,
        host: str | None = None,
        url: str | None = None,
        contexts: Sequence[str] | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        reconnect: bool = True,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        resume_timeout: float = DEFAULT_RESUME_TIMEOUT,
    ) -> None:
        if project is not None:
            self.project = project
        if token is not None:
            self.token = token
        if host is not None:
            self.host = host
        elif url is not None:
            self.host = url
        if contexts is not None:
            self.contexts = list(contexts)
        self.client: Client | None = None
        self.request_timeout = request_timeout
        self.ping_interval = ping_interval
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.resume_timeout = resume_timeout
        self._stopped: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- hooks --------------------------------------------------------------------------------
    def setup(self) -> None:
        """Called first by ``run()``/``serve()``; set attributes here."""

    def ready(self) -> Awaitable[None] | None:
        """Called after every (re)connection, once the contexts are registered."""

    def on_incoming_call(self, call: Call) -> Awaitable[None] | None:
        """Called for each inbound call on one of ``contexts``."""

    def teardown(self) -> None:
        """Called last, after the connection is closed."""

    # -- running ------------------------------------------------------------------------------
    def run(self) -> None:
        """Connect and serve until stopped (blocking, like the v2 SDK)."""
        asyncio.run(self.serve())

    async def serve(self) -> None:
        """Connect and serve until ``stop()``, inside the running event loop."""
        self.setup()
        if not self.project or not self.token or not self.contexts:
            raise ValueError("project, token and contexts are required")
        if isinstance(self.contexts, str):
            raise TypeError("contexts must be a list of context names, not a string")
        self._stopped = asyncio.Event()
        client = Client(
            self.project,
            self.token,
            self.host,
            request_timeout=self.request_timeout,
            ping_interval=self.ping_interval,
            reconnect=self.reconnect,
            max_backoff=self.max_backoff,
            resume_timeout=self.resume_timeout,
        )
        self.client = client
        client.calling.on_incoming = self._incoming
        client.on_ready(self._on_ready)
        try:
            await client.connect()
            await self._stopped.wait()
        finally:
            await client.disconnect()
            for task in list(self._tasks):
                task.cancel()
            self.teardown()

    async def stop(self) -> None:
        """Make ``serve()``/``run()`` disconnect and return."""
        if self._stopped is not None:
            self._stopped.set()

    async def _on_ready(self, client: Client) -> None:
        await client.receive(list(self.contexts))
        self._invoke(self.ready)

    def _incoming(self, call: Call) -> None:
        self._invoke(self.on_incoming_call, call)

    def _invoke(self, hook: Callable[..., object], *args: Any) -> None:
        try:
            outcome = hook(*args)
        except Exception:
            log.exception("! %s failed", getattr(hook, "__name__", hook))
            return
        if inspect.isawaitable(outcome):
            task = asyncio.ensure_future(outcome)
            self._tasks.add(task)
            task.add_done_callback(self._hook_done)

    def _hook_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("! consumer hook failed", exc_info=task.exception())
