"""Results: live views over a component, with the v2 SDK's names (protocol spec §7.9)."""

from __future__ import annotations

__all__ = [
    "AnswerResult",
    "AskResult",
    "ComponentState",
    "ConnectResult",
    "DetectResult",
    "DialResult",
    "DisconnectResult",
    "Event",
    "HangupResult",
    "PlayResult",
    "PlayVolumeResult",
    "PromptOutcome",
    "PromptResult",
    "PromptState",
    "PromptVolumeResult",
    "RecordResult",
    "Result",
    "SendDigitsResult",
    "StopResult",
    "TapResult",
]

from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

CallT = TypeVar("CallT")  # the SDK's Call (results name no class of a higher module)
CallT_co = TypeVar("CallT_co", covariant=True)


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
class PromptOutcome:
    """A prompt's outcome as plain data (what :class:`AskResult` reports)."""

    successful: bool
    event: Event | None
    prompt_type: str
    input: str | None
    terminator: str | None
    confidence: float | None
    reason: str | None


class AskResult(PromptResult):
    """Outcome of ``Call.ask``: the accepted input, or how the last try failed.

    Read as a :class:`PromptResult`: ``successful`` when a try's input passed every check;
    otherwise ``prompt_type`` is ``no_match`` for input that was refused (``reason``
    ``min_digits`` or ``invalid``, ``result`` the refused input), or the last try's own
    (``no_input``, ``no_match``, ``error``). ``attempts`` holds every try's PromptResult,
    ``tries`` how many there were.
    """

    def __init__(self, outcome: PromptOutcome, attempts: list[PromptResult]) -> None:
        super().__init__(outcome)
        self.attempts = list(attempts)

    @property
    def tries(self) -> int:
        return len(self.attempts)

    def __repr__(self) -> str:
        return (
            f"<AskResult successful={self.successful} type={self.prompt_type!r} "
            f"result={self.result!r} reason={self.reason!r} tries={self.tries}>"
        )


class RecordState(ComponentState, Protocol):
    """What a record result reads from its component."""

    @property
    def url(self) -> str: ...

    @property
    def duration(self) -> float: ...

    @property
    def size(self) -> int: ...


class RecordResult(Result):
    """Outcome of a recording: ``successful`` once it finished (not on ``no_input``).

    ``url`` is where to fetch the file (HTTP GET), ``duration`` its length in seconds and
    ``size`` its size in bytes (both 0 until it has finished).
    """

    def __init__(self, component: RecordState) -> None:
        super().__init__(component)
        self._record = component

    @property
    def url(self) -> str:
        return self._record.url

    @property
    def duration(self) -> float:
        return self._record.duration

    @property
    def size(self) -> int:
        return self._record.size

    def __repr__(self) -> str:
        return (
            f"<RecordResult successful={self.successful} url={self.url!r} "
            f"duration={self.duration!r} size={self.size!r}>"
        )


class DetectState(ComponentState, Protocol):
    """What a detect result reads from its component."""

    @property
    def detect_type(self) -> str: ...

    @property
    def result(self) -> str | None: ...

    @property
    def results(self) -> list[str]: ...


class DetectResult(Result):
    """Outcome of a detector, as v2 gives it.

    ``detect_type`` is digit, fax or machine. ``result`` is what was detected: from a blocking
    ``detect*()`` the first answer (a key, ``CED``/``CNG``, ``HUMAN``, ``MACHINE`` — also after
    ``wait_for_beep`` — or ``UNKNOWN``); from a ``detect*_async()`` action every answer joined
    with commas (``"MACHINE,READY"``). ``results`` lists them (relaykit addition).
    """

    def __init__(self, component: DetectState, *, expect: str | None = None) -> None:
        super().__init__(component)
        self._detect = component
        self._expect = expect

    @property
    def successful(self) -> bool:
        """The detector answered (with ``expect``, if given: ``detect_human``/``_machine``)."""
        if self._expect is not None:
            return self._detect.result == self._expect
        return self._detect.successful

    @property
    def detect_type(self) -> str:
        return self._detect.detect_type

    @property
    def result(self) -> str | None:
        return self._detect.result

    @property
    def results(self) -> list[str]:
        return list(self._detect.results)

    def __repr__(self) -> str:
        return (
            f"<DetectResult successful={self.successful} type={self.detect_type!r} "
            f"result={self.result!r}>"
        )


class TapState(ComponentState, Protocol):
    """What a tap result reads from its component."""

    @property
    def tap(self) -> dict[str, Any]: ...

    @property
    def source_device(self) -> dict[str, Any]: ...

    @property
    def device(self) -> dict[str, Any]: ...


class TapResult(Result):
    """Outcome of a tap: ``tap`` (what was tapped), ``source_device`` (where the stream came
    from) and ``destination_device`` (where it went)."""

    def __init__(self, component: TapState) -> None:
        super().__init__(component)
        self._tap = component

    @property
    def tap(self) -> dict[str, Any]:
        return self._tap.tap

    @property
    def source_device(self) -> dict[str, Any]:
        return self._tap.source_device

    @property
    def destination_device(self) -> dict[str, Any]:
        return self._tap.device


class ConnectState(ComponentState, Protocol[CallT_co]):
    """What a connect result reads from its component."""

    @property
    def peer(self) -> CallT_co | None: ...

    @property
    def reason(self) -> str | None: ...


class ConnectResult(Result, Generic[CallT]):
    """Outcome of ``connect``: ``successful`` once the call is bridged; ``call`` is the other
    leg (a :class:`Call` the IVR can play to, record or hang up), ``reason`` why a connect
    failed (``busy``, ``noAnswer``, ``decline``, ``error``, ``cancel``; relaykit addition)."""

    def __init__(self, component: ConnectState[CallT]) -> None:
        super().__init__(component)
        self._connect = component

    @property
    def call(self) -> CallT | None:
        """The leg that answered (None if none did); it stays this Call after a disconnect or
        a hang-up, while the call's own ``peer`` is the leg it is bridged to now."""
        return self._connect.peer

    @property
    def reason(self) -> str | None:
        return self._connect.reason

    def __repr__(self) -> str:
        return (
            f"<ConnectResult successful={self.successful} call={self.call!r} "
            f"reason={self.reason!r}>"
        )


class DisconnectResult(Result):
    """Outcome of ``disconnect``: ``successful`` once the bridge has ended (both calls stay
    up)."""


class SendDigitsResult(Result):
    """Outcome of ``send_digits``: ``successful`` once every key has been played."""


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


@dataclass(frozen=True, slots=True)
class DialResult(Generic[CallT]):
    """Outcome of ``dial``: ``successful`` when the call was answered; ``call`` is the call
    (also when it failed: its ``end_reason``, ``busy`` and ``failed`` say how)."""

    successful: bool
    call: CallT
    event: Event | None = None
