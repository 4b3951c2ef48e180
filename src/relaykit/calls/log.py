"""A call's log: its events in order, as data, and the readable transcript drawn from them."""

from __future__ import annotations

__all__ = [
    "CallLog",
    "Span",
    "TranscriptEntry",
    "caller_spans",
    "component_spans",
    "connect_targets",
    "describe",
    "media_spans",
    "tap_target",
    "transcript_entry",
]

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from .events import (
    CallerActed,
    CallEvent,
    CallOffered,
    CallStateChanged,
    ComponentChanged,
    KeyDetected,
    MediaEnded,
    MediaStarted,
    PlayStateChanged,
    PromptEnded,
    SpeechHeard,
)

_E = TypeVar("_E", bound=CallEvent)

Listener = Callable[[CallEvent], None]


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One readable line of a call: ``at`` call seconds, ``actor`` caller, ivr or call."""

    at: float
    actor: str
    text: str


_CALLER_VERBS = {"press": "presses", "say": "says", "play": "plays"}


def describe(event: CallEvent) -> str | None:
    """The transcript line for ``event``, or None for events the transcript leaves out."""
    if isinstance(event, CallOffered):
        via = f" ({event.via.upper()})" if event.via else ""
        if event.direction == "outbound":
            return f"{event.from_number} calls {event.to_number} ({event.via.upper()}, outbound)"
        return (
            f"{event.from_number} calls {event.to_number}{via}; "
            f"offered to context {event.context!r}"
        )
    if isinstance(event, CallStateChanged):
        reason = f" ({event.end_reason})" if event.end_reason else ""
        return f"{event.state}{reason}"
    if isinstance(event, CallerActed):
        if event.action == "hangup":
            return "hangs up"
        if event.action == "say":
            return f"says {event.label!r}"
        verb = _CALLER_VERBS.get(event.action)
        return f"{verb} {event.label}" if verb is not None and event.label else None
    if isinstance(event, MediaStarted):
        level = f" at {event.volume_db:+g} dB" if event.volume_db else ""
        return f"plays {event.media} {event.label!r}{level}"
    if isinstance(event, PlayStateChanged):
        if event.cause == "barge_in":
            return "stops the prompt's media (barge-in)"
        if event.cause == "stopped":
            return "stops the media"
        if event.state == "error" and event.cause != "hangup":
            return f"media error: {event.error}"
        return None
    if isinstance(event, KeyDetected):
        return f"detects key {event.key}"
    if isinstance(event, SpeechHeard):
        return f"hears {event.seconds:.1f}s of speech ({event.reason})"
    if isinstance(event, PromptEnded):
        shown = {k: v for k, v in (event.params or {}).items() if v != ""}
        return f"prompt ends: {event.result_type} {shown} (reason {event.reason})"
    if isinstance(event, ComponentChanged):
        return _describe_component(event)
    return None


def _describe_component(event: ComponentChanged) -> str | None:
    params = event.params
    why = f" ({event.reason})" if event.reason else ""
    if event.component == "record":
        if not event.final:
            audio = params.get("record", {}).get("audio", {})
            return f"records {audio.get('direction', '')} audio ({audio.get('format', '')})"
        return f"recording {event.state}: {params.get('duration', 0):g} s{why}"
    if event.component == "detect":
        if event.state == "detecting":
            return f"starts detecting {params.get('type', '')}"
        if event.final:
            return f"detector ends{why}"
        return f"{params.get('type', '')} detector: {event.state}"
    if event.component == "tap":
        return f"taps {tap_target(params)}" if not event.final else f"tap ends{why}"
    if event.component == "send_digits":
        return f"sends digits {params.get('digits', '')}" if not event.final else None
    if event.component == "connect":
        return _describe_connect(event)
    return None


def _describe_connect(event: ComponentChanged) -> str:
    party = event.params.get("party", "")
    why = f" ({event.reason})" if event.reason else ""
    if event.state == "connecting":
        return f"connects the call to {connect_targets(event.params)}"
    if event.state == "connected":
        return f"connected to {party}"
    if event.state == "disconnected":
        return f"disconnected from {party}{why}"
    return f"connect failed{why}"


def connect_targets(params: dict[str, object]) -> str:
    """Who a connect rings, from its ``devices``: numbers or URIs, ``,`` between the devices
    of a group (in parallel), ``then`` between groups (in series)."""
    groups = params.get("devices")
    if not isinstance(groups, list):
        return "?"
    names = []
    for group in groups:
        devices = group if isinstance(group, list) else []
        names.append(", ".join(_device_name(d) for d in devices))
    return " then ".join(names)


def _device_name(device: object) -> str:
    params = device.get("params") if isinstance(device, dict) else None
    if not isinstance(params, dict):
        return "?"
    return str(params.get("to_number") or params.get("to") or "?")


def tap_target(params: dict[str, object]) -> str:
    """Where a tap streams, from its event params: ``rtp://addr:port`` or the WebSocket URL."""
    device = params.get("device")
    if not isinstance(device, dict):
        return "?"
    dparams = device.get("params") or {}
    if device.get("type") == "rtp":
        return f"rtp://{dparams.get('addr')}:{dparams.get('port')} ({dparams.get('codec')})"
    return f"{dparams.get('uri')} ({dparams.get('codec')})"


class CallLog:
    """Every event of one call, in the order it happened; listeners see each as it is added."""

    def __init__(self) -> None:
        self._events: list[CallEvent] = []
        self._listeners: tuple[Listener, ...] = ()  # replaced, never changed: no copy per event

    def append(self, event: CallEvent) -> None:
        self._events.append(event)
        for listener in self._listeners:
            listener(event)

    def subscribe(self, listener: Listener, *, replay: bool = False) -> Callable[[], None]:
        """Call ``listener(event)`` for every new event (and every past one first, with
        ``replay``); returns a function that unsubscribes."""
        if replay:
            for event in list(self._events):
                listener(event)
        self._listeners = (*self._listeners, listener)

        def unsubscribe() -> None:
            listeners = list(self._listeners)
            with contextlib.suppress(ValueError):
                listeners.remove(listener)
                self._listeners = tuple(listeners)

        return unsubscribe

    def __iter__(self) -> Iterator[CallEvent]:
        return iter(list(self._events))

    def __len__(self) -> int:
        return len(self._events)

    def of(self, kind: type[_E]) -> list[_E]:
        """The events of one kind, in order."""
        return [e for e in self._events if isinstance(e, kind)]

    def transcript(self) -> list[TranscriptEntry]:
        """The readable account of the call."""
        return [entry for event in self._events if (entry := transcript_entry(event))]


def transcript_entry(event: CallEvent) -> TranscriptEntry | None:
    text = describe(event)
    return None if text is None else TranscriptEntry(round(event.at, 3), event.actor, text)


@dataclass(frozen=True, slots=True)
class Span:
    """Something that lasted: ``kind`` (press, say, tts, audio…), ``label``, call seconds;
    ``end`` is None while it goes on."""

    kind: str
    label: str
    start: float
    end: float | None


_AUDIO_ACTIONS = ("press", "say", "play", "silence", "audio")


def caller_spans(events: Iterable[CallEvent]) -> list[Span]:
    """What the far end sent, in order. Unlabelled audio right behind other audio continues it
    (a file sent in chunks)."""
    spans: list[Span] = []
    for event in events:
        if not isinstance(event, CallerActed) or event.action not in _AUDIO_ACTIONS:
            continue
        end = event.at if event.end is None else event.end
        last = spans[-1] if spans else None
        if (
            event.action == "audio"
            and last is not None
            and last.kind != "silence"
            and last.end == event.at
        ):
            spans[-1] = Span(last.kind, last.label, last.start, end)
            continue
        spans.append(Span(event.action, event.label, event.at, end))
    return spans


def component_spans(events: Iterable[CallEvent]) -> list[Span]:
    """Record, detect, tap, send_digits and connect components from start to end (``kind``
    the component, ``label`` what it did: the recording's length, the detector's results…).
    A connect is two spans: ringing its devices, then bridged to the leg that answered."""
    spans: list[Span] = []
    open_spans: dict[str, int] = {}
    results: dict[str, list[str]] = {}
    for event in events:
        if not isinstance(event, ComponentChanged):
            continue
        index = open_spans.get(event.control_id)
        if event.component == "connect" and index is not None:
            span = spans[index]
            if event.state == "connected":  # the ringing ends; the bridge begins
                spans[index] = Span(span.kind, span.label, span.start, event.at)
                open_spans[event.control_id] = len(spans)
                party = event.params.get("party", "")
                spans.append(Span("bridge", f"bridged to {party}", event.at, None))
            elif event.final:
                label = f"{span.label}: {event.state} ({event.reason})"
                spans[index] = Span(span.kind, label, span.start, event.at)
                del open_spans[event.control_id]
            continue
        if index is None:
            open_spans[event.control_id] = len(spans)
            kind = "bridge" if event.state == "connected" else event.component
            spans.append(Span(kind, _span_label(event, []), event.at, None))
            continue
        if event.component == "detect" and not event.final:
            results.setdefault(event.control_id, []).append(event.state)
        span = spans[index]
        label = _span_label(event, results.get(event.control_id, []))
        end = event.at if event.final else None
        spans[index] = Span(span.kind, label, span.start, end)
        if event.final:
            del open_spans[event.control_id]
    return spans


def _span_label(event: ComponentChanged, results: list[str]) -> str:
    params = event.params
    if event.component == "record":
        audio = params.get("record", {}).get("audio", {})
        label = f"record {audio.get('direction', '')} {audio.get('format', '')}".rstrip()
        if event.final:
            label += f": {event.state} {params.get('duration', 0):g} s"
        return label
    if event.component == "detect":
        label = f"detect {params.get('type', '')}"
        return f"{label} → {', '.join(results)}" if results else label
    if event.component == "tap":
        return f"tap → {tap_target(params)}"
    if event.component == "connect":
        if event.state == "connected":  # a leg the connect placed: bridged from its start
            return f"bridged to {params.get('party', '')}"
        return f"ringing {connect_targets(params)}"
    return f"send digits {params.get('digits', '')}"


def media_spans(events: Iterable[CallEvent]) -> list[Span]:
    """The media items the IVR played, in the order they started, with their ends."""
    spans: list[Span] = []
    open_items: dict[str, list[int]] = {}
    for event in events:
        if isinstance(event, MediaStarted):
            open_items.setdefault(event.control_id, []).append(len(spans))
            spans.append(Span(event.media, event.label, event.at, None))
        elif isinstance(event, MediaEnded) and open_items.get(event.control_id):
            index = open_items[event.control_id].pop(0)
            span = spans[index]
            spans[index] = Span(span.kind, span.label, span.start, event.at)
    return spans
