"""The core of the server: calls, their components and their events, behind one interface.

:class:`CallService` is the call interface every adapter uses (RELAY sessions, SIP, virtual
callers); :class:`Call` is one call; :mod:`.events` are what happens on calls, as data;
:class:`CallLog` keeps a call's events; :class:`MediaClock` ticks the media engine.
"""

from .call import Call, EventSink, Leg
from .clock import MediaClock
from .events import (
    CallerActed,
    CallEvent,
    CallOffered,
    CallStateChanged,
    DialStateChanged,
    InputStarted,
    KeyDetected,
    MediaEnded,
    MediaStarted,
    PlayStateChanged,
    PromptEnded,
    PromptPartial,
    SpeechHeard,
    event_from_dict,
)
from .loader import MediaLoader
from .log import CallLog, TranscriptEntry, describe
from .service import CallService, Dialer, Receivers
from .speech import SpeechRecognition
from .state import CallState

__all__ = [
    "Call",
    "CallEvent",
    "CallLog",
    "CallOffered",
    "CallService",
    "CallState",
    "CallStateChanged",
    "CallerActed",
    "DialStateChanged",
    "Dialer",
    "EventSink",
    "InputStarted",
    "KeyDetected",
    "Leg",
    "MediaClock",
    "MediaEnded",
    "MediaLoader",
    "MediaStarted",
    "PlayStateChanged",
    "PromptEnded",
    "PromptPartial",
    "Receivers",
    "SpeechHeard",
    "SpeechRecognition",
    "TranscriptEntry",
    "describe",
    "event_from_dict",
]
