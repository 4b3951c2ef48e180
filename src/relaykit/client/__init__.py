"""The relaykit SDK: the RELAY v2 calling API on asyncio.

Imports go one way: ``results`` ← ``components`` ← ``call`` ← ``client`` ← ``consumer``
(``payloads`` under ``call``); a lower module names what it needs from a higher one as a small
Protocol. Loading the SDK loads neither numpy nor the server.
"""

from .call import (
    Call,
    Calling,
    DetectOptions,
    MachineDetectOptions,
    PromptOptions,
    RecordOptions,
)
from .client import Client
from .components import (
    ConnectAction,
    DetectAction,
    PlayAction,
    PromptAction,
    RecordAction,
    SendDigitsAction,
    TapAction,
)
from .consumer import Consumer
from .payloads import (
    AudioDirection,
    CallState,
    DetectType,
    EndReason,
    FaxTone,
    Gender,
    PromptType,
    RecordFormat,
    TapCodec,
    TapTargetType,
)
from .results import (
    AnswerResult,
    AskResult,
    ConnectResult,
    DetectResult,
    DialResult,
    DisconnectResult,
    Event,
    HangupResult,
    PlayResult,
    PlayVolumeResult,
    PromptResult,
    PromptVolumeResult,
    RecordResult,
    SendDigitsResult,
    StopResult,
    TapResult,
)

__all__ = [
    "AnswerResult",
    "AskResult",
    "AudioDirection",
    "Call",
    "CallState",
    "Calling",
    "Client",
    "ConnectAction",
    "ConnectResult",
    "Consumer",
    "DetectAction",
    "DetectOptions",
    "DetectResult",
    "DetectType",
    "DialResult",
    "DisconnectResult",
    "EndReason",
    "Event",
    "FaxTone",
    "Gender",
    "HangupResult",
    "MachineDetectOptions",
    "PlayAction",
    "PlayResult",
    "PlayVolumeResult",
    "PromptAction",
    "PromptOptions",
    "PromptResult",
    "PromptType",
    "PromptVolumeResult",
    "RecordAction",
    "RecordFormat",
    "RecordOptions",
    "RecordResult",
    "SendDigitsAction",
    "SendDigitsResult",
    "StopResult",
    "TapAction",
    "TapCodec",
    "TapResult",
    "TapTargetType",
]
