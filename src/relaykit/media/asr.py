"""Speech recognition for prompts that collect speech: an engine interface, pocketsphinx engine.

See docs/speech.md for the engines a server chooses between and their measured accuracy.

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
       above the 10th-percentile level and above -55 dBFS), and fixed, seeded white noise is
       added until the noise floor is 15 dB under the median speech level (at least -55 dBFS).
       Digital silence (exact zeros, as in TTS or decoded G.711 audio) upsets the acoustic
       model (a -55 dBFS dither alone took our test voice from 9/17 words to 17/17), and clean
       or µ-law speech decodes worse than speech over a steady floor (8 kHz menu words: 69 %
       → 81 % on ``benchmarks/speech``). Speech less than 15 dB above its noise floor (loud
       noise) goes through :func:`suppress_noise`, a Wiener filter, first and then gets a
       floor 20 dB under it (menu words at 10 dB SNR: 28 % → 100 % at 16 kHz, 17 % → 78 % at
       8 kHz, on held-out voices). A buffer with no loud frame (silence, steady noise) gives
       ``None`` without decoding. Under a grammar of digit strings alone the floor is pink
       noise, not white: white noise sounds like the "f" of "five", and the grammar took the
       floor before the first digit for it ("eight one four seven" → "5147").
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
       unconstrained phone match), 0.5 at -6.5 nats/frame. The product is calibrated on
       ``benchmarks/speech`` (raw 70 → 50) so that :data:`DEFAULT_MIN_CONFIDENCE` (50)
       separates right from wrong answers; results below ``min_confidence`` become ``None``.

Grammar
    With ``hints`` the utterance must be exactly **one** hint phrase or — when some hint is a
    number or spoken digits ("1234", "four two seven") — a sequence of single digits
    (zero…nine; "oh" is not accepted, it is too easily confused with "no") of one digit up to
    as many as the longest digit hint. Hints are normalised: accents folded, lower-cased,
    punctuation dropped, digits spoken one by one ("Press 1!" is heard as "press one").
    Without hints (or if no hint is usable) a default grammar is used: 1–20 digits, yes/no
    and common IVR words (:data:`DEFAULT_PHRASES`);
    without hints, audio that grammar does not explain with confidence 50 is decoded again
    with the model's n-gram language model (open vocabulary, mean word posterior, its own
    calibration: raw 15 → 50), for prompts that ask an open question.

    Result text: digit sequences come back as digit strings ("427"); any other match as the
    normalised hint ("Sales" → "sales", "Press 1!" → "press 1").

    A word missing from the CMU pronunciation dictionary is split into dictionary words when it
    can be ("signalwire" → "signal wire"); otherwise its phrase is dropped with a logged warning.

Limits
    US English with the bundled model (others with a :class:`PocketsphinxModel` directory).
    There is no garbage model: rejection is the confidence threshold (87 % of off-menu words
    on the benchmark), and a short word that sounds like a hint ("hello" → "billing") can
    still win with a high confidence. Garbage paths inside the grammar were measured and
    dropped: a phone loop either beat every real word or never fired, and common English
    filler words as an alternative took the menu words too (31 % right). Digit strings are
    weak ("eight", "six"), and so is 8 kHz audio; with the whisper extra, a server has Whisper
    check the menu answers this recogniser is unsure of and hear every digit answer too
    (:mod:`relaykit.media.engines`); see
    docs/speech.md for the figures. The decoder holds the GIL while
    decoding, so one decoder per recognizer behind a lock is all that pays off.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "DEFAULT_PHRASES",
    "DIGIT_WORDS",
    "Grammar",
    "PocketsphinxModel",
    "PocketsphinxRecognizer",
    "PocketsphinxUtterance",
    "RecognitionResult",
    "Recognizer",
    "Utterance",
    "build_grammar",
    "calibrate",
    "digits_as_text",
    "normalize_hint",
    "suppress_noise",
    "trim",
]

import hashlib
import itertools
import logging
import math
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

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

#: Results below this confidence are ``no_match`` unless a prompt or the server says otherwise.
#: Confidences are calibrated on the speech benchmark (``benchmarks/speech``): at 50, answers
#: that are right keep 95 % of the time or more, and most wrong ones fall below.
DEFAULT_MIN_CONFIDENCE = 50.0


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

    A hint that is a number ("1234") or spoken digits ("four two seven") opens a digit
    sequence of one digit up to as many as the longest such hint. Empty hints, or hints none of
    which can be pronounced, give the default grammar.
    """
    phrases: dict[tuple[str, ...], str] = {}
    digit_lengths: list[int] = []
    for hint in hints:
        display, spoken = normalize_hint(str(hint))
        if not spoken:
            continue
        if all(w in _WORD_TO_DIGIT for w in spoken):
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
        # a caller may say fewer digits than a hint shows ("421" for a "1234" PIN hint); on the
        # benchmark, 1..longest was as accurate as exactly the hint's length (52 % vs 51 %)
        digits = (1, max(digit_lengths)) if digit_lengths else None
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
_FLOOR_BELOW_SPEECH_DB = 15.0  # noise is added until the floor is this far under the speech
_NOISY_DB = 15.0  # speech less than this far above the floor is noise-suppressed first …
_FLOOR_BELOW_CLEANED_DB = 20.0  # … and then gets a floor this far under it
_STFT, _STFT_HOP = 512, 128  # noise suppression: 32 ms frames, 8 ms apart
_DD_ALPHA = 0.98  # decision-directed smoothing of the a priori SNR
_SUPPRESS_FLOOR = 0.1  # smallest gain (-20 dB)
_KEEP_SECONDS = 0.3  # silence kept around the loud region when trimming
_COVERAGE_ZERO, _COVERAGE_FULL = 0.4, 0.8
_FIT_MID, _FIT_SLOPE = -6.5, 1.5  # nats per 10 ms frame
Calibration = tuple[tuple[float, float], ...]
# raw score → calibrated confidence: (raw, confidence) knots, linear between; fitted on the
# speech benchmark so that DEFAULT_MIN_CONFIDENCE keeps >= 95 % of right menu answers
_CALIBRATION = ((0.0, 0.0), (70.0, 50.0), (100.0, 100.0))
# open-vocabulary transcripts (mean word posterior): a raw 15 kept 91 % of the benchmark's
# transcripts with a WER of 25 % or less
_OPEN_CALIBRATION = ((0.0, 0.0), (15.0, 50.0), (100.0, 100.0))


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


def trim(pcm: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    """``(audio, loud mask, floor dB, speech dB)``: the loud part plus 0.3 s each side.

    None when nothing is louder than the noise floor (silence, steady noise).
    """
    levels = _frame_levels(pcm)
    loud = _loud_frames(levels)
    idx = np.flatnonzero(loud)
    if len(idx) == 0:
        return None
    keep = round(_KEEP_SECONDS * 100)
    first = max(0, int(idx[0]) - keep)
    last = min(len(loud), int(idx[-1]) + 1 + keep)
    floor = float(np.percentile(levels, _FLOOR_PERCENTILE))
    speech = float(np.median(levels[loud]))
    return pcm[first * _FRAME : last * _FRAME], loud[first:last], floor, speech


def suppress_noise(pcm: np.ndarray) -> np.ndarray:
    """``pcm`` with its steady background noise attenuated (a Wiener filter), same length.

    The noise spectrum is the mean of the quietest fifth of 32 ms frames (the silence a prompt
    hands over around an utterance); each frequency bin is scaled by the decision-directed
    Wiener gain (a priori SNR smoothed over frames), never below ``_SUPPRESS_FLOOR`` (-20 dB),
    which keeps the filter from leaving "musical" noise or cutting weak speech away.
    """
    x = pcm.astype(np.float64).reshape(-1)
    if len(x) < 4 * _STFT:
        return pcm
    window = np.hanning(_STFT + 1)[:-1]
    padded = np.concatenate([np.zeros(_STFT), x, np.zeros(_STFT)])
    n_frames = (len(padded) - _STFT) // _STFT_HOP + 1
    index = np.arange(_STFT)[None, :] + _STFT_HOP * np.arange(n_frames)[:, None]
    spectrum = np.fft.rfft(padded[index] * window, axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    energy = power.sum(axis=1)
    quiet = energy <= np.percentile(energy, 20)
    noise = power[quiet].mean(axis=0) + 1e-9
    posterior = power / noise  # a posteriori SNR per frame and bin
    gains = np.empty_like(power)
    previous = np.zeros(power.shape[1])
    for t in range(n_frames):
        instant = np.maximum(posterior[t] - 1.0, 0.0)
        prior = instant if t == 0 else _DD_ALPHA * previous + (1.0 - _DD_ALPHA) * instant
        gains[t] = np.maximum(prior / (1.0 + prior), _SUPPRESS_FLOOR)
        previous = gains[t] ** 2 * posterior[t]
    frames = np.fft.irfft(spectrum * gains, n=_STFT, axis=1) * window
    out = np.zeros(len(padded))
    norm = np.zeros(len(padded))
    np.add.at(out, index, frames)
    np.add.at(norm, index, np.broadcast_to(window * window, frames.shape))
    out = out[_STFT : _STFT + len(x)] / np.maximum(norm[_STFT : _STFT + len(x)], 1e-3)
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def _floor_noise(n: int, *, pink: bool) -> np.ndarray:
    """``n`` samples of fixed, seeded noise with unit RMS: white, or pink (power ∝ 1/f)."""
    rng = np.random.default_rng(0x5EED)
    noise = rng.standard_normal(n, dtype=np.float32)
    if pink and n > 1:
        spectrum = np.fft.rfft(noise)
        spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
        noise = np.fft.irfft(spectrum, n=n).astype(np.float32)
        noise /= max(float(noise.std()), 1e-9)
    return noise


def _prepare(pcm: np.ndarray, *, pink: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """Trim long silence, even out the noise floor; (audio, loud-frame mask) or None.

    ``pink``: the floor is pink noise instead of white (for digit grammars, see
    :meth:`PocketsphinxRecognizer._decode`).
    """
    trimmed = trim(pcm)
    if trimmed is None:
        return None
    audio, loud, floor, speech = trimmed
    below = _FLOOR_BELOW_SPEECH_DB
    if speech - floor < _NOISY_DB:
        # Loud noise (10 dB SNR): a Wiener filter first, then a steady floor 20 dB under the
        # speech; menu words at 10 dB went from 39 % to 83 % (16 kHz) and 33 % to 67 % (8 kHz)
        # on the benchmark's tuning voices, with no change in quieter noise
        cleaned = trim(suppress_noise(pcm))
        if cleaned is None:
            return None
        audio, loud, floor, speech = cleaned
        below = _FLOOR_BELOW_CLEANED_DB
    # Clean speech, and telephone audio most (8 kHz µ-law: nothing above 4 kHz, quantisation
    # noise that follows the signal), decodes worse than speech over a steady noise floor:
    # on the benchmark, 8 kHz menu words went from 69 % to 89 % with a floor 15 dB under the
    # speech. Noise already that loud is left alone. The seed is fixed: same audio, same result.
    target = max(_DITHER_DB, speech - below)
    add = 10 ** (target / 10) - 10 ** (floor / 10)
    out = audio.astype(np.float32)
    if add > 0:
        out += _floor_noise(len(out), pink=pink) * np.float32(32768.0 * add**0.5)
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16), loud


@dataclass(frozen=True, slots=True)
class _Decoded:
    """Raw outcome of one decode, kept for confidence and diagnostics."""

    words: tuple[str, ...]
    posterior: float  # min word posterior, 0..1
    coverage: float  # loud frames inside words / loud frames, 0..1
    fit: float  # mean log acoustic score per frame of the words (≤ 0)
    text: str | None
    confidence: float


def _score(
    segments: Sequence[Any], loud: np.ndarray, *, mean_posterior: bool = False
) -> tuple[tuple[str, ...], float, float, float]:
    """(words, min or mean posterior, coverage, acoustic fit) from pocketsphinx segments."""
    words: list[str] = []
    posteriors: list[float] = []
    log_ascore = 0.0
    n_frames = 0
    inside = np.zeros(len(loud), dtype=bool)
    for seg in segments:
        w: str = seg.word
        if w.startswith(("<", "[", "+")):  # <s>, </s>, <sil>, [NOISE], +SPN+ …
            continue
        words.append(w.split("(", 1)[0])  # "word(2)" = alternate pronunciation
        posteriors.append(float(seg.prob))
        # ascore is exp(acoustic log-likelihood relative to the best senone of each frame);
        # it underflows to 0.0 only for very poor, long matches
        log_ascore += math.log(seg.ascore) if seg.ascore > 0 else -math.inf
        n_frames += seg.end_frame - seg.start_frame + 1
        inside[max(0, seg.start_frame) : seg.end_frame + 1] = True
    n_loud = int(loud.sum())
    coverage = float((inside & loud).sum() / n_loud) if n_loud else 0.0
    fit = log_ascore / n_frames if n_frames else -math.inf
    if not posteriors:
        posterior = 0.0
    elif mean_posterior:
        posterior = sum(posteriors) / len(posteriors)
    else:
        posterior = min(posteriors)
    return tuple(words), posterior, coverage, fit


def calibrate(raw: float, knots: Calibration = _CALIBRATION) -> float:
    """Map a raw 0–100 score onto the calibrated confidence scale (monotone, 0–100).

    ``knots``: (raw, confidence) points from (0, 0) to (100, 100), joined linearly.
    """
    raw = min(100.0, max(0.0, raw))
    for (x0, y0), (x1, y1) in itertools.pairwise(knots):
        if raw <= x1:
            return round(y0 + (y1 - y0) * (raw - x0) / (x1 - x0), 1)
    return 100.0


def _confidence(
    posterior: float, coverage: float, fit: float, knots: Calibration = _CALIBRATION
) -> float:
    """100 × posterior × coverage factor × acoustic-fit factor, calibrated; 0..100."""
    span = _COVERAGE_FULL - _COVERAGE_ZERO
    cov = min(1.0, max(0.0, (coverage - _COVERAGE_ZERO) / span))
    # logistic on the per-frame log score: 0.5 at _FIT_MID, ~0.95 two nats better
    acoustic = 1.0 / (1.0 + math.exp(-_FIT_SLOPE * (fit - _FIT_MID))) if fit > -1e9 else 0.0
    value = 100.0 * min(1.0, max(0.0, posterior)) * cov * acoustic
    return 0.0 if math.isnan(value) else calibrate(value, knots)


def digits_as_text(words: Sequence[str]) -> str:
    """Words as result text: runs of digit words become digit strings ("my pin is 427")."""
    out: list[str] = []
    run = ""
    for w in words:
        if w in _WORD_TO_DIGIT:
            run += _WORD_TO_DIGIT[w]
            continue
        if run:
            out.append(run)
            run = ""
        out.append(w)
    if run:
        out.append(run)
    return " ".join(out)


@dataclass(frozen=True, slots=True)
class PocketsphinxModel:
    """A pocketsphinx model directory: an acoustic model, a dictionary, maybe an n-gram LM.

    Layout: the acoustic model is the (sub)directory holding ``mdef`` and ``feat.params``;
    the dictionary is the one ``*.dict`` or ``*.dic`` file; the language model (optional: open
    prompts then use the default grammar only) is a ``*.lm.bin``, ``*.lm`` or ``*.arpa`` file
    whose name does not contain "phone". :meth:`from_dir` finds them; ``bundled()`` is the
    US-English model in the pocketsphinx wheel.
    """

    acoustic: Path
    dictionary: Path
    language_model: Path | None = None

    @classmethod
    def from_dir(cls, path: str | Path) -> PocketsphinxModel:
        root = Path(path).expanduser()
        if not root.is_dir():
            raise MediaError(f"speech model directory {str(root)!r} does not exist")
        acoustic = [d for d in (root, *sorted(root.rglob("*"))) if (d / "mdef").is_file()]
        if not acoustic or not (acoustic[0] / "feat.params").is_file():
            raise MediaError(
                f"no pocketsphinx acoustic model in {str(root)!r} (a directory with mdef "
                "and feat.params)"
            )
        dicts = sorted(p for p in root.rglob("*") if p.suffix in (".dict", ".dic"))
        if len(dicts) != 1:
            found = ", ".join(p.name for p in dicts) or "none"
            raise MediaError(
                f"a pocketsphinx model directory needs exactly one *.dict or *.dic "
                f"pronunciation dictionary; {str(root)!r} has {found}"
            )
        lms = sorted(
            p
            for p in root.rglob("*")
            if p.name.endswith((".lm.bin", ".lm", ".arpa")) and "phone" not in p.name
        )
        return cls(acoustic[0], dicts[0], lms[0] if lms else None)

    @classmethod
    def bundled(cls) -> PocketsphinxModel:
        """The US-English model shipped in the pocketsphinx wheel."""
        from pocketsphinx import get_model_path  # deferred: importing loads a native library

        root = Path(get_model_path()) / "en-us"
        return cls(root / "en-us", root / "cmudict-en-us.dict", root / "en-us.lm.bin")


class PocketsphinxRecognizer:
    """Grammar and open-vocabulary recogniser on pocketsphinx (see the module docstring).

    One grammar decoder (acoustic model + dictionary, ~0.12 s to load, on first use or
    ``warm_up()``) per recognizer, and one n-gram decoder for open prompts, loaded when the
    first comes; a lock serialises decodes and grammars are kept in an LRU of
    ``grammar_cache`` entries, so the object may be shared by worker threads (each
    utterance by one thread at a time). ``min_confidence`` (0–100): results below it are
    reported as None. ``max_seconds``: audio beyond this much per utterance is ignored.
    ``partial_interval``: ``partial()`` re-decodes at most once per this much new audio.
    ``model``: another model
    directory, for ``languages`` (default: the bundled US-English model).
    """

    def __init__(
        self,
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        grammar_cache: int = 16,
        max_seconds: float = 30.0,
        partial_interval: float = 0.3,
        model: PocketsphinxModel | None = None,
        languages: Sequence[str] = ("en-US",),
    ) -> None:
        self.min_confidence = float(min_confidence)
        self.max_samples = round(max_seconds * SAMPLE_RATE)
        self.partial_samples = round(partial_interval * SAMPLE_RATE)
        self.model = model
        self.languages: tuple[str, ...] = tuple(languages)
        if not self.languages:
            raise ValueError("a recognizer needs at least one language")
        self._grammar_cache = max(1, grammar_cache)
        self._lock = threading.RLock()
        self._decoder: Any = None
        self._open_decoder: Any = None
        self._grammars: OrderedDict[tuple[str, ...], Grammar] = OrderedDict()
        self._searches: OrderedDict[str, None] = OrderedDict()  # grammar keys loaded in decoder
        self._known: dict[str, tuple[str, ...] | None] = {}

    # -- public API

    def accepts(self, language: str) -> bool:
        """Whether ``language`` is one of ``languages`` (or its primary subtag, "en")."""
        wanted = str(language).strip().replace("_", "-").lower()
        return bool(wanted) and any(
            wanted in (lang.lower(), lang.lower().split("-")[0]) for lang in self.languages
        )

    def open(
        self,
        *,
        language: str = "en-US",
        hints: Sequence[str] = (),
        min_confidence: float | None = None,
    ) -> PocketsphinxUtterance:
        """Start an utterance; ``min_confidence`` replaces the recognizer's for this one."""
        if not self.accepts(language):
            raise UnsupportedLanguageError(language, self.languages)
        if isinstance(hints, str):
            hints = (hints,)
        hints = tuple(str(h) for h in hints)
        return PocketsphinxUtterance(
            self, self.grammar(hints), open_vocabulary=not hints, min_confidence=min_confidence
        )

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

    def _model(self) -> PocketsphinxModel:
        if self.model is None:
            self.model = PocketsphinxModel.bundled()
        return self.model

    def _new_decoder(self, lm: Path | None) -> Any:
        from pocketsphinx import Decoder  # deferred: importing loads a native library

        model = self._model()
        try:
            return Decoder(
                hmm=str(model.acoustic),
                dict=str(model.dictionary),
                lm=None if lm is None else str(lm),
                samprate=SAMPLE_RATE,
                wip=_WORD_PENALTY,
                loglevel="FATAL",
            )
        except Exception as exc:  # a broken install or model; name it, not a bare RuntimeError
            raise MediaError(f"cannot start the pocketsphinx decoder: {exc}") from exc

    def _get_decoder(self) -> Any:
        if self._decoder is None:
            # lm=None: grammar searches only
            self._decoder = self._new_decoder(None)
        return self._decoder

    def _is_known(self, word: str) -> bool:
        return self._lookup(word) is not None

    def _lookup(self, word: str) -> tuple[str, ...] | None:
        with self._lock:
            if word not in self._known:
                found = self._get_decoder().lookup_word(word)
                if len(self._known) > 50_000:
                    self._known.clear()
                self._known[word] = None if found is None else tuple(found.split())
            return self._known[word]

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

    @staticmethod
    def _run(decoder: Any, audio: np.ndarray) -> list[Any]:
        # feature state (cepstral mean prior, noise estimate) carries over between
        # utterances; a fresh front end (~0.1 ms) makes each result depend on its own
        # audio only, not on what this decoder heard before
        decoder.reinit_feat()
        decoder.start_utt()
        try:
            decoder.process_raw(audio.tobytes(), full_utt=True)
        finally:
            decoder.end_utt()
        return list(decoder.seg() or ())

    def _decode(self, pcm: np.ndarray, grammar: Grammar) -> _Decoded | None:
        """Decode a whole buffer; None when it holds nothing louder than its noise floor."""
        # A white floor sounds like the fricatives of "four", "five", "six", "three": a digit
        # grammar took the floor before the first digit for "f" ("eight one …" → "five one
        # …"). Pink noise (less of it at high frequencies) does not: digit strings heard
        # right at 16 kHz went from 58 to 75 % on the benchmark's tuning voices (held-out
        # voices 64 → 71 %); menu grammars keep the white floor (pink let more off-menu words
        # through).
        prepared = _prepare(pcm, pink=grammar.digits is not None and not grammar.phrases)
        if prepared is None:
            return None
        audio, loud = prepared
        with self._lock:
            self._activate(grammar)
            segments = self._run(self._get_decoder(), audio)
        words, posterior, coverage, fit = _score(segments, loud)
        text = grammar.text_for(words)
        confidence = _confidence(posterior, coverage, fit) if text is not None else 0.0
        return _Decoded(words, posterior, coverage, fit, text, confidence)

    def _decode_open(self, pcm: np.ndarray) -> _Decoded | None:
        """Open-vocabulary decode with the model's n-gram language model (None: no LM)."""
        lm = self._model().language_model
        if lm is None:
            return None
        prepared = _prepare(pcm)
        if prepared is None:
            return None
        audio, loud = prepared
        with self._lock:
            if self._open_decoder is None:
                self._open_decoder = self._new_decoder(lm)
            segments = self._run(self._open_decoder, audio)
        words, posterior, coverage, fit = _score(segments, loud, mean_posterior=True)
        if not words:
            return _Decoded(words, 0.0, 0.0, fit, None, 0.0)
        confidence = _confidence(posterior, coverage, fit, _OPEN_CALIBRATION)
        return _Decoded(words, posterior, coverage, fit, digits_as_text(words), confidence)


class BufferedUtterance:
    """An utterance that buffers its audio and decodes the whole of it on demand.

    Audio beyond ``max_samples`` is dropped; :meth:`partial` decodes again once
    ``partial_samples`` of new audio arrived; :meth:`finish` keeps the decode only at
    ``min_confidence`` or above. Subclasses say how a buffer is decoded (:meth:`_guess`).
    """

    def __init__(self, *, max_samples: int, partial_samples: int, min_confidence: float) -> None:
        self.min_confidence = min_confidence
        self._max_samples = max_samples
        self._partial_samples = partial_samples
        self._chunks: list[np.ndarray] = []
        self._n = 0
        self._partial = ""
        self._partial_at = 0  # buffer length at the last partial decode
        self._done = False
        self._result: RecognitionResult | None = None

    def _guess(self, pcm: np.ndarray) -> RecognitionResult | None:
        """The decoder's answer for ``pcm`` at any confidence, or None."""
        raise NotImplementedError

    def feed(self, samples: np.ndarray) -> None:
        if self._done:
            raise MediaError("utterance already finished")
        pcm = np.asarray(samples)
        if pcm.dtype != np.int16:
            raise TypeError(f"expected int16 samples, got {pcm.dtype}")
        room = self._max_samples - self._n
        if room <= 0 or pcm.size == 0:
            return
        pcm = pcm.reshape(-1)[:room].copy()
        self._chunks.append(pcm)
        self._n += len(pcm)

    def audio(self) -> np.ndarray:
        """The samples fed so far (up to ``max_samples``)."""
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else np.zeros(0, dtype=np.int16)

    def partial(self) -> str:
        """Best guess so far; re-decodes at most every ``partial_samples`` of new audio."""
        if self._done:
            return self._result.text if self._result else ""
        if self._n - self._partial_at >= self._partial_samples:
            self._partial_at = self._n
            guess = self._guess(self.audio())
            self._partial = guess.text if guess else ""
        return self._partial

    def finish(self) -> RecognitionResult | None:
        if not self._done:
            guess = self._guess(self.audio()) if self._n else None
            if guess is not None and guess.confidence >= self.min_confidence:
                self._result = guess
            self.close()
        return self._result

    def close(self) -> None:
        self._done = True
        self._chunks = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PocketsphinxUtterance(BufferedUtterance):
    """An utterance of :class:`PocketsphinxRecognizer`: buffers audio, decodes on demand.

    With ``open_vocabulary`` (a prompt without hints) the default grammar is tried first and
    kept if it explains the audio with :data:`DEFAULT_MIN_CONFIDENCE`; otherwise the n-gram
    decode gives a free transcript.
    """

    def __init__(
        self,
        recognizer: PocketsphinxRecognizer,
        grammar: Grammar,
        *,
        open_vocabulary: bool = False,
        min_confidence: float | None = None,
    ) -> None:
        super().__init__(
            max_samples=recognizer.max_samples,
            partial_samples=recognizer.partial_samples,
            min_confidence=recognizer.min_confidence if min_confidence is None else min_confidence,
        )
        self.grammar = grammar
        self.open_vocabulary = open_vocabulary
        self._rec = recognizer

    def _guess(self, pcm: np.ndarray) -> RecognitionResult | None:
        decoded = self._rec._decode(pcm, self.grammar)
        if (
            self.open_vocabulary
            and decoded is not None
            and (decoded.text is None or decoded.confidence < DEFAULT_MIN_CONFIDENCE)
        ):
            free = self._rec._decode_open(pcm)
            if free is not None and free.text is not None:
                decoded = free
        if decoded is None or decoded.text is None:
            return None
        return RecognitionResult(decoded.text, decoded.confidence)
