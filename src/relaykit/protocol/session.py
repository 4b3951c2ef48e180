"""A sans-I/O JSON-RPC peer: text in, typed events out; requests out, replies matched by id.

Both the server connection and the SDK client wrap one :class:`Peer`. It enforces the two rules
the v2 SDK depends on (§1.2): exactly one response per request id, and every error carries a
message.
"""

from __future__ import annotations

__all__ = ["Malformed", "Peer", "ReplyReceived", "RequestReceived", "StrayReply"]

import json
from dataclasses import dataclass
from typing import Any

from ..errors import ErrorCode, ProtocolError
from .jsonrpc import (
    ErrorResponse,
    Request,
    Response,
    new_id,
    parse_message,
    request_text,
    serialize,
    valid_id,
)


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A valid request from the other side, to be answered with ``respond``."""

    request: Request


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    """A reply to one of our requests; exactly one of ``result``/``error`` is set."""

    id: str | int
    method: str
    result: dict[str, Any] | None
    error: ErrorResponse | None


@dataclass(frozen=True, slots=True)
class StrayReply:
    """A reply whose id we are not waiting for (late, duplicate, invented or unreadable: None)."""

    id: str | int | None


@dataclass(frozen=True, slots=True)
class Malformed:
    """The frame was not a valid message. ``reply`` is the error to send back, if any."""

    error: ProtocolError
    reply: str | None


Incoming = RequestReceived | ReplyReceived | StrayReply | Malformed


class Peer:
    """One side of a JSON-RPC connection: parses frames, builds requests and replies."""

    def __init__(self) -> None:
        self._pending: dict[str | int, str] = {}  # our request id -> method
        self._unanswered: set[str | int] = set()  # their request ids we still owe a reply

    @property
    def pending(self) -> dict[str | int, str]:
        return self._pending

    def receive(self, data: str | bytes) -> Incoming:
        try:
            message = parse_message(data)
        except ProtocolError as exc:
            return Malformed(exc, self._error_reply(data, exc))
        if isinstance(message, Request):
            if message.id is not None:
                if message.id in self._unanswered:
                    duplicate = ProtocolError(
                        "duplicate request id while the first is still in progress",
                        field="id",
                        code=ErrorCode.INVALID_REQUEST,
                    )
                    # The reply goes to the first request; this one gets none of its own.
                    return Malformed(duplicate, None)
                self._unanswered.add(message.id)
            return RequestReceived(message)
        reply_id = message.id
        method = None if reply_id is None else self._pending.pop(reply_id, None)
        if reply_id is None or method is None:
            return StrayReply(reply_id)
        if isinstance(message, Response):
            return ReplyReceived(reply_id, method, message.result, None)
        return ReplyReceived(reply_id, method, None, message)

    def request(
        self, method: str, params: dict[str, Any], *, expect_reply: bool = True
    ) -> tuple[str, str]:
        """Build a request; returns ``(id, text)``. Its reply comes back as ReplyReceived."""
        request_id = new_id()
        if expect_reply:
            self._pending[request_id] = method
        return request_id, request_text(method, params, request_id)

    def forget(self, request_id: str | int) -> None:
        """Stop waiting for a reply (timed out or cancelled); a late one becomes a StrayReply."""
        self._pending.pop(request_id, None)

    def respond(self, request: Request, result: dict[str, Any]) -> str | None:
        """The one reply to ``request``; None if it was already answered or needs none."""
        if not self._claim(request):
            return None
        return serialize(Response(request.id, result))  # type: ignore[arg-type]

    def settle(self, request: Request) -> None:
        """Count ``request`` as answered without a reply (a broadcast, which gets none)."""
        self._claim(request)

    def respond_error(
        self, request: Request, code: int, message: str, data: dict[str, Any] | None = None
    ) -> str | None:
        if not self._claim(request):
            return None
        return serialize(ErrorResponse(request.id, int(code), message or "error", data or {}))

    def _claim(self, request: Request) -> bool:
        if request.id is None or request.id not in self._unanswered:
            return False
        self._unanswered.discard(request.id)
        return True

    def _error_reply(self, data: str | bytes, exc: ProtocolError) -> str | None:
        """The error reply for a frame that failed to parse, or None when none is due.

        A broken response gets no reply; a request is answered on its own id when that id is
        readable and not already in progress, else on id null (JSON-RPC 2.0 §5).
        """
        obj: Any = None
        if isinstance(data, str):
            try:
                obj = json.loads(data)
            except (ValueError, RecursionError):
                obj = None
        reply_id: str | int | None = None
        if isinstance(obj, dict):
            if "method" not in obj:
                return None
            value = obj.get("id")
            if valid_id(value):  # an over-long id is not echoed: the reply goes to id null
                if value in self._unanswered:
                    return None
                reply_id = value
        return serialize(ErrorResponse(reply_id, int(exc.code), str(exc)))
