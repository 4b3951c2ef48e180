"""The relaykit SDK: the RELAY v2 calling API on asyncio.

Imports go one way: ``results`` ← ``components`` ← ``call`` ← ``client`` ← ``consumer``
(``payloads`` under ``call``); a lower module names what it needs from a higher one as a small
Protocol. Loading the SDK loads neither numpy nor the server.
"""

from .call import Call, Calling
from .client import Client
from .components import PlayAction, PromptAction
from .consumer import Consumer
from .payloads import CallState, EndReason, Gender, PromptType
from .results import (
    AnswerResult,
    Event,
    HangupResult,
    PlayResult,
    PlayVolumeResult,
    PromptResult,
    PromptVolumeResult,
    StopResult,
)

__all__ = [
    "AnswerResult",
    "Call",
    "CallState",
    "Calling",
    "Client",
    "Consumer",
    "EndReason",
    "Event",
    "Gender",
    "HangupResult",
    "PlayAction",
    "PlayResult",
    "PlayVolumeResult",
    "PromptAction",
    "PromptResult",
    "PromptType",
    "PromptVolumeResult",
    "StopResult",
]
