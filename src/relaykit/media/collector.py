"""The prompt's input side: keys (and, later, speech) and timers in; collect results out.

A :class:`Collector` is a pure state machine. The engine feeds it detected keys, the end of the
prompt's media and the clock (``now`` is call-relative seconds on the media clock), and reads
back :class:`CollectOutput` values. Rules (protocol spec §5.1.2, issue notes):

* ``initial_timeout`` starts when the media finishes, unless input already began;
* ``digit_timeout`` restarts on every key; keys pressed during the media count;
* ``max`` digits end collection at once, with an empty terminator;
* a terminator key ends collection; it is reported in ``terminator``, not in ``digits``;
* ``stop()`` ends with ``no_input`` and reason ``stopped``; hang-up and media errors end with
  ``error``; in all three, whatever was captured rides along in the result params.

Speech: the engine reports voice activity per frame (:meth:`voice`). Speech starts input;
``end_silence_timeout`` of silence, or ``speech_timeout`` of speech, ends the utterance with
:class:`SpeechEnded`, and the engine hands the audio to a recogniser off the clock. Its answer
comes back through :meth:`recognized` (a ``speech`` result) or :meth:`not_recognized`
(``no_match``). In both mode the first key ends speech collection and digits win.
"""

from __future__ import annotations

__all__ = [
    "CollectOutput",
    "Collector",
    "InputStarted",
    "PartialResult",
    "PromptResultData",
    "SpeechEnded",
]

from dataclasses import dataclass, field
from typing import Any

from ..protocol.calling import Collect


@dataclass(frozen=True, slots=True)
class InputStarted:
    """Input began (first key or start of speech): barge-in and ``start_of_input``."""


@dataclass(frozen=True, slots=True)
class PartialResult:
    """An interim result while the caller is still speaking (``partial_results``)."""

    result_type: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PromptResultData:
    """The terminal result: ``result_type`` is digit, speech, no_input, no_match or error."""

    result_type: str
    params: dict[str, Any] | None
    reason: str


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """The utterance is over (``end_silence`` or ``speech_timeout``): recognise it now."""

    reason: str


CollectOutput = InputStarted | PartialResult | PromptResultData | SpeechEnded


@dataclass(slots=True)
class Collector:
    """A prompt's input side as a pure state machine; see the module docstring."""

    collect: Collect
    digits: str = ""
    input_started: bool = False
    media_done: bool = False
    result: PromptResultData | None = None
    speaking: bool = False  # an utterance is being captured
    recognizing: bool = False  # the utterance is with the recogniser
    speech_text: str = ""  # latest partial text
    _speech_started: float = 0.0
    _last_voice: float = 0.0
    _initial_deadline: float | None = None
    _digit_deadline: float | None = None
    _out: list[CollectOutput] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.result is not None

    @property
    def has_timer(self) -> bool:
        """A digit or initial timeout is armed (tick() can end the prompt)."""
        return self._digit_deadline is not None or self._initial_deadline is not None

    @property
    def next_deadline(self) -> float | None:
        """The call time at which :meth:`tick` may end the prompt; None while no timer is armed.

        The engine keeps it in an array over all calls and ticks a prompt only once it is due.
        """
        if self.done:
            return None
        digit, initial = self._digit_deadline, self._initial_deadline
        if initial is not None and self.input_started:
            initial = None
        if digit is None:
            return initial
        return digit if initial is None else min(digit, initial)

    # -- inputs -----------------------------------------------------------------------------
    def media_finished(self, now: float) -> list[CollectOutput]:
        if not self.done and not self.media_done:
            self.media_done = True
            if not self.input_started:
                self._initial_deadline = now + self.collect.initial_timeout
        return self._drain()

    def digit(self, key: str, now: float) -> list[CollectOutput]:
        spec = self.collect.digits
        if self.done or spec is None or self.recognizing:
            return self._drain()
        self.speaking = False  # a key ends speech collection (both mode)
        self.speech_text = ""
        self._begin_input()
        if key in spec.terminators:
            self._finish("digit", {"digits": self.digits, "terminator": key}, "terminator")
            return self._drain()
        self.digits += key
        if self.collect.partial_results:
            self._out.append(PartialResult("digit", {"digits": self.digits, "terminator": ""}))
        if spec.max is not None and len(self.digits) >= spec.max:
            self._finish("digit", {"digits": self.digits, "terminator": ""}, "max_digits")
        else:
            self._digit_deadline = now + spec.digit_timeout
        return self._drain()

    def voice(self, now: float, is_speech: bool) -> list[CollectOutput]:
        """Voice activity for this frame of the caller's audio."""
        spec = self.collect.speech
        if self.done or spec is None or self.recognizing or self.digits:
            return self._drain()
        if is_speech:
            if not self.speaking:
                self.speaking = True
                self._speech_started = now
                self._begin_input()
            self._last_voice = now
        if self.speaking:
            if now - self._speech_started >= spec.speech_timeout - 1e-9:
                self._end_speech("speech_timeout")
            elif now - self._last_voice >= spec.end_silence_timeout - 1e-9:
                self._end_speech("end_silence")
        return self._drain()

    def partial_text(self, text: str) -> list[CollectOutput]:
        """An interim hypothesis for the utterance being captured."""
        if (
            not self.done
            and (self.speaking or self.recognizing)
            and text
            and text != self.speech_text
        ):
            self.speech_text = text
            if self.collect.partial_results:
                self._out.append(PartialResult("speech", {"text": text}))
        return self._drain()

    def recognized(self, text: str, confidence: float, reason: str) -> list[CollectOutput]:
        if self.recognizing:
            self.recognizing = False
            self._finish("speech", {"text": text, "confidence": round(confidence, 1)}, reason)
        return self._drain()

    def not_recognized(self, reason: str) -> list[CollectOutput]:
        if self.recognizing:
            self.recognizing = False
            self._finish("no_match", None, reason)
        return self._drain()

    def _end_speech(self, reason: str) -> None:
        self.speaking = False
        self.recognizing = True
        self._out.append(SpeechEnded(reason))

    def tick(self, now: float) -> list[CollectOutput]:
        if self.done:
            return self._drain()
        if self._digit_deadline is not None and now >= self._digit_deadline - 1e-9:
            self._finish("digit", {"digits": self.digits, "terminator": ""}, "digit_timeout")
        elif (
            not self.input_started
            and self._initial_deadline is not None
            and now >= self._initial_deadline - 1e-9
        ):
            self._finish("no_input", None, "initial_timeout")
        return self._drain()

    def stop(self) -> list[CollectOutput]:
        self._finish("no_input", self._captured(), "stopped")
        return self._drain()

    def hangup(self) -> list[CollectOutput]:
        self._finish("error", self._captured(), "hangup")
        return self._drain()

    def fail(self, message: str) -> list[CollectOutput]:
        params = self._captured() or {}
        params["message"] = message
        self._finish("error", params, "error")
        return self._drain()

    # -- internals --------------------------------------------------------------------------
    def _begin_input(self) -> None:
        if not self.input_started:
            self.input_started = True
            self._initial_deadline = None
            self._out.append(InputStarted())

    def _captured(self) -> dict[str, Any] | None:
        if self.digits:
            return {"digits": self.digits, "terminator": ""}
        if self.speech_text:
            return {"text": self.speech_text}
        return None

    def _finish(self, result_type: str, params: dict[str, Any] | None, reason: str) -> None:
        if self.result is None:
            self.result = PromptResultData(result_type, params, reason)
            self._out.append(self.result)

    def _drain(self) -> list[CollectOutput]:
        out, self._out = self._out, []
        return out
