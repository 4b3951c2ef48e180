"""What ``expect_prompt`` compares, and the messages it fails with.

Text prompts (``tts``) carry their text, so matching them is a string comparison: case, accents,
punctuation and spacing are ignored (``contains="3-digit pin"`` matches "your 3 digit PIN,").

Audio files have no text. For them :func:`audio_says` asks the server's speech recogniser
whether the recording says a phrase. The recogniser works with grammars (it picks the best of
the phrases it is given, it cannot transcribe freely), so the recording is cut into stretches
between pauses, and each run of consecutive stretches is matched against a grammar of the
expected phrase *and* competing phrases (common IVR words, digits); the phrase counts as heard
only when it wins with a confidence of :data:`AUDIO_MIN_CONFIDENCE` or more.

Limits: the phrase must be a whole sentence or clause of the recording, as spoken between
pauses ("for sales, say sales" or "thank you for calling"); a single word in the middle of a
sentence ("PIN" in "please enter your PIN") is not found. US English only; words missing from
the pronunciation dictionary make the phrase unmatchable; recognising a recording takes about
0.05 s per stretch of speech (recordings longer than :data:`AUDIO_MAX_SECONDS` are cut).
"""

from __future__ import annotations

__all__ = [
    "AUDIO_MAX_SECONDS",
    "AUDIO_MIN_CONFIDENCE",
    "ExpectationError",
    "PromptMatcher",
    "audio_says",
    "normalize_text",
]

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import RelayError
from ..media.asr import DEFAULT_PHRASES, Recognizer, normalize_hint
from ..media.frames import SAMPLE_RATE

AUDIO_MIN_CONFIDENCE = 50.0  # 0–100; below this a recognised phrase does not count
AUDIO_MAX_SECONDS = 30.0  # audio recognised per item
_LEVEL_FRAME = SAMPLE_RATE // 100  # 10 ms
_MIN_PAUSE = 0.12  # seconds of quiet that separate two stretches of speech
_PAD = 0.2  # seconds of context kept around a run of stretches
_MAX_RUN_SECONDS = 15.0
_MAX_DECODES = 60
# Competitors in the grammar: with the expected phrase alone, any speech is forced onto it.
_COMPETITORS: tuple[str, ...] = (
    *DEFAULT_PHRASES,
    "0123456789",
    "1",
    *(
        "the", "a", "to", "and", "for", "you", "your", "is", "it", "please", "press", "say",
        "thank", "welcome", "call", "calling", "again", "hear", "enter", "menu", "goodbye",
        "hello", "one", "two", "star", "pound",
    ),
)  # fmt: skip


class ExpectationError(RelayError, AssertionError):
    """An ``expect_*`` wait of the virtual caller did not see what it waited for.

    The message says what was expected and lists, with call times, what happened instead.
    It is an :class:`AssertionError`, so pytest reports a failed test, not an error.
    """


def normalize_text(text: str) -> str:
    """Lower case, accents folded, punctuation as spaces: "PIN, then" → "pin then"."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", folded).split())


@dataclass(frozen=True, slots=True)
class PromptMatcher:
    """What an ``expect_prompt`` call looks for; at least one criterion is set."""

    contains: str | None = None
    matches: re.Pattern[str] | None = None
    url: str | None = None

    @classmethod
    def build(
        cls, contains: str | None, matches: str | re.Pattern[str] | None, url: str | None
    ) -> PromptMatcher:
        if contains is None and matches is None and url is None:
            raise ValueError("expect_prompt needs contains=, matches= or url=")
        if contains is not None and not normalize_text(contains):
            raise ValueError(f"contains={contains!r} has no letters or digits to look for")
        pattern = re.compile(matches, re.IGNORECASE) if isinstance(matches, str) else matches
        return cls(contains, pattern, url)

    def describe(self) -> str:
        parts = []
        if self.contains is not None:
            parts.append(f"contains={self.contains!r}")
        if self.matches is not None:
            parts.append(f"matches={self.matches.pattern!r}")
        if self.url is not None:
            parts.append(f"url={self.url!r}")
        return ", ".join(parts)

    @property
    def phrase(self) -> str | None:
        """The phrase an audio file must say (only ``contains`` can be recognised)."""
        return self.contains

    def text_matches(self, text: str) -> bool:
        """Whether a known text (a TTS prompt) satisfies the text criteria."""
        if self.url is not None:
            return False
        if self.contains is not None and normalize_text(self.contains) not in normalize_text(text):
            return False
        return not (self.matches is not None and not self.matches.search(text))

    def url_matches(self, url: str) -> bool | None:
        """True/False when ``url=`` decides; None when only the audio's words can."""
        if self.url is None:
            return None
        return self.url in url


def _stretches(pcm: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) sample indexes of speech separated by pauses of at least _MIN_PAUSE."""
    n = len(pcm) // _LEVEL_FRAME
    if n == 0:
        return []
    frames = pcm[: n * _LEVEL_FRAME].astype(np.float32).reshape(n, _LEVEL_FRAME)
    level = 10.0 * np.log10(np.mean(frames * frames, axis=1) / 32768.0**2 + 1e-12)
    loud = np.flatnonzero(level > max(float(level.max()) - 35.0, -55.0))
    if len(loud) == 0:
        return []
    gap = round(_MIN_PAUSE * 100)
    spans: list[tuple[int, int]] = []
    start = prev = int(loud[0])
    for i in loud[1:]:
        if i - prev > gap:
            spans.append((start, prev + 1))
            start = int(i)
        prev = int(i)
    spans.append((start, prev + 1))
    return [(a * _LEVEL_FRAME, b * _LEVEL_FRAME) for a, b in spans]


def audio_says(
    recognizer: Recognizer,
    samples: np.ndarray,
    phrase: str,
    *,
    language: str = "en-US",
    min_confidence: float = AUDIO_MIN_CONFIDENCE,
) -> float | None:
    """Confidence (0–100) that ``samples`` say ``phrase`` as a sentence or clause, else None.

    Synchronous and CPU-bound (about 0.05 s per decode); see the module docstring for the
    method and its limits.
    """
    pcm = np.asarray(samples, dtype=np.int16)[: round(AUDIO_MAX_SECONDS * SAMPLE_RATE)]
    wanted = normalize_hint(phrase)[0]
    if not wanted:
        return None
    hints: Sequence[str] = [phrase, *(c for c in _COMPETITORS if normalize_hint(c)[0] != wanted)]
    spans = _stretches(pcm)
    pad = round(_PAD * SAMPLE_RATE)
    decodes = 0
    best: float | None = None
    for i in range(len(spans)):
        for j in range(i, len(spans)):
            a, b = spans[i][0], spans[j][1]
            if b - a > _MAX_RUN_SECONDS * SAMPLE_RATE or decodes >= _MAX_DECODES:
                break
            decodes += 1
            utterance = recognizer.open(language=language, hints=hints)
            try:
                utterance.feed(pcm[max(0, a - pad) : min(len(pcm), b + pad)])
                result = utterance.finish()
            finally:
                utterance.close()
            if result is not None and result.text == wanted and result.confidence >= min_confidence:
                best = max(best or 0.0, result.confidence)
                if best >= 90.0:
                    return best
    return best
