"""What happens on a call, as data: one frozen event class per kind of happening (nouns).

Every event names its call (``call_id``, ``node_id``) and when it happened in call time
(``at``, seconds on the call's media clock), and says who acted (``actor``: ``call``, ``caller``
or ``ivr``). The call's log keeps them in order; the RELAY session turns them into
``calling.call.*`` frames, the test kit reads them, the transcript and the timeline are drawn
from them. ``to_dict``/``event_from_dict`` carry them across a process boundary unchanged.
"""

from __future__ import annotations

__all__ = [
    "EVENT_TYPES",
    "CallEvent",
    "CallOffered",
    "CallStateChanged",
    "CallerActed",
    "ComponentChanged",
    "DialStateChanged",
    "InputStarted",
    "KeyDetected",
    "MediaEnded",
    "MediaStarted",
    "PlayStateChanged",
    "PromptEnded",
    "PromptPartial",
    "SpeechHeard",
    "event_from_dict",
]

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent:
    """Base of every call event."""

    kind: ClassVar[str] = "event"
    actor: ClassVar[str] = "call"

    call_id: str
    node_id: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: ``kind``, ``actor`` and the fields."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"kind": self.kind, "actor": self.actor, **data}


# -- the call ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class CallOffered(CallEvent):
    """A call was created: inbound (offered to a consumer of ``context``) or outbound."""

    kind: ClassVar[str] = "call.offered"
    context: str
    from_number: str
    to_number: str
    direction: str = "inbound"
    via: str = ""  # the adapter that brought it: "" (virtual caller), "sip", ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStateChanged(CallEvent):
    """The call moved to ``state`` (§6.3); ``tag``/``device`` describe outbound calls, ``peer``
    (``call_id``, ``node_id``) the other leg of a connect."""

    kind: ClassVar[str] = "call.state"
    state: str
    from_number: str
    to_number: str
    direction: str = "inbound"
    end_reason: str | None = None
    tag: str | None = None
    device: dict[str, Any] | None = None
    peer: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DialStateChanged(CallEvent):
    """``calling.dial`` progress: ``dialing``, ``answered`` (with the winning ``call``), ``failed``.

    ``call_id`` is the winning call's, or "" while none has answered.
    """

    kind: ClassVar[str] = "dial.state"
    tag: str
    dial_state: str
    call: dict[str, Any] | None = None
    reason: str | None = None
    source: str | None = None


# -- the caller (the far end) -----------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class CallerActed(CallEvent):
    """The far end sent something: ``press``, ``say``, ``play``, ``silence``, ``audio`` or
    ``hangup``; ``end`` is when its audio ends (None for a hang-up)."""

    kind: ClassVar[str] = "caller.acted"
    actor: ClassVar[str] = "caller"
    action: str
    label: str = ""
    end: float | None = None


# -- the IVR's components ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class MediaStarted(CallEvent):
    """A media item of a play or prompt began playing to the caller."""

    kind: ClassVar[str] = "media.started"
    actor: ClassVar[str] = "ivr"
    control_id: str
    media: str  # tts, audio, silence, ringtone
    label: str
    volume_db: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaEnded(CallEvent):
    """A media item stopped playing (its end, a stop, barge-in or the hang-up)."""

    kind: ClassVar[str] = "media.ended"
    actor: ClassVar[str] = "ivr"
    control_id: str
    media: str
    label: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayStateChanged(CallEvent):
    """A play (or a prompt's media) is ``playing``, ``finished`` or in ``error``.

    ``cause`` says why it ended early: ``barge_in``, ``stopped``, a prompt's end reason, or
    ``hangup``.
    """

    kind: ClassVar[str] = "play.state"
    actor: ClassVar[str] = "ivr"
    control_id: str
    state: str
    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyDetected(CallEvent):
    """A DTMF key heard in the caller's audio (or received out of band)."""

    kind: ClassVar[str] = "key.detected"
    actor: ClassVar[str] = "ivr"
    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InputStarted(CallEvent):
    """A prompt's input began (first key or start of speech); ``reported`` if the prompt asked
    for ``start_of_input`` events."""

    kind: ClassVar[str] = "prompt.input_started"
    actor: ClassVar[str] = "ivr"
    control_id: str
    reported: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechHeard(CallEvent):
    """An utterance ended (``reason``) and goes to the recogniser."""

    kind: ClassVar[str] = "speech.heard"
    actor: ClassVar[str] = "ivr"
    control_id: str
    seconds: float
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptPartial(CallEvent):
    """An interim result of a prompt that asked for partial results."""

    kind: ClassVar[str] = "prompt.partial"
    actor: ClassVar[str] = "ivr"
    control_id: str
    result_type: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptEnded(CallEvent):
    """A prompt's terminal result: ``result_type`` digit, speech, no_input, no_match or error."""

    kind: ClassVar[str] = "prompt.ended"
    actor: ClassVar[str] = "ivr"
    control_id: str
    result_type: str
    params: dict[str, Any] | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentChanged(CallEvent):
    """A ``record``, ``detect``, ``tap``, ``send_digits`` or ``connect`` component started or
    changed state.

    ``state`` is its RELAY state (``recording``, ``finished``, ``tapping``…; a detector's
    result such as ``MACHINE`` or a key; ``connecting``, ``connected``, ``disconnected``,
    ``failed``), or its start (``detecting``, ``sending``), which RELAY does not send.
    ``params`` holds what its RELAY events carry (the ``record`` options and ``url``,
    ``duration`` and ``size`` at the end; the detect ``type``; the ``tap`` and ``device``; the
    ``digits`` sent; a connect's ``devices``, its ``peer`` and the number of the ``party`` on
    the other side). ``final``: it ended, ``reason`` says why (``stopped``, ``hangup``,
    ``timeout``, ``terminator``, ``end_silence``, ``error``, a failed connect's ``busy`` or
    ``noAnswer``…).
    """

    kind: ClassVar[str] = "component.changed"
    actor: ClassVar[str] = "ivr"
    control_id: str
    component: str
    state: str
    params: dict[str, Any] = field(default_factory=dict)
    final: bool = False
    reason: str | None = None


EVENT_TYPES: dict[str, type[CallEvent]] = {
    cls.kind: cls
    for cls in (
        CallOffered,
        CallStateChanged,
        DialStateChanged,
        CallerActed,
        MediaStarted,
        MediaEnded,
        PlayStateChanged,
        KeyDetected,
        InputStarted,
        SpeechHeard,
        PromptPartial,
        PromptEnded,
        ComponentChanged,
    )
}


def event_from_dict(data: dict[str, Any]) -> CallEvent:
    """The event that :meth:`CallEvent.to_dict` made ``data`` from. Raises ValueError."""
    cls = EVENT_TYPES.get(str(data.get("kind")))
    if cls is None:
        raise ValueError(f"unknown call event kind {data.get('kind')!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise ValueError(f"{cls.kind}: {exc}") from None
