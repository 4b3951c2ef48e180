"""relaykit: SignalWire RELAY v2 prompts, real and testable anywhere.

The SDK (``Consumer``, ``Client``, ``Call``, actions and results), the local RELAY server
(``RelayServer``), the virtual caller (``VirtualCaller``, from ``RelayServer.dial_in``) and
the virtual callees (``VirtualCallees``, from ``RelayServer.callees``).

Every name loads on first use: ``import relaykit`` costs next to nothing, an app that uses only
the SDK never loads numpy or the media engine, and pytest's loading of the plugin
(``relaykit.pytest_plugin``) does not load the SDK.
"""

import importlib as _importlib
import typing as _typing

from ._version import __version__

__all__ = [
    "AnswerResult",
    "AskResult",
    "AuthenticationError",
    "Call",
    "CallEndedError",
    "Client",
    "CommandError",
    "ConnectAction",
    "ConnectResult",
    "Consumer",
    "DetectAction",
    "DetectOptions",
    "DetectResult",
    "DialResult",
    "DisconnectResult",
    "Event",
    "HangupResult",
    "Heard",
    "MachineDetectOptions",
    "MediaError",
    "NotFoundError",
    "PlayAction",
    "PlayResult",
    "PlayVolumeResult",
    "PromptAction",
    "PromptOptions",
    "PromptResult",
    "PromptVolumeResult",
    "ProtocolError",
    "RecordAction",
    "RecordOptions",
    "RecordResult",
    "RelayConnectionError",
    "RelayError",
    "RelayServer",
    "RelayTimeoutError",
    "SendDigitsAction",
    "SendDigitsResult",
    "StopResult",
    "TapAction",
    "TapResult",
    "VirtualCallees",
    "VirtualCaller",
    "__version__",
]

if _typing.TYPE_CHECKING:
    from .client import (
        AnswerResult,
        AskResult,
        Call,
        Client,
        ConnectAction,
        ConnectResult,
        Consumer,
        DetectAction,
        DetectOptions,
        DetectResult,
        DialResult,
        DisconnectResult,
        Event,
        HangupResult,
        MachineDetectOptions,
        PlayAction,
        PlayResult,
        PlayVolumeResult,
        PromptAction,
        PromptOptions,
        PromptResult,
        PromptVolumeResult,
        RecordAction,
        RecordOptions,
        RecordResult,
        SendDigitsAction,
        SendDigitsResult,
        StopResult,
        TapAction,
        TapResult,
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
    from .testing import Heard, VirtualCallees, VirtualCaller

# Where each name lives: imported when first asked for.
_HOME = {
    **dict.fromkeys(
        [
            "AnswerResult",
            "AskResult",
            "Call",
            "Client",
            "ConnectAction",
            "ConnectResult",
            "Consumer",
            "DetectAction",
            "DetectOptions",
            "DetectResult",
            "DialResult",
            "DisconnectResult",
            "Event",
            "HangupResult",
            "MachineDetectOptions",
            "PlayAction",
            "PlayResult",
            "PlayVolumeResult",
            "PromptAction",
            "PromptOptions",
            "PromptResult",
            "PromptVolumeResult",
            "RecordAction",
            "RecordOptions",
            "RecordResult",
            "SendDigitsAction",
            "SendDigitsResult",
            "StopResult",
            "TapAction",
            "TapResult",
        ],
        ".client",
    ),
    **dict.fromkeys(
        [
            "AuthenticationError",
            "CallEndedError",
            "CommandError",
            "MediaError",
            "NotFoundError",
            "ProtocolError",
            "RelayConnectionError",
            "RelayError",
            "RelayTimeoutError",
        ],
        ".errors",
    ),
    "RelayServer": ".server",
    "Heard": ".testing",
    "VirtualCaller": ".testing",
    "VirtualCallees": ".testing",
}


if not _typing.TYPE_CHECKING:  # hidden from type checkers, which would accept any name

    def __getattr__(name: str) -> object:
        if name not in _HOME:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(_HOME[name], __name__), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(_HOME))
