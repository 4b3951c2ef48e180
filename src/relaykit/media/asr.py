"""Speech recognition for prompts that collect speech: an engine interface, pocketsphinx engine.

Interface
    A :class:`Recognizer` opens one :class:`Utterance` per speech collection. The caller feeds
    16 kHz int16 audio in chunks of any size (``feed``), may poll ``partial()``, and ends with
    ``finish()``: a :class:`RecognitionResult` (text, confidence 0–100 as RELAY reports it) or
    ``None`` when nothing usable was heard (the prompt then reports ``no_match``). Sans-I/O and
    synchronous; run ``finish()`` in a worker thread (CPU time: ~20 ms for a word, ~75 ms
    for a 5 s sentence, ~0.3 s for the 30 s maximum).

Method (:class:`PocketsphinxRecognizer`)
    pocketsphinx 5 with its bundled US-English acoustic model, in *grammar* (JSGF) mode: the
    bundled n-gram language model returns nonsense on synthetic (espeak) voices, a small grammar
    does well. An utterance only buffers audio; ``finish()`` decodes the buffer in one pass
    (batch cepstral mean normalisation, better than live normalisation on short utterances):

    1. The buffer is trimmed to its loud part plus 0.3 s each side ("loud": 10 ms frames 12 dB
       above the 10th-percentile level and above -55 dBFS), and a fixed, seeded dither at
       -55 dBFS is added. Digital silence (exact zeros, as in TTS or decoded G.711 audio) upsets
       the acoustic model: on our test voice the dither alone took 9/17 words to 17/17.
       A buffer with no loud frame (silence, steady noise) gives ``None`` without decoding.
    2. The grammar (see below) is decoded with a word insertion penalty of 0.01 (pocketsphinx's
       0.65 appends stray digits: digit strings went from 47 % to 65 % right), from a freshly
       reset front end, so a result depends only on its own audio (the cepstral-mean and noise
       estimates otherwise carry over from the previous utterance and shift the scores).
    3. ``confidence = 100 × posterior × coverage × fit``, three factors in 0..1:
       *posterior*, the smallest lattice posterior of the recognised words (``Segment.prob``);
       *coverage*, the share of loud frames that fall inside recognised words, mapped linearly
       from 0.4 (→ 0) to 0.8 (→ 1) — a sentence forced onto a one-word grammar leaves most of
       its speech unexplained; *fit*, a logistic of the words' mean acoustic log-score per
       frame (``Segment.ascore`` is relative to the best senone of each frame, i.e. against an
       unconstrained phone match), 0.5 at -6.5 nats/frame. Results below ``min_confidence``
       (default 20) become ``None``.

Grammar
    With ``hints`` the utterance must be exactly **one** hint phrase or — when some hint is a
    digit string — a sequence of single digits (zero…nine; "oh" is not accepted, it is too
    easily confused with "no") whose length lies between the shortest and the longest digit
    hint. Hints are normalised: accents folded, lower-cased, punctuation dropped, digits spoken
    one by one ("Press 1!" is heard as "press one"). Without hints (or if no hint is usable) a
    default grammar is used: 1–20 digits, yes/no and common IVR words (:data:`DEFAULT_PHRASES`).

    Result text: digit sequences come back as digit strings ("427"); any other match as the
    normalised hint ("Sales" → "sales", "Press 1!" → "press 1").

    A word missing from the CMU pronunciation dictionary is split into dictionary words when it
    can be ("signalwire" → "signal wire"); otherwise its phrase is dropped with a logged warning.

Limits
    US English only. There is no garbage model, so short out-of-grammar words ("what",
    "hello") are often taken for a similar-sounding hint with a high confidence; longer
    out-of-grammar speech is rejected through *coverage*. (A phone-loop garbage path inside
    the grammar was tried: it either beat every real word or never fired.) On espeak audio
    menu words and most digits are recognised reliably; "seven", "five" (female voice) and
    some words on 8 kHz telephone-band audio are not. The decoder holds the GIL while
    decoding, so one decoder per recognizer behind a lock is all that pays off.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_PHRASES",
    "DIGIT_WORDS",
    "Grammar",
    "PocketsphinxRecognizer",
    "PocketsphinxUtterance",
    "RecognitionResult",
    "Recognizer",
    "Utterance",
    "build_grammar",
    "normalize_hint",
]

import hashlib
import logging
import math
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from relaykit.errors import MediaError, UnsupportedLanguageError
from relaykit.media.frames import SAMPLE_RATE

log = logging.getLogger(__name__)

DIGIT_WORDS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
)  # fmt: skip
_WORD_TO_DIGIT = {w: str(i) for i, w in enumerate(DIGIT_WORDS)}

#: Phrases of the default grammar (used when a prompt gives no hints), besides digit strings.
DEFAULT_PHRASES: tuple[str, ...] = (
    "yes", "no", "sales", "support", "billing", "operator", "agent", "representative",
    "help", "cancel", "repeat", "main menu", "account", "balance", "payment",
    "technical support", "customer service",
)  # fmt: skip
_DEFAULT_DIGITS = (1, 20)


@dataclass(frozen=True, slots=True)
class RecognitionResult:
    """What was heard: ``text`` and RELAY's ``confidence`` on a 0–100 scale."""

    text: str
    confidence: float


@runtime_checkable
class Utterance(Protocol):
    """One speech collection: feed audio, then finish exactly once."""

    def feed(self, samples: np.ndarray) -> None:
        """Append int16 16 kHz mono samples (any length, may be empty)."""
        ...

    def partial(self) -> str:
        """Current best guess of the text ("" if none yet); cheap to call often."""
        ...

    def finish(self) -> RecognitionResult | None:
        """Final result, or None when nothing usable was recognised (→ ``no_match``)."""
        ...

    def close(self) -> None:
        """Release resources; idempotent, and implied by ``finish``."""
        ...


@runtime_checkable
class Recognizer(Protocol):
    """A speech-to-text engine. Implementations must be safe to use from several threads."""

    @property
    def languages(self) -> tuple[str, ...]:
        """BCP-47 tags this engine accepts, e.g. ``("en-US",)``."""
        ...

    def open(self, *, language: str = "en-US", hints: Sequence[str] = ()) -> Utterance:
        """Start an utterance; raises :class:`UnsupportedLanguageError` for other languages."""
        ...


# --------------------------------------------------------------------------- grammar

_TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)*|\d")


def normalize_hint(hint: str) -> tuple[str, tuple[str, ...]]:
    """``(display text, spoken tokens)`` of a hint: "Press 1!" → ("press 1", ("press", "one")).

    Folds accents, lower-cases, keeps letters, in-word apostrophes and digits; a digit run is
    spoken digit by digit but displayed as written ("427" stays one token in the display text).
    """
    # "Café" → "cafe": the dictionary is ASCII
    ascii_text = unicodedata.normalize("NFKD", hint).encode("ascii", "ignore").decode()
    parts = re.findall(r"[a-z]+(?:'[a-z]+)*|\d+", ascii_text.lower())
    spoken = tuple(
        DIGIT_WORDS[int(t)] if t.isdigit() else t for t in _TOKEN_RE.findall(" ".join(parts))
    )
    return " ".join(parts), spoken


@dataclass(frozen=True, slots=True)
class Grammar:
    """A compiled hint set: the JSGF text and how to turn a word sequence back into text."""

    key: str  # stable name for the decoder's search table
    jsgf: str
    phrases: dict[tuple[str, ...], str]  # dictionary-word sequence → result text
    digits: tuple[int, int] | None  # (min, max) digits accepted, or None

    def text_for(self, words: Sequence[str]) -> str | None:
        """Result text for a recognised word sequence, or None if the grammar cannot produce it."""
        words = tuple(words)
        if not words:
            return None
        if self.digits and all(w in _WORD_TO_DIGIT for w in words):
            return "".join(_WORD_TO_DIGIT[w] for w in words)
        return self.phrases.get(words)


def _split_compound(
    word: str, known: Callable[[str], bool], max_parts: int = 3
) -> list[str] | None:
    """Split an unknown word into the fewest dictionary words ("signalwire" → signal wire)."""
    n = len(word)
    if n > 40:
        return None
    # best[i] = fewest-parts split of word[:i]; parts shorter than 2 letters are not allowed
    best: list[list[str] | None] = [None] * (n + 1)
    best[0] = []
    for i in range(2, n + 1):
        for j in range(0, i - 1):
            prev = best[j]
            if prev is None or len(prev) >= max_parts:
                continue
            piece = word[j:i]
            if known(piece) and (best[i] is None or len(prev) + 1 < len(best[i])):  # type: ignore[arg-type]
                best[i] = [*prev, piece]
    return best[n]


def build_grammar(hints: Sequence[str], known: Callable[[str], bool]) -> Grammar:
    """Compile ``hints`` (see the module docstring); ``known(word)`` tells dictionary words.

    Empty hints, or hints none of which can be pronounced, give the default grammar.
    """
    phrases: dict[tuple[str, ...], str] = {}
    digit_lengths: list[int] = []
    for hint in hints:
        display, spoken = normalize_hint(str(hint))
        if not spoken:
            continue
        if all(w in _WORD_TO_DIGIT for w in spoken) and display.replace(" ", "").isdigit():
            digit_lengths.append(len(spoken))
            continue
        words: list[str] = []
        for w in spoken:
            if known(w):
                words.append(w)
            elif (parts := _split_compound(w, known)) is not None:
                words.extend(parts)
            else:
                log.warning(
                    "speech hint %r dropped: %r is not in the pronunciation dictionary", hint, w
                )
                words = []
                break
        if words:
            phrases.setdefault(tuple(words), display)
    if phrases or digit_lengths:
        digits = (min(digit_lengths), max(digit_lengths)) if digit_lengths else None
    else:
        if hints:
            log.warning("no usable speech hint in %r; using the default grammar", list(hints))
        phrases = {normalize_hint(p)[1]: p for p in DEFAULT_PHRASES}
        digits = _DEFAULT_DIGITS

    alts = [" ".join(p) for p in phrases]
    rules = ""
    if digits:
        lo, hi = digits
        # <d> repeated lo times, then (hi - lo) nested optionals: "<d> <d> [<d> [<d>]]"
        seq = " ".join(["<d>"] * lo) + " [<d>" * (hi - lo) + "]" * (hi - lo)
        alts.append("<digits>")
        rules = f" <digits> = {seq}; <d> = {' | '.join(DIGIT_WORDS)};"
    jsgf = f"#JSGF V1.0; grammar relaykit; public <utt> = {' | '.join(alts)};{rules}"
    key = "g" + hashlib.sha1(jsgf.encode()).hexdigest()[:16]
    return Grammar(key=key, jsgf=jsgf, phrases=phrases, digits=digits)


# --------------------------------------------------------------------------- decoding

_FRAME = SAMPLE_RATE // 100  # pocketsphinx analyses 10 ms frames
_WORD_PENALTY = 0.01  # word insertion penalty; pocketsphinx's 0.65 adds stray digits
_DITHER_DB = -55.0
_FLOOR_PERCENTILE = 10
_LOUD_DB = 12.0  # "loud" frames: this much above the noise floor …
_MIN_LOUD_DBFS = -55.0  # … and never quieter than this
_KEEP_SECONDS = 0.3  # silence kept around the loud region when trimming
_COVERAGE_ZERO, _COVERAGE_FULL = 0.4, 0.8
_FIT_MID, _FIT_SLOPE = -6.5, 1.5  # nats per 10 ms frame


def _frame_levels(pcm: np.ndarray) -> np.ndarray:
    """dBFS level of each 10 ms frame."""
    n = len(pcm) // _FRAME
    frames = pcm[: n * _FRAME].astype(np.float32).reshape(n, _FRAME)
    power = np.mean(frames * frames, axis=1) / (32768.0 * 32768.0)
    levels: np.ndarray = 10.0 * np.log10(power + 1e-12)
    return levels


def _loud_frames(levels: np.ndarray) -> np.ndarray:
    if len(levels) == 0:
        return np.zeros(0, dtype=bool)
    floor = float(np.percentile(levels, _FLOOR_PERCENTILE))
    return levels > max(floor + _LOUD_DB, _MIN_LOUD_DBFS)


@dataclass(frozen=True, slots=True)
class _Decoded:
    """Raw outcome of one decode, kept for confidence and diagnostics."""

    words: tuple[str, ...]
    posterior: float  # min word posterior, 0..1
    coverage: float  # loud frames inside words / loud frames, 0..1
    fit: float  # mean log acoustic score per frame of the words (≤ 0)
    text: str | None
    confidence: float


def _prepare(pcm: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Trim long silence, add dither; return (audio, loud-frame mask) or None if nothing loud."""
    loud = _loud_frames(_frame_levels(pcm))
    idx = np.flatnonzero(loud)
    if len(idx) == 0:
        return None
    keep = round(_KEEP_SECONDS * 100)
    first = max(0, int(idx[0]) - keep)
    last = min(len(loud), int(idx[-1]) + 1 + keep)
    audio = pcm[first * _FRAME : last * _FRAME].astype(np.float32)
    rng = np.random.default_rng(0x5EED)  # fixed: same audio → same result
    audio += rng.standard_normal(len(audio), dtype=np.float32) * (32768.0 * 10 ** (_DITHER_DB / 20))
    return np.clip(np.rint(audio), -32768, 32767).astype(np.int16), loud[first:last]


def _score(
    segments: Sequence[Any], loud: np.ndarray
) -> tuple[tuple[str, ...], float, float, float]:
    """(words, min posterior, coverage, acoustic fit) from pocketsphinx segments."""
    words: list[str] = []
    posterior = 1.0
    log_ascore = 0.0
    n_frames = 0
    inside = np.zeros(len(loud), dtype=bool)
    for seg in segments:
        w: str = seg.word
        if w.startswith(("<", "[", "+")):  # <s>, </s>, <sil>, [NOISE], +SPN+ …
            continue
        words.append(w.split("(", 1)[0])  # "word(2)" = alternate pronunciation
        posterior = min(posterior, float(seg.prob))
        # ascore is exp(acoustic log-likelihood relative to the best senone of each frame);
        # it underflows to 0.0 only for very poor, long matches
        log_ascore += math.log(seg.ascore) if seg.ascore > 0 else -math.inf
        n_frames += seg.end_frame - seg.start_frame + 1
        inside[max(0, seg.start_frame) : seg.end_frame + 1] = True
    n_loud = int(loud.sum())
    coverage = float((inside & loud).sum() / n_loud) if n_loud else 0.0
    fit = log_ascore / n_frames if n_frames else -math.inf
    return tuple(words), posterior, coverage, fit


def _confidence(posterior: float, coverage: float, fit: float) -> float:
    """100 × posterior × coverage factor × acoustic-fit factor, each factor in 0..1."""
    span = _COVERAGE_FULL - _COVERAGE_ZERO
    cov = min(1.0, max(0.0, (coverage - _COVERAGE_ZERO) / span))
    # logistic on the per-frame log score: 0.5 at _FIT_MID, ~0.95 two nats better
    acoustic = 1.0 / (1.0 + math.exp(-_FIT_SLOPE * (fit - _FIT_MID))) if fit > -1e9 else 0.0
    value = 100.0 * min(1.0, max(0.0, posterior)) * cov * acoustic
    return 0.0 if math.isnan(value) else round(value, 1)


class PocketsphinxRecognizer:
    """US-English grammar recogniser on pocketsphinx (see the module docstring).

    One decoder (acoustic model + dictionary, ~0.12 s to load, on first use or ``warm_up()``)
    per recognizer; a lock serialises decodes and grammars are kept in an LRU of
    ``grammar_cache`` entries, so the object may be shared by worker threads (each
    :class:`PocketsphinxUtterance` by one thread at a time). ``min_confidence`` (0–100):
    results below it are reported as None. ``max_seconds``: audio beyond this much per
    utterance is ignored. ``partial_interval``: ``partial()`` re-decodes at most once per this
    much new audio.
    """

    languages: tuple[str, ...] = ("en-US",)

    def __init__(
        self,
        *,
        min_confidence: float = 20.0,
        grammar_cache: int = 16,
        max_seconds: float = 30.0,
        partial_interval: float = 0.3,
    ) -> None:
        self.min_confidence = float(min_confidence)
        self.max_samples = round(max_seconds * SAMPLE_RATE)
        self.partial_samples = round(partial_interval * SAMPLE_RATE)
        self._grammar_cache = max(1, grammar_cache)
        self._lock = threading.RLock()
        self._decoder: Any = None
        self._grammars: OrderedDict[tuple[str, ...], Grammar] = OrderedDict()
        self._searches: OrderedDict[str, None] = OrderedDict()  # grammar keys loaded in decoder
        self._known: dict[str, bool] = {}

    # -- public API

    def open(self, *, language: str = "en-US", hints: Sequence[str] = ()) -> PocketsphinxUtterance:
        if str(language).strip().replace("_", "-").lower() not in ("en-us", "en"):
            raise UnsupportedLanguageError(language, self.languages)
        if isinstance(hints, str):
            hints = (hints,)
        return PocketsphinxUtterance(self, self.grammar(hints))

    def grammar(self, hints: Sequence[str] = ()) -> Grammar:
        """The compiled grammar for ``hints`` (cached)."""
        key = tuple(str(h) for h in hints)
        with self._lock:
            cached = self._grammars.get(key)
            if cached is not None:
                self._grammars.move_to_end(key)
                return cached
            grammar = build_grammar(key, self._is_known)
            self._grammars[key] = grammar
            if len(self._grammars) > 4 * self._grammar_cache:
                self._grammars.popitem(last=False)
            return grammar

    def warm_up(self) -> None:
        """Load the acoustic model now instead of on first use."""
        with self._lock:
            self._get_decoder()

    # -- internals

    def _get_decoder(self) -> Any:
        if self._decoder is None:
            from pocketsphinx import Decoder  # deferred: importing loads a native library

            try:
                # lm=None: grammar searches only (the n-gram LM is big and useless here)
                self._decoder = Decoder(
                    lm=None, samprate=SAMPLE_RATE, wip=_WORD_PENALTY, loglevel="FATAL"
                )
            except Exception as exc:  # a broken install; name it instead of a bare RuntimeError
                raise MediaError(f"cannot start the pocketsphinx decoder: {exc}") from exc
        return self._decoder

    def _is_known(self, word: str) -> bool:
        with self._lock:
            hit = self._known.get(word)
            if hit is None:
                hit = self._get_decoder().lookup_word(word) is not None
                if len(self._known) > 50_000:
                    self._known.clear()
                self._known[word] = hit
            return hit

    def _activate(self, grammar: Grammar) -> None:
        """Make ``grammar`` the active search (caller holds the lock)."""
        decoder = self._get_decoder()
        if grammar.key in self._searches:
            self._searches.move_to_end(grammar.key)
        else:
            try:
                decoder.add_jsgf_string(grammar.key, grammar.jsgf)
            except ValueError as exc:  # only words from the dictionary get here; a bug if hit
                raise MediaError(f"pocketsphinx rejected the speech grammar: {exc}") from exc
            self._searches[grammar.key] = None
            while len(self._searches) > self._grammar_cache:
                old, _ = self._searches.popitem(last=False)
                decoder.remove_search(old)
        decoder.activate_search(grammar.key)

    def _decode(self, pcm: np.ndarray, grammar: Grammar) -> _Decoded | None:
        """Decode a whole buffer; None when it holds nothing louder than its noise floor."""
        prepared = _prepare(pcm)
        if prepared is None:
            return None
        audio, loud = prepared
        with self._lock:
            decoder = self._get_decoder()
            self._activate(grammar)
            # feature state (cepstral mean prior, noise estimate) carries over between
            # utterances; a fresh front end (~0.1 ms) makes each result depend on its own
            # audio only, not on what this decoder heard before
            decoder.reinit_feat()
            decoder.start_utt()
            try:
                decoder.process_raw(audio.tobytes(), full_utt=True)
            finally:
                decoder.end_utt()
            segments = list(decoder.seg() or ())
        words, posterior, coverage, fit = _score(segments, loud)
        text = grammar.text_for(words)
        confidence = _confidence(posterior, coverage, fit) if text is not None else 0.0
        return _Decoded(words, posterior, coverage, fit, text, confidence)


class PocketsphinxUtterance:
    """An utterance of :class:`PocketsphinxRecognizer`: buffers audio, decodes on demand."""

    def __init__(self, recognizer: PocketsphinxRecognizer, grammar: Grammar) -> None:
        self.grammar = grammar
        self._rec = recognizer
        self._chunks: list[np.ndarray] = []
        self._n = 0
        self._partial = ""
        self._partial_at = 0  # buffer length at the last partial decode
        self._done = False
        self._result: RecognitionResult | None = None

    def feed(self, samples: np.ndarray) -> None:
        if self._done:
            raise MediaError("utterance already finished")
        pcm = np.asarray(samples)
        if pcm.dtype != np.int16:
            raise TypeError(f"expected int16 samples, got {pcm.dtype}")
        room = self._rec.max_samples - self._n
        if room <= 0 or pcm.size == 0:
            return
        pcm = pcm.reshape(-1)[:room].copy()
        self._chunks.append(pcm)
        self._n += len(pcm)

    def _buffer(self) -> np.ndarray:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else np.zeros(0, dtype=np.int16)

    def partial(self) -> str:
        """Best guess so far; re-decodes at most every ``partial_interval`` of new audio."""
        if self._done:
            return self._result.text if self._result else ""
        if self._n - self._partial_at >= self._rec.partial_samples:
            self._partial_at = self._n
            decoded = self._rec._decode(self._buffer(), self.grammar)
            self._partial = (decoded.text or "") if decoded else ""
        return self._partial

    def finish(self) -> RecognitionResult | None:
        if not self._done:
            decoded = self._rec._decode(self._buffer(), self.grammar) if self._n else None
            if (
                decoded is not None
                and decoded.text is not None
                and decoded.confidence >= self._rec.min_confidence
            ):
                self._result = RecognitionResult(decoded.text, decoded.confidence)
            self.close()
        return self._result

    def close(self) -> None:
        self._done = True
        self._chunks = []

    def __enter__(self) -> PocketsphinxUtterance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
