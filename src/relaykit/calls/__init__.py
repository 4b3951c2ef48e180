"""The core of the server: calls, their components and their events, behind one interface.

:class:`CallService` is the call interface every adapter uses (RELAY sessions, SIP, virtual
callers); :class:`Call` is one call; :mod:`.events` are what happens on calls, as data;
:class:`CallLog` keeps a call's events; :class:`MediaClock` ticks the media engine;
:class:`RecordingStore` keeps ``calling.record``'s files.
"""

from .call import Call, ComponentResource, EventSink, Leg
from .clock import MediaClock
from .events import (
    CallerActed,
    CallEvent,
    CallOffered,
    CallStateChanged,
    ComponentChanged,
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
from .recordings import Recording, RecordingStore
from .service import CallService, Dialer, Receivers, TapSink, TapTargets
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
    "ComponentChanged",
    "ComponentResource",
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
    "Recording",
    "RecordingStore",
    "SpeechHeard",
    "SpeechRecognition",
    "TapSink",
    "TapTargets",
    "TranscriptEntry",
    "describe",
    "event_from_dict",
]
