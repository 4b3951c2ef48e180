"""Results: live views over a component, with the v2 SDK's names (protocol spec §7.9)."""

from __future__ import annotations

__all__ = [
    "AnswerResult",
    "ComponentState",
    "Event",
    "HangupResult",
    "PlayResult",
    "PlayVolumeResult",
    "PromptResult",
    "PromptState",
    "PromptVolumeResult",
    "Result",
    "StopResult",
]

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Event:
    """What completed a component: ``name`` (result type or call state) and its ``payload``."""

    name: str
    payload: dict[str, Any]


class ComponentState(Protocol):
    """What a result reads from its component (``components.Component`` provides it)."""

    @property
    def successful(self) -> bool: ...

    @property
    def event(self) -> Event | None: ...


class PromptState(ComponentState, Protocol):
    """What a prompt result reads from its component."""

    @property
    def prompt_type(self) -> str: ...

    @property
    def input(self) -> str | None: ...

    @property
    def terminator(self) -> str | None: ...

    @property
    def confidence(self) -> float | None: ...

    @property
    def reason(self) -> str | None: ...


class Result:
    """Base of component results: ``successful`` and ``event``, read live."""

    def __init__(self, component: ComponentState) -> None:
        self._component = component

    @property
    def successful(self) -> bool:
        """The operation completed as asked (played to the end, or collected input)."""
        return self._component.successful

    @property
    def event(self) -> Event | None:
        """What completed it; None while it runs."""
        return self._component.event

    def __repr__(self) -> str:
        return f"<{type(self).__name__} successful={self.successful}>"


class PlayResult(Result):
    """Outcome of a play: ``successful`` once it finished, ``event`` what ended it."""


class PromptResult(Result):
    """Outcome of a prompt.

    ``prompt_type`` (alias ``type``) is the result type once completed (digit, speech,
    no_input, no_match, error), the requested type before. ``result`` is the digits or text,
    ``terminator`` the key that ended digit entry (``""`` when max digits or the timeout did),
    ``confidence`` 0–100 for speech, ``reason`` why the prompt ended (relaykit extension).
    After ``stop()``, ``result`` holds whatever was captured before the stop.
    """

    def __init__(self, component: PromptState) -> None:
        super().__init__(component)
        self._prompt = component

    @property
    def prompt_type(self) -> str:
        """digit, speech, no_input, no_match or error once completed."""
        return self._prompt.prompt_type

    @property
    def type(self) -> str:
        """Another name for ``prompt_type``."""
        return self._prompt.prompt_type

    @property
    def result(self) -> str | None:
        """The digits pressed or the text recognised."""
        return self._prompt.input

    @property
    def terminator(self) -> str | None:
        """The key that ended digit entry; ``""`` if max digits or the timeout did."""
        return self._prompt.terminator

    @property
    def confidence(self) -> float | None:
        """Speech recognition confidence, 0-100."""
        return self._prompt.confidence

    @property
    def reason(self) -> str | None:
        """Why the prompt ended (``terminator``, ``max_digits``, ``stopped``…)."""
        return self._prompt.reason

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
    """Reply to ``action.stop()``."""


class PromptVolumeResult(_Ack):
    """Reply to ``PromptAction.volume(db)``."""


class PlayVolumeResult(_Ack):
    """Reply to ``PlayAction.volume(db)``."""


@dataclass(frozen=True, slots=True)
class AnswerResult:
    """``successful`` only when the call really reached ``answered`` (unlike v2)."""

    successful: bool
    event: Event | None = None


@dataclass(frozen=True, slots=True)
class HangupResult:
    """``successful`` once the call ended; ``reason`` is its end reason."""

    successful: bool
    reason: str | None = None
    event: Event | None = None
