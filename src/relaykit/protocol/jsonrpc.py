"""JSON-RPC 2.0 envelope (relay-v2-prompt-protocol.md §1.2), sans-I/O.

``parse_message`` turns one WebSocket text frame into a :class:`Request`, :class:`Response` or
:class:`ErrorResponse`, or raises :class:`~relaykit.errors.ProtocolError` naming the bad field.
``serialize`` writes compact JSON, as the v2 SDK does.

The codec is orjson (many times faster than the standard library's ``json``), kept to
``json``'s output where it matters: a string with non-ASCII or DEL characters is written by
``json`` (escaped, as before), and so is anything orjson refuses; a frame orjson cannot parse is
parsed by ``json`` (which accepts lone surrogates…). What differs is the spelling of numbers
that ``json`` would write in exponent form (orjson writes ``0.00001`` and ``1e16`` where
``json`` writes ``1e-05`` and ``1e+16``: the same values), ``null`` for NaN and infinities
(which no JSON parser accepts), and integers past 64 bits, which orjson reads as floats.

What a peer sends comes back to it only in bounded form: request ids are at most
:data:`MAX_ID_LENGTH` characters (or a 64-bit integer), and an error message is cut to
:data:`MAX_ERROR_MESSAGE` characters by :func:`bounded`, so a reply never grows with its request.
NaN and infinities are not JSON (RFC 8259) and are refused like any other invalid JSON.
"""

from __future__ import annotations

__all__ = [
    "MAX_DEPTH",
    "MAX_ERROR_MESSAGE",
    "MAX_ID_LENGTH",
    "ErrorResponse",
    "Message",
    "Request",
    "Response",
    "bounded",
    "new_id",
    "parse_message",
    "request_text",
    "serialize",
    "valid_id",
]

import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import ErrorCode, ProtocolError

MAX_DEPTH = 32  # nesting deeper than this is refused before it reaches any handler
MAX_ID_LENGTH = 128  # characters of a string request id (integer ids: 64-bit)
MAX_ERROR_MESSAGE = 400  # characters of an error message, echoes of client input included
_INT64 = 1 << 63


def bounded(text: str, limit: int = MAX_ERROR_MESSAGE) -> str:
    """``text`` cut to about ``limit`` characters, keeping its start and end around a count.

    For messages that quote what a client sent: ``call 'aaaa…[899,830 characters]…aa' not found``.
    """
    if len(text) <= limit:
        return text
    tail = limit // 8
    head = limit - tail - 32
    return f"{text[:head]}…[{len(text) - head - tail:,} characters]…{text[-tail:]}"


_UUID4_KEEP = ~(0xF000 << 64) & ~(0xC000 << 48) & ((1 << 128) - 1)
_UUID4_SET = 4 << 76 | 0x8000 << 48


def new_id() -> str:
    """A request id: a random version-4 UUID (unique, not secret: no system call for it)."""
    h = f"{random.getrandbits(128) & _UUID4_KEEP | _UUID4_SET:032x}"  # version 4, variant 1
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True)
class Request:
    """A call from either side; ``id`` is None only for notifications (never used by RELAY)."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)
    id: str | int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": self.id, "method": self.method, "params": self.params}


@dataclass(frozen=True, slots=True)
class Response:
    """A successful reply: the ``result`` object for request ``id``."""

    id: str | int
    result: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": self.id, "result": self.result}


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """An ``error`` reply. ``id`` is None when the request's own id could not be read."""

    id: str | int | None
    code: int
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        # The v2 SDK reads error.message unconditionally (§1.2): it is always present.
        message = bounded(self.message)
        error: dict[str, Any] = {**self.data, "code": int(self.code), "message": message}
        return {"jsonrpc": "2.0", "id": self.id, "error": error}

    @classmethod
    def from_exception(cls, request_id: str | int | None, exc: ProtocolError) -> ErrorResponse:
        return cls(request_id, int(exc.code), str(exc))


Message = Request | Response | ErrorResponse


_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)


def dumps(value: Any) -> str:
    """Compact JSON, as ``json.dumps(value, separators=(",", ":"))`` writes it."""
    text = dumps_ascii(value)
    if text is None:  # json escapes non-ASCII and DEL as it always has, or says what is wrong
        return json.dumps(value, separators=(",", ":"))
    return text


def dumps_ascii(value: Any) -> str | None:
    """``dumps(value)`` when orjson writes it in plain ASCII, else None (``dumps`` then falls
    back to ``json``, whose numbers may be written differently: ``1e-07`` for ``1e-7``)."""
    try:
        data = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: json accepts it, or says why not
        return None
    if data.isascii() and b"\x7f" not in data:
        return data.decode("ascii")
    return None


def loads(data: str | bytes) -> Any:
    """``json.loads``, faster, refusing NaN and infinities. Raises ValueError or RecursionError."""
    try:
        return orjson.loads(data)  # refuses NaN, Infinity and numbers that overflow a double
    except orjson.JSONDecodeError:
        return json.loads(data, parse_constant=_no_constant, parse_float=_finite)


def serialize(message: Message) -> str:
    return dumps(message.to_json())


def request_text(method: str, params: dict[str, Any], request_id: str | int) -> str:
    """``serialize(Request(method, params, request_id))`` without the Request (hot paths)."""
    return dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


def _depth_ok(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def valid_id(value: Any) -> bool:
    """A request id we accept and echo: a short string or a 64-bit integer."""
    if isinstance(value, str):
        return len(value) <= MAX_ID_LENGTH
    return isinstance(value, int) and not isinstance(value, bool) and -_INT64 <= value < _INT64


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {bounded(text, 40)}")
    return value


def parse_message(data: str | bytes) -> Message:
    """Parse one frame. Raises ProtocolError (code PARSE_ERROR or INVALID_REQUEST)."""
    if isinstance(data, bytes):
        raise ProtocolError(
            "binary frames are not accepted; send JSON text", code=ErrorCode.INVALID_REQUEST
        )
    try:
        obj = loads(data)
    except (ValueError, RecursionError) as exc:  # ValueError: also over-long integers
        raise ProtocolError(f"invalid JSON: {exc}", code=ErrorCode.PARSE_ERROR) from None
    if not isinstance(obj, dict):
        raise ProtocolError("a message must be a JSON object", code=ErrorCode.INVALID_REQUEST)
    # nesting deeper than MAX_DEPTH takes more than MAX_DEPTH opening brackets
    if data.count("{") + data.count("[") > MAX_DEPTH and not _depth_ok(obj, MAX_DEPTH):
        raise ProtocolError(
            f"message nested deeper than {MAX_DEPTH} levels", code=ErrorCode.INVALID_REQUEST
        )
    if obj.get("jsonrpc") != "2.0":
        raise ProtocolError('must be "2.0"', field="jsonrpc", code=ErrorCode.INVALID_REQUEST)
    msg_id = obj.get("id")
    if msg_id is not None and not valid_id(msg_id):
        raise ProtocolError(
            f"must be a string of at most {MAX_ID_LENGTH} characters or a 64-bit integer",
            field="id",
            code=ErrorCode.INVALID_REQUEST,
        )

    if "method" in obj:
        method = obj["method"]
        if not isinstance(method, str) or not method:
            raise ProtocolError(
                "must be a non-empty string", field="method", code=ErrorCode.INVALID_REQUEST
            )
        params = obj.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ProtocolError("must be an object", field="params", code=ErrorCode.INVALID_PARAMS)
        return Request(method, params, msg_id)

    if msg_id is None:
        raise ProtocolError("a response needs an id", field="id", code=ErrorCode.INVALID_REQUEST)
    if "error" in obj:
        err = obj["error"]
        if not isinstance(err, dict):
            raise ProtocolError("must be an object", field="error", code=ErrorCode.INVALID_REQUEST)
        code = err.get("code", ErrorCode.SERVER_ERROR)
        if not isinstance(code, int) or isinstance(code, bool):
            code = ErrorCode.SERVER_ERROR
        message = err.get("message")
        if not isinstance(message, str):
            message = "error without a message"
        extra = {k: v for k, v in err.items() if k not in ("code", "message")}
        return ErrorResponse(msg_id, code, message, extra)
    if "result" in obj:
        result = obj["result"]
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise ProtocolError("must be an object", field="result", code=ErrorCode.INVALID_REQUEST)
        return Response(msg_id, result)
    raise ProtocolError("a message needs method, result or error", code=ErrorCode.INVALID_REQUEST)
