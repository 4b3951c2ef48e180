"""Plain HTTP on the server's WebSocket port: GET requests routed by path prefix.

The websockets library reads every request first; a request that is not a WebSocket upgrade is
answered here (recordings, pages) without another web framework. Each route handles one path
prefix; anything else gets 404, and only GET and HEAD are served (405 otherwise).
"""

from __future__ import annotations

__all__ = ["HttpReply", "HttpRoutes"]

import http
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

log = logging.getLogger("relaykit.server")


@dataclass(frozen=True, slots=True)
class HttpReply:
    """What a route answers: a status, a body and its content type, and extra headers."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, status: int, text: str) -> HttpReply:
        return cls(status, text.encode())


HttpHandler = Callable[[Request], Awaitable[HttpReply]]


class HttpRoutes:
    """Path prefix → handler; :meth:`process_request` is given to ``websockets.serve``."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, HttpHandler]] = []

    def add(self, prefix: str, handler: HttpHandler) -> None:
        """Serve ``prefix`` (``/recordings/``) and everything below it with ``handler``."""
        self._routes.append((prefix, handler))
        self._routes.sort(key=lambda route: -len(route[0]))  # the longest prefix wins

    def handler_for(self, path: str) -> HttpHandler | None:
        for prefix, handler in self._routes:
            if path == prefix.rstrip("/") or path.startswith(prefix):
                return handler
        return None

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None  # a WebSocket: the RELAY handshake goes on
        path = request.path.split("?", 1)[0]
        handler = self.handler_for(path)
        if handler is None:
            reply = HttpReply.text(404, "not found")
        elif request.method not in ("GET", "HEAD"):
            reply = HttpReply(405, b"method not allowed", headers={"Allow": "GET, HEAD"})
        else:
            try:
                reply = await handler(request)
            except Exception:
                log.exception("! HTTP %s failed", path)
                reply = HttpReply.text(500, "internal server error; see the server log")
        return _response(reply, head=request.method == "HEAD")


def _response(reply: HttpReply, *, head: bool) -> Response:
    headers = Headers()
    headers["Content-Type"] = reply.content_type
    headers["Content-Length"] = str(len(reply.body))
    headers["Cache-Control"] = "no-store"
    headers["X-Content-Type-Options"] = "nosniff"
    for name, value in reply.headers.items():
        headers[name] = value
    phrase = http.HTTPStatus(reply.status).phrase
    return Response(reply.status, phrase, headers, b"" if head else reply.body)
