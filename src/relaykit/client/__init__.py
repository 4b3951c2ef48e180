"""The relaykit SDK: the RELAY v2 calling API on asyncio."""

from .call import Call, Calling
from .client import Client
from .components import PlayAction, PromptAction
from .consumer import Consumer
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
    "Calling",
    "Client",
    "Consumer",
    "Event",
    "HangupResult",
    "PlayAction",
    "PlayResult",
    "PlayVolumeResult",
    "PromptAction",
    "PromptResult",
    "PromptVolumeResult",
    "StopResult",
]
