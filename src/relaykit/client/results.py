"""Results: live views over a component, with the v2 SDK's names (protocol spec §7.9)."""

from __future__ import annotations

__all__ = [
    "AnswerResult",
    "Event",
    "HangupResult",
    "PlayResult",
    "PlayVolumeResult",
    "PromptResult",
    "PromptVolumeResult",
    "Result",
    "StopResult",
]

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .components import Component, PromptComponent


@dataclass(frozen=True, slots=True)
class Event:
    """What completed a component: ``name`` (result type or call state) and its ``payload``."""

    name: str
    payload: dict[str, Any]


class Result:
    """Base of component results: ``successful`` and ``event``, read live."""

    def __init__(self, component: Component) -> None:
        self._component = component

    @property
    def successful(self) -> bool:
        return self._component.successful

    @property
    def event(self) -> Event | None:
        return self._component.event

    def __repr__(self) -> str:
        return f"<{type(self).__name__} successful={self.successful}>"


class PlayResult(Result):
    pass


class PromptResult(Result):
    """Outcome of a prompt.

    ``prompt_type`` (alias ``type``) is the result type once completed (digit, speech,
    no_input, no_match, error), the requested type before. ``result`` is the digits or text,
    ``terminator`` the key that ended digit entry (``""`` when max digits or the timeout did),
    ``confidence`` 0–100 for speech, ``reason`` why the prompt ended (relaykit extension).
    After ``stop()``, ``result`` holds whatever was captured before the stop.
    """

    _component: PromptComponent

    @property
    def prompt_type(self) -> str:
        return self._component.prompt_type

    @property
    def type(self) -> str:
        return self._component.prompt_type

    @property
    def result(self) -> str | None:
        return self._component.input

    @property
    def terminator(self) -> str | None:
        return self._component.terminator

    @property
    def confidence(self) -> float | None:
        return self._component.confidence

    @property
    def reason(self) -> str | None:
        return self._component.reason

    def __repr__(self) -> str:
        return (
            f"<PromptResult successful={self.successful} type={self.prompt_type!r} "
            f"result={self.result!r} terminator={self.terminator!r} "
            f"confidence={self.confidence!r} reason={self.reason!r}>"
        )


@dataclass(frozen=True, slots=True)
class _Ack:
    """A command's acknowledgement; ``code``/``message`` are the server's (None on no reply)."""

    successful: bool
    code: str | None = None
    message: str | None = None


class StopResult(_Ack):
    pass


class PromptVolumeResult(_Ack):
    pass


class PlayVolumeResult(_Ack):
    pass


@dataclass(frozen=True, slots=True)
class AnswerResult:
    """``successful`` only when the call really reached ``answered`` (unlike v2)."""

    successful: bool
    event: Event | None = None


@dataclass(frozen=True, slots=True)
class HangupResult:
    successful: bool
    reason: str | None = None
    event: Event | None = None
