"""Which speech engine hears a prompt: pocketsphinx grammars, Whisper transcripts, own models.

:class:`SpeechEngines` holds the recognisers of one process (a speech worker, or the server
itself when it decodes in threads) and picks one per utterance:

* ``"pocketsphinx"``: the grammar recogniser (hints: one hint phrase, a digit string, or
  no match; no hints: the default IVR grammar, else pocketsphinx's open-vocabulary n-gram);
* ``"whisper"``: a free transcript (the optional ``relaykit[whisper]`` extra);
* ``"auto"`` (the default): pocketsphinx when the prompt has hints, Whisper when it has none
  and the extra is installed, pocketsphinx otherwise. With the extra, a hinted answer that
  pocketsphinx is not sure of (confidence under :data:`SECOND_OPINION_BELOW`), and every
  answer to a digit prompt, gets Whisper's second opinion (see :class:`SecondOpinion`).

:class:`SpeechConfig` says which engines and models a server uses; it is plain data, handed to
the worker processes as JSON. ``models`` maps a language tag to a pocketsphinx model directory
of one's own (see :class:`~relaykit.media.asr.PocketsphinxModel`). ``whisper_model`` names
the Whisper that does everything, for ``whisper_languages``: a bundled model (``"tiny.en"``,
the default; ``"base"``, the ``relaykit[whisper-base]`` extra, used by default only when it
alone is installed) or a CTranslate2 Whisper directory of one's own.
"""

from __future__ import annotations

__all__ = [
    "ENGINES",
    "SECOND_OPINION_BELOW",
    "SECOND_OPINION_FROM",
    "SecondOpinion",
    "SpeechConfig",
    "SpeechEngines",
]

import functools
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from relaykit.errors import MediaError, UnsupportedLanguageError
from relaykit.media.asr import (
    DEFAULT_MIN_CONFIDENCE,
    PocketsphinxModel,
    PocketsphinxRecognizer,
    PocketsphinxUtterance,
    RecognitionResult,
    Utterance,
)
from relaykit.media.whisper import (
    BASE,
    BASE_EXTRA_HINT,
    BUNDLED_MODELS,
    EXTRA_HINT,
    TINY_EN,
    WhisperRecognizer,
    model_installed,
    whisper_available,
)
from relaykit.protocol.calling import SPEECH_ENGINES as ENGINES


def _tag(language: str) -> str:
    return str(language).strip().replace("_", "-").lower()


@dataclass(frozen=True)
class SpeechConfig:
    """What a server recognises with (see the module docstring)."""

    engine: str = "auto"
    models: Mapping[str, str] = field(default_factory=dict)
    whisper_model: str | None = None
    whisper_languages: tuple[str, ...] = ("en-US",)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            choices = ", ".join(ENGINES)
            raise ValueError(f"speech engine must be one of {choices}; not {self.engine!r}")
        object.__setattr__(self, "models", dict(self.models))
        object.__setattr__(self, "whisper_languages", tuple(self.whisper_languages))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SpeechConfig:
        data: dict[str, Any] = json.loads(text)
        data["whisper_languages"] = tuple(data.get("whisper_languages") or ("en-US",))
        return cls(**data)


class SpeechEngines:
    """The recognisers of one process; ``open`` picks one per utterance (thread-safe)."""

    def __init__(self, config: SpeechConfig | None = None, *, min_confidence: float = 0.0) -> None:
        self.config = config or SpeechConfig()
        self.min_confidence = min_confidence
        self._lock = threading.Lock()
        self.pocketsphinx: dict[str, PocketsphinxRecognizer] = {
            "en-us": PocketsphinxRecognizer(min_confidence=min_confidence)
        }
        for language, directory in self.config.models.items():
            model = PocketsphinxModel.from_dir(directory)  # a bad directory fails here, early
            self.pocketsphinx[_tag(language)] = PocketsphinxRecognizer(
                min_confidence=min_confidence, model=model, languages=(language,)
            )
        self._whisper: WhisperRecognizer | None = None

    # -- what exists

    @property
    def whisper_installed(self) -> bool:
        chosen = self.config.whisper_model
        if chosen is None:
            return whisper_available()
        return model_installed(chosen) if chosen in BUNDLED_MODELS else True

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language some engine accepts."""
        tags = [lang for rec in self.pocketsphinx.values() for lang in rec.languages]
        if self.whisper_installed:
            tags += [t for t in self.config.whisper_languages if t not in tags]
        return tuple(dict.fromkeys(tags))

    def choose(self, engine: str | None, language: str, hints: tuple[str, ...]) -> str:
        """The engine that will hear an utterance: "pocketsphinx" or "whisper".

        Raises :class:`MediaError` (an unknown engine, Whisper asked for but not installed)
        or :class:`UnsupportedLanguageError`.
        """
        wanted = self.config.engine if engine in (None, "", "auto") else engine
        if wanted not in ENGINES:
            raise MediaError(f"speech engine must be one of {', '.join(ENGINES)}; not {engine!r}")
        whisper_ok = self.whisper_installed and self._whisper_accepts(language)
        if wanted == "whisper":
            if not self.whisper_installed:
                hint = BASE_EXTRA_HINT if self.config.whisper_model == BASE else EXTRA_HINT
                raise MediaError(f"the whisper speech engine is not installed; {hint}")
            if not whisper_ok:
                raise UnsupportedLanguageError(language, self.config.whisper_languages)
            return "whisper"
        if wanted == "auto" and not hints and whisper_ok:
            return "whisper"
        if self._pocketsphinx_for(language) is None:
            if wanted == "auto" and whisper_ok:
                return "whisper"
            raise UnsupportedLanguageError(language, self.languages)
        return "pocketsphinx"

    # -- recognising

    def open(
        self, *, engine: str | None = None, language: str = "en-US", hints: tuple[str, ...] = ()
    ) -> Utterance:
        chosen = self.choose(engine, language, hints)
        if chosen == "whisper":
            return self.whisper().open(language=language, hints=hints)
        recognizer = self._pocketsphinx_for(language)
        assert recognizer is not None  # choose() checked
        if (
            hints
            and engine in (None, "", "auto")
            and self.config.engine == "auto"
            and self.whisper_installed
            and self._whisper_accepts(language)
        ):
            # every grammar answer, however unsure, goes to the second opinion
            utterance = recognizer.open(language=language, hints=hints, min_confidence=0.0)
            whisper = self.whisper()
            code = _tag(language).split("-")[0]
            digits = utterance.grammar.digits
            return SecondOpinion(
                utterance,
                phrase=lambda audio, text: whisper.check_phrase(audio, code, text),
                digits=None
                if digits is None
                else functools.partial(whisper.transcribe, language=code, max_digits=digits[1]),
                min_confidence=recognizer.min_confidence,
            )
        return recognizer.open(language=language, hints=hints)

    @property
    def whisper_model(self) -> str:
        """The Whisper that hears: ``SpeechConfig.whisper_model``, else the bundled tiny.en
        (base when it alone is installed: on the benchmark base was no better overall for
        twice the CPU, see docs/speech.md)."""
        if self.config.whisper_model is not None:
            return self.config.whisper_model
        return BASE if model_installed(BASE) and not model_installed(TINY_EN) else TINY_EN

    def whisper(self) -> WhisperRecognizer:
        with self._lock:
            if self._whisper is None:
                chosen = self.whisper_model
                bundled = chosen in BUNDLED_MODELS
                self._whisper = WhisperRecognizer(
                    model_dir=None if bundled else chosen,
                    model=chosen if bundled else TINY_EN,
                    languages=self.config.whisper_languages,
                    min_confidence=self.min_confidence,
                )
            return self._whisper

    def warm_up(self) -> None:
        """Load pocketsphinx's US-English model now (Whisper loads on its first utterance)."""
        self.pocketsphinx["en-us"].warm_up()

    def _pocketsphinx_for(self, language: str) -> PocketsphinxRecognizer | None:
        wanted = _tag(language)
        exact = self.pocketsphinx.get(wanted)
        if exact is not None:
            return exact
        return next((r for r in self.pocketsphinx.values() if r.accepts(language)), None)

    def _whisper_accepts(self, language: str) -> bool:
        wanted = _tag(language)
        return bool(wanted) and any(
            wanted in (lang.lower(), lang.lower().split("-")[0])
            for lang in self.config.whisper_languages
        )


#: A hinted answer from pocketsphinx under this confidence is checked by Whisper …
SECOND_OPINION_BELOW = 50.0
#: … when it is at least this sure of it (a phrase; a digit string is heard again from 0).
SECOND_OPINION_FROM = 20.0


class SecondOpinion:
    """A hinted utterance: pocketsphinx's grammar first, Whisper when it is unsure.

    Whisper costs ~30 times pocketsphinx's CPU, so it runs only on answers under
    :data:`SECOND_OPINION_BELOW`, and on every answer to a prompt whose hints are all digit
    strings (rarer than menus, and where the grammar is often wrong with a high confidence):

    * a phrase (a menu word) that pocketsphinx gave at least :data:`SECOND_OPINION_FROM`:
      Whisper scores the phrase against what it would write itself (``check_phrase``); the
      answer takes that confidence if it is 50 or more, else the lower of the two;
    * a digit string, or nothing, on a digit prompt: pocketsphinx hears "eight" and "six" as
      "five" and "three" in many voices; Whisper, allowed to write nothing but digits
      (``digits``), reads them better but drops some. A Whisper answer the hints allow is
      merged with the grammar's (:func:`_fuse_digits`: Whisper's digits, the grammar's in
      Whisper's gaps); when the two agree the confidence is 1 − (1 − a)(1 − b), the chance
      that not both are wrong.
    """

    def __init__(
        self,
        grammar: PocketsphinxUtterance,
        *,
        phrase: Callable[[np.ndarray, str], RecognitionResult | None],
        digits: Callable[[np.ndarray], RecognitionResult | None] | None,
        min_confidence: float,
    ) -> None:
        self._grammar = grammar
        self._phrase = phrase
        self._digits = digits
        spec = grammar.grammar
        # a prompt whose hints are all digit strings: Whisper hears every answer
        self._digit_prompt = digits is not None and spec.digits is not None and not spec.phrases
        self._max_digits = spec.digits[1] if spec.digits else 0
        self.min_confidence = min_confidence
        self._done = False
        self._result: RecognitionResult | None = None

    def feed(self, samples: np.ndarray) -> None:
        self._grammar.feed(samples)

    def partial(self) -> str:
        return self._grammar.partial()

    def finish(self) -> RecognitionResult | None:
        if not self._done:
            audio = self._grammar.audio()  # before finish() lets the grammar's buffer go
            first = self._grammar.finish()
            if audio.size and (
                first is None or first.confidence < SECOND_OPINION_BELOW or self._digit_prompt
            ):
                first = self._judge(audio, first)
            if first is not None and first.confidence < self.min_confidence:
                first = None
            self._result = first
            self.close()
        return self._result

    def _judge(
        self, audio: np.ndarray, first: RecognitionResult | None
    ) -> RecognitionResult | None:
        if self._digits is not None and (first is None or first.text.isdigit()):
            second = self._digits(audio)
            if second is None:
                return first
            if first is None:
                return second
            if second.text == first.text:
                doubt = (1 - first.confidence / 100) * (1 - second.confidence / 100)
                return RecognitionResult(first.text, round(100 * (1 - doubt), 1))
            return _fuse_digits(first, second, self._max_digits)
        if first is None or first.confidence < SECOND_OPINION_FROM:
            return first
        check = self._phrase(audio, first.text)
        if check is None:
            return first
        if check.confidence >= DEFAULT_MIN_CONFIDENCE:
            return RecognitionResult(first.text, check.confidence)
        return RecognitionResult(first.text, min(first.confidence, check.confidence))

    def close(self) -> None:
        self._done = True
        self._grammar.close()

    def __enter__(self) -> SecondOpinion:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _aligned(a: str, b: str) -> list[tuple[str, str]]:
    """The two strings aligned by fewest edits: (char of a or "", char of b or "") pairs."""
    cost = [[i + j if not i or not j else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost[i][j] = min(
                cost[i - 1][j] + 1, cost[i][j - 1] + 1, cost[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
    pairs: list[tuple[str, str]] = []
    i, j = len(a), len(b)
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (a[i - 1] != b[j - 1]):
            pairs.append((a[i - 1], b[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            pairs.append((a[i - 1], ""))
            i -= 1
        else:
            pairs.append(("", b[j - 1]))
            j -= 1
    return pairs[::-1]


def _fuse_digits(
    grammar: RecognitionResult, whisper: RecognitionResult, max_digits: int
) -> RecognitionResult:
    """One digit string from two that differ: Whisper's digits, the grammar's where it has none.

    The two err differently: pocketsphinx hears a digit for every digit said but mistakes
    some ("eight" → "five", "six" → "three"); Whisper reads the digits it writes better but
    drops some, in noise most. Aligned, Whisper's digit wins a disagreement and the grammar's
    fills Whisper's gaps. On the benchmark (16 kHz) this read 89 % of digit strings right
    (tuning voices 88 %, held-out 90 %), against 73 % (pocketsphinx) and 81 % (Whisper)
    alone; letting a confident grammar (≥ 50 … 90) win disagreements instead read fewer.
    The confidence of a string mixed from both is the higher of the two.
    """
    fused = "".join(w or g for g, w in _aligned(grammar.text, whisper.text))
    if fused == whisper.text or len(fused) > max_digits:
        return whisper
    return RecognitionResult(fused, max(grammar.confidence, whisper.confidence))
