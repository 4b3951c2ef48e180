"""Routes one authenticated request: the blade methods, then ``calling.*`` by the method table.

This is where the call service's errors become RELAY results (404, 400, 429) inside a
successful ``blade.execute``, as the v2 SDKs expect.
"""

from __future__ import annotations

__all__ = ["Router"]

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..calls import CallService
from ..errors import LimitExceededError, NotFoundError, ProtocolError, UnknownMethodError
from ..protocol import blade
from ..protocol.jsonrpc import Request, bounded
from .handlers import METHODS, Handler
from .handlers.base import Context
from .sessions import ServerSession, SessionRegistry


class Router:
    """Answers the requests of logged-in sessions."""

    def __init__(
        self,
        calls: CallService,
        sessions: SessionRegistry,
        *,
        nodeid: str,
        methods: Mapping[str, Handler] = METHODS,
    ) -> None:
        self.calls = calls
        self.sessions = sessions
        self.nodeid = nodeid
        self.methods = dict(methods)
        # Cluster mode: runs a command on the node that owns its call (``params.node_id``);
        # None means "the call is here". Unset on a single node.
        self.remote: (
            Callable[[ServerSession, str, dict[str, Any]], Awaitable[dict[str, Any] | None]] | None
        ) = None

    async def request(self, session: ServerSession, request: Request) -> dict[str, Any]:
        """The ``result`` of ``request``; raises RelayError for JSON-RPC errors."""
        method = request.method
        if method == blade.PING:
            return _pong(request.params.get("timestamp"))
        if method == blade.SUBSCRIPTION:
            sub = blade.SubscriptionParams.parse(request.params)
            _check_protocol(session, sub.protocol, "params.protocol")
            session.subscribed = sub.command == "add"
            if session.subscribed:
                asyncio.get_running_loop().call_soon(session.flush)
            return {
                "protocol": sub.protocol,
                "command": sub.command,
                "subscribe_channels": list(sub.channels),
            }
        if method != blade.EXECUTE:
            raise UnknownMethodError(bounded(method, 100))  # quoted in the reply: keep it short
        execute = blade.ExecuteParams.parse(request.params)
        if execute.method == "setup":
            if execute.protocol != blade.SETUP_PROTOCOL:
                raise ProtocolError(
                    'setup must name protocol "signalwire"', field="params.protocol"
                )
            return self._result({"protocol": session.protocol or session.new_protocol()})
        _check_protocol(session, execute.protocol, "params.protocol")
        if self.remote is not None:
            inner = await self.remote(session, execute.method, execute.params)
            if inner is not None:
                return self._result(inner)
        return self._result(await self.execute(session, execute.method, execute.params))

    async def execute(
        self, session: ServerSession, method: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Run a ``calling.*`` command here; its RELAY result (errors as 404, 400, 429)."""
        handler = self.methods.get(method)
        if handler is None:
            raise UnknownMethodError(bounded(method, 100))
        context = Context(session, self.calls, self.sessions)
        try:
            return await handler(context, params)
        except NotFoundError as exc:
            return blade.relay_result(404, bounded(exc.message))
        except ProtocolError as exc:
            return blade.relay_result(400, bounded(str(exc)))
        except LimitExceededError as exc:
            return blade.relay_result(429, bounded(str(exc)))

    def _result(self, inner: dict[str, Any]) -> dict[str, Any]:
        return blade.execute_result(
            inner, requester_nodeid=self.nodeid, responder_nodeid=self.nodeid
        )


def _check_protocol(session: ServerSession, protocol: str, field: str) -> None:
    if session.protocol is None:
        raise ProtocolError("run setup first", field=field)
    if protocol != session.protocol:
        raise ProtocolError("is not this session's protocol", field=field)


def _pong(timestamp: object) -> dict[str, Any]:
    """``blade.ping``'s result: its timestamp echoed, if it is one (a finite number)."""
    if timestamp is None:
        return {}
    if (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int | float)
        or not math.isfinite(timestamp)
        or abs(timestamp) >= 1e18
    ):
        raise ProtocolError("must be a number (seconds)", field="params.timestamp")
    return {"timestamp": timestamp}
