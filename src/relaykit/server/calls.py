"""Server-side calls: state table, ownership, running components."""

from __future__ import annotations

__all__ = ["CallState", "Component", "ServerCall", "TranscriptEntry"]

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from ..media.engine import CallMedia
from ..protocol.calling import Collect
from .sessions import ServerSession


class CallState(Enum):
    CREATED = "created"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDING = "ending"
    ENDED = "ended"


# Which state may follow which (§6.3). Anything else is refused.
_NEXT: dict[CallState, frozenset[CallState]] = {
    CallState.CREATED: frozenset({CallState.RINGING, CallState.ANSWERED, CallState.ENDING}),
    CallState.RINGING: frozenset({CallState.ANSWERED, CallState.ENDING}),
    CallState.ANSWERED: frozenset({CallState.ENDING}),
    CallState.ENDING: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


@dataclass(eq=False, slots=True)
class Component:
    """A running play or prompt, keyed by its control_id."""

    kind: str  # "play" or "prompt"
    collect: Collect | None = None


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One line of what happened on a call: ``at`` is call-relative media time in seconds."""

    at: float
    actor: str  # "caller", "ivr" or "call"
    text: str


@dataclass(eq=False, slots=True)
class ServerCall:
    project: str
    context: str
    from_number: str
    to_number: str
    node_id: str
    media: CallMedia
    session: ServerSession | None = None
    direction: str = "inbound"
    call_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: CallState = CallState.CREATED
    end_reason: str | None = None
    components: dict[str, Component] = field(default_factory=dict)
    state_changed: asyncio.Event = field(default_factory=asyncio.Event)
    loaders: set[asyncio.Task[None]] = field(default_factory=set)
    partials_running: set[str] = field(default_factory=set)
    transcript: list[TranscriptEntry] = field(default_factory=list)
    listeners: list[Callable[[TranscriptEntry], None]] = field(default_factory=list)

    def note(self, at: float, actor: str, text: str) -> None:
        entry = TranscriptEntry(round(at, 3), actor, text)
        self.transcript.append(entry)
        for listener in list(self.listeners):
            listener(entry)

    @property
    def ended(self) -> bool:
        return self.state in (CallState.ENDING, CallState.ENDED)

    def move_to(self, state: CallState) -> bool:
        if state not in _NEXT[self.state]:
            return False
        self.state = state
        self.state_changed.set()
        self.state_changed = asyncio.Event()
        return True
