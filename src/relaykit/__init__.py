"""relaykit: SignalWire RELAY v2 prompts, real and testable anywhere.

The SDK (``Consumer``, ``Client``, ``Call``, actions and results), the local RELAY server
(``RelayServer``) and the virtual caller (``VirtualCaller``, from ``RelayServer.dial_in``).
"""

import importlib as _importlib
import typing as _typing

from ._version import __version__
from .client import (
    AnswerResult,
    Call,
    Client,
    Consumer,
    Event,
    HangupResult,
    PlayAction,
    PlayResult,
    PlayVolumeResult,
    PromptAction,
    PromptResult,
    PromptVolumeResult,
    StopResult,
)
from .errors import (
    AuthenticationError,
    CallEndedError,
    CommandError,
    MediaError,
    NotFoundError,
    ProtocolError,
    RelayConnectionError,
    RelayError,
    RelayTimeoutError,
)

__all__ = [
    "AnswerResult",
    "AuthenticationError",
    "Call",
    "CallEndedError",
    "Client",
    "CommandError",
    "Consumer",
    "Event",
    "HangupResult",
    "Heard",
    "MediaError",
    "NotFoundError",
    "PlayAction",
    "PlayResult",
    "PlayVolumeResult",
    "PromptAction",
    "PromptResult",
    "PromptVolumeResult",
    "ProtocolError",
    "RelayConnectionError",
    "RelayError",
    "RelayServer",
    "RelayTimeoutError",
    "StopResult",
    "VirtualCaller",
    "__version__",
]

if _typing.TYPE_CHECKING:
    from .server import RelayServer
    from .testing import Heard, VirtualCaller

# The server and the virtual caller need numpy and the media stack; they load on first use, so
# an app that imports only the SDK stays light.
_LAZY = {"RelayServer": ".server", "Heard": ".testing", "VirtualCaller": ".testing"}


if not _typing.TYPE_CHECKING:  # hidden from type checkers, which would accept any name

    def __getattr__(name: str) -> object:
        if name not in _LAZY:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(_LAZY))
