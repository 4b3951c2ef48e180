"""A call's states and which may follow which (protocol spec §6.3)."""

from __future__ import annotations

__all__ = ["CallState", "can_move"]

from enum import Enum


class CallState(Enum):
    """Where a call is: ``created`` → (``ringing``) → ``answered`` → ``ending`` → ``ended``."""

    CREATED = "created"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDING = "ending"
    ENDED = "ended"


# Which state may follow which. Anything else is refused.
_NEXT: dict[CallState, frozenset[CallState]] = {
    CallState.CREATED: frozenset({CallState.RINGING, CallState.ANSWERED, CallState.ENDING}),
    CallState.RINGING: frozenset({CallState.ANSWERED, CallState.ENDING}),
    CallState.ANSWERED: frozenset({CallState.ENDING}),
    CallState.ENDING: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


def can_move(current: CallState, new: CallState) -> bool:
    return new in _NEXT[current]
