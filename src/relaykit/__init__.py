"""relaykit: SignalWire RELAY v2 prompts, real and testable anywhere.

The SDK (``Consumer``, ``Client``, ``Call``, actions and results), the local RELAY server
(``RelayServer``) and the virtual caller (``VirtualCaller``, from ``RelayServer.dial_in``).
"""

__version__ = "0.1.0"

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
from .server import RelayServer
from .testing import Heard, VirtualCaller

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
