"""One call as the core keeps it: who owns it, where it is, its media and its log."""

from __future__ import annotations

__all__ = ["Call", "ComponentResource", "Connect", "EventSink", "Leg"]

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..media.engine import CallMedia
from ..protocol.calling import Media
from .events import CallEvent
from .log import CallLog
from .state import CallState, can_move


class EventSink(Protocol):
    """Where a call's events go: the RELAY session that was offered (or answered) the call."""

    def deliver(self, event: CallEvent) -> None:
        """Take one event; must not block (queue it)."""


class Leg(Protocol):
    """The far end of a call, run by an adapter (a SIP phone, a virtual caller, …)."""

    def answered(self, call: Call) -> None:
        """The IVR answered an inbound call (a SIP leg sends 200 OK and starts its media)."""

    def ended(self, call: Call, reason: str) -> None:
        """The call ended, by either side (hang up the far end unless it did, free its media)."""


@dataclass(eq=False, slots=True)
class ComponentResource:
    """What the core keeps for a running record, detect, tap or send_digits component:
    the ``params`` every one of its events carries, and ``close``, which frees what it holds
    (a file, a socket) when it ends and returns what its final event adds (a file's size)."""

    kind: str
    params: dict[str, Any]
    close: Callable[[], dict[str, Any]] | None = None


@dataclass(eq=False, slots=True)
class Connect:
    """A ``calling.connect`` of ``call`` (its A leg): ``connecting`` while ``legs`` ring (and
    ``ringback`` plays to the call), then ``connected``: bridged to ``peer``, the leg that
    answered. Both calls point to it (:attr:`Call.connect`) while it lasts."""

    control_id: str
    call: Call
    state: str = "connecting"
    legs: list[Call] = field(default_factory=list)  # every leg placed, in order
    peer: Call | None = None
    ringback: tuple[Media, ...] = ()
    ringback_from: float = 0.0  # call time the ringback last started
    task: asyncio.Task[None] | None = None

    @property
    def ringback_id(self) -> str:
        """The control_id of the ringback playing to the A leg."""
        return f"{self.control_id}:ringback"

    def other(self, call: Call) -> Call | None:
        """The other leg of the bridge, seen from ``call``."""
        return self.peer if call is self.call else self.call


@dataclass(eq=False, slots=True)
class Call:
    """A call of ``project`` on this node. Commands reach it through the CallService."""

    call_id: str
    project: str
    context: str
    from_number: str
    to_number: str
    node_id: str
    media: CallMedia
    direction: str = "inbound"
    owner: EventSink | None = None
    leg: Leg | None = None
    tag: str | None = None
    device: dict[str, Any] | None = None
    state: CallState = CallState.CREATED
    end_reason: str | None = None
    log: CallLog = field(default_factory=CallLog)
    state_changed: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)  # loaders, recognitions
    partials_running: set[str] = field(default_factory=set)
    resources: dict[str, ComponentResource] = field(default_factory=dict)  # by control_id
    # A connect: the other leg (a leg the connect placed knows its A leg from the start) and
    # the connect itself while it lasts.
    peer: Call | None = None
    connect: Connect | None = None

    @property
    def ended(self) -> bool:
        """True once the call is ``ending`` or ``ended``."""
        return self.state in (CallState.ENDING, CallState.ENDED)

    def move_to(self, state: CallState) -> bool:
        """Change state if the table allows it; waiters on ``state_changed`` wake up."""
        if not can_move(self.state, state):
            return False
        self.state = state
        self.state_changed.set()
        self.state_changed = asyncio.Event()
        return True
