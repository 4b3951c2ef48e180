"""The relaykit exception tree.

::

    RelayError
    ├── ProtocolError (ValueError)       a wire message is malformed; names the offending field
    │   └── UnknownMethodError           a request names a method nobody implements
    ├── AuthenticationError              blade.connect refused (wrong project or token)
    ├── CommandError                     the peer refused a request (error or non-"200" code)
    │   └── NotFoundError                the call or component the command names does not exist
    ├── RelayConnectionError (ConnectionError)  the WebSocket is closed or could not be opened
    ├── RelayTimeoutError (TimeoutError) a request or a wait ran out of time
    ├── LimitExceededError               a per-session or per-call limit was reached
    ├── CallEndedError (RuntimeError)    the call is over; nothing more can be done on it
    ├── MediaError                       media could not be produced or decoded
    │   └── UnsupportedLanguageError     TTS or ASR was asked for a language it does not have
    └── MissingExtraError (ImportError)  a feature needs an optional extra that is not installed

Each error that can go over the wire carries the JSON-RPC ``code`` the server answers with.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "CallEndedError",
    "CommandError",
    "ErrorCode",
    "LimitExceededError",
    "MediaError",
    "MissingExtraError",
    "NotFoundError",
    "ProtocolError",
    "RelayConnectionError",
    "RelayError",
    "RelayTimeoutError",
    "UnknownMethodError",
    "UnsupportedLanguageError",
]

from enum import IntEnum


class ErrorCode(IntEnum):
    """JSON-RPC 2.0 error codes, plus the ones RELAY uses."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    SERVER_ERROR = -32000
    AUTHENTICATION_FAILED = -32002
    NOT_FOUND = -32004
    LIMIT_EXCEEDED = -32005


class RelayError(Exception):
    """Root of every exception relaykit raises on purpose."""

    code: int = ErrorCode.SERVER_ERROR


class ProtocolError(RelayError, ValueError):
    """A message does not follow the wire contract.

    ``field`` is the dotted path of the offending field (``"params.collect.digits.max"``),
    or ``""`` when the whole message is at fault.
    """

    code: int = ErrorCode.INVALID_PARAMS

    def __init__(self, message: str, *, field: str = "", code: int | None = None) -> None:
        self.field = field
        self.reason = message
        if code is not None:
            self.code = code
        super().__init__(f"{field}: {message}" if field else message)


class UnknownMethodError(ProtocolError):
    """The request names a method this server does not have."""

    code = ErrorCode.METHOD_NOT_FOUND

    def __init__(self, method: str) -> None:
        self.method = method
        super().__init__(f"unknown method {method!r}", field="method")


class AuthenticationError(RelayError):
    """Unknown project or wrong token (also: a request before ``blade.connect``)."""

    code = ErrorCode.AUTHENTICATION_FAILED


class CommandError(RelayError):
    """The peer refused a request; ``code`` and ``message`` are what it said."""

    def __init__(self, message: str, *, code: int | str = ErrorCode.SERVER_ERROR) -> None:
        self.message = message
        self.code = code  # type: ignore[assignment]
        super().__init__(f"{message} (code {code})")


class NotFoundError(CommandError):
    """No such call or component (another project's looks the same)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=ErrorCode.NOT_FOUND)


class RelayConnectionError(RelayError, ConnectionError):
    """The connection to the RELAY server is closed or could not be opened."""


class RelayTimeoutError(RelayError, TimeoutError):
    """A request or a wait ran out of time."""


class LimitExceededError(RelayError):
    """A limit (requests per second, calls or components, queued events) was reached."""

    code = ErrorCode.LIMIT_EXCEEDED


class CallEndedError(RelayError, RuntimeError):
    """The call has ended; the operation cannot run on it."""


class MediaError(RelayError):
    """Media could not be produced: unknown ringtone, unreachable URL, undecodable file."""

    code = ErrorCode.INVALID_PARAMS


class UnsupportedLanguageError(MediaError):
    """A TTS or speech language this engine does not have; names the ones it has."""

    def __init__(self, language: str, supported: list[str] | tuple[str, ...] = ()) -> None:
        self.language = language
        self.supported = tuple(supported)
        hint = f"; supported: {', '.join(self.supported)}" if self.supported else ""
        super().__init__(f"unsupported language {language!r}{hint}")


class MissingExtraError(RelayError, ImportError):
    """A feature needs an optional part of relaykit that is not installed; names the extra."""

    def __init__(self, feature: str, extra: str) -> None:
        self.feature = feature
        self.extra = extra
        super().__init__(
            f"{feature} needs relaykit's {extra!r} extra: pip install 'relaykit[{extra}]'"
        )
