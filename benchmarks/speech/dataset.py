"""The speech test set: synthetic voices through both sample paths and noise, and human audio.

Synthetic items are spoken by espeak-ng (the ``espeakng-loader`` wheel, through relaykit's TTS)
in voices relaykit's virtual caller does not use by default — British and American English,
male and female, pitch lowered or raised, slow and fast speech — then sent down one of two
paths: ``16k`` (as a WebSocket caller's audio arrives) or ``8k-ulaw`` (down to 8 kHz, G.711
µ-law, back up to 16 kHz, with the SIP gateway's own resampler and codec), with white noise at
20 or 10 dB SNR over the speech (or none). Every item gets the silence the prompt engine hands
over around an utterance: 0.3 s before, ``end_silence_timeout`` (1 s) after.

Human items come from Debian's ``pocketsphinx-testdata`` (LibriVox read speech, a card-game
grammar, "go forward ten meters", a TIDIGITS digit string) when it is installed.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from relaykit.media.frames import SAMPLE_RATE
from relaykit.media.tts import EspeakTts
from relaykit.sip.g711 import ulaw_decode, ulaw_encode
from relaykit.sip.resample import HISTORY, UP_HISTORY, downsample2, upsample2

LEAD, TRAIL = 0.3, 1.0

MENU = ("sales", "support", "billing", "operator", "customer service", "technical support")
OUT_OF_MENU = (
    "hello", "banana", "weather", "goodbye", "yesterday", "coffee", "thank you", "maybe",
    "what", "pizza", "my name is john", "the dog is barking",
)  # fmt: skip
DIGIT_STRINGS = ("1234", "4271", "9058", "3360", "8147", "5902", "7713", "2486")
SENTENCES = (
    "I would like to speak to someone about my bill",
    "my internet has been down since yesterday",
    "please cancel my subscription",
    "I want to change my address",
    "can you tell me my account balance",
    "the package never arrived",
    "I need to reset my password",
    "what are your opening hours",
    "I lost my credit card",
    "I would like to book an appointment for next week",
)


@dataclass(frozen=True, slots=True)
class Voice:
    name: str
    language: str
    gender: str
    pitch: str  # SSML prosody pitch
    rate: str  # SSML prosody rate


VOICES = (
    Voice("us-female-fast", "en-US", "female", "medium", "fast"),
    Voice("gb-male-slow", "en-GB", "male", "medium", "slow"),
    Voice("gb-female", "en-GB", "female", "high", "medium"),
    Voice("us-male-low-fast", "en-US", "male", "x-low", "fast"),
    Voice("gb-male-high", "en-GB", "male", "x-high", "medium"),
    Voice("us-female-low-slow", "en-US", "female", "low", "slow"),
)
PATHS = ("16k", "8k-ulaw")
NOISES: tuple[float | None, ...] = (None, 20.0, 10.0)  # SNR in dB; None = clean


@dataclass(frozen=True, slots=True)
class Item:
    """One utterance to recognise: ``kind`` is menu, reject, digits, open or human."""

    kind: str
    said: str  # what was spoken (the reference)
    hints: tuple[str, ...]
    expected: str | None  # the right result text (None: must be rejected)
    voice: str
    path: str
    snr: float | None
    audio: np.ndarray

    @property
    def condition(self) -> str:
        return f"{self.path}/{'clean' if self.snr is None else f'{self.snr:g}dB'}"


def speak(tts: EspeakTts, text: str, voice: Voice) -> np.ndarray:
    ssml = f'<speak><prosody pitch="{voice.pitch}" rate="{voice.rate}">{text}</prosody></speak>'
    return np.asarray(tts.synthesize(ssml, language=voice.language, gender=voice.gender))


def telephone(audio: np.ndarray) -> np.ndarray:
    """16 kHz → 8 kHz → G.711 µ-law → 16 kHz with the SIP gateway's filters and codec."""
    pcm = audio[: len(audio) // 2 * 2].reshape(1, -1)
    down, _ = downsample2(pcm, np.zeros((1, HISTORY), dtype=np.float32))
    decoded = ulaw_decode(ulaw_encode(down.reshape(-1))).reshape(1, -1)
    up, _ = upsample2(decoded, np.zeros((1, UP_HISTORY), dtype=np.float32))
    return np.asarray(up, dtype=np.int16).reshape(-1)


def with_noise(speech: np.ndarray, snr: float | None, rng: np.random.Generator) -> np.ndarray:
    """Pad with engine-like silence; add white noise ``snr`` dB under the speech's power."""
    lead = np.zeros(round(LEAD * SAMPLE_RATE), dtype=np.float64)
    trail = np.zeros(round(TRAIL * SAMPLE_RATE), dtype=np.float64)
    out = np.concatenate([lead, speech.astype(np.float64), trail])
    if snr is not None:
        loud = speech.astype(np.float64)
        loud = loud[np.abs(loud) > 0.05 * np.abs(loud).max()]
        power = float(np.mean(loud * loud)) if loud.size else 0.0
        out += rng.standard_normal(len(out)) * np.sqrt(power / 10 ** (snr / 10))
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def spoken_digits(digits: str) -> str:
    names = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    return " ".join(names[int(d)] for d in digits)


def synthetic(
    *,
    voices: Sequence[Voice] = VOICES,
    paths: Sequence[str] = PATHS,
    noises: Sequence[float | None] = NOISES,
    kinds: Sequence[str] = ("menu", "reject", "digits", "open"),
    seed: int = 15,
) -> Iterator[Item]:
    """Every synthetic item, generated lazily (the same ``seed`` gives the same audio)."""
    tts = EspeakTts(cache_size=0)
    rng = np.random.default_rng(seed)
    scripts: list[tuple[str, str, tuple[str, ...], str | None]] = []
    if "menu" in kinds:
        scripts += [("menu", w, MENU, w) for w in MENU]
    if "reject" in kinds:
        scripts += [("reject", w, MENU, None) for w in OUT_OF_MENU]
    if "digits" in kinds:
        # hints as a v2 IVR writes them: a digit string, or digits spelled out
        for i, d in enumerate(DIGIT_STRINGS):
            hint = "1234" if i % 2 == 0 else "four two seven one"
            scripts.append(("digits", spoken_digits(d), (hint,), d))
    if "open" in kinds:
        scripts += [("open", s, (), s.lower()) for s in SENTENCES]
    for voice in voices:
        for kind, said, hints, expected in scripts:
            speech = speak(tts, said, voice)
            for path in paths:
                base = speech if path == "16k" else telephone(speech)
                # one noise draw per item: same noise for every engine
                for snr in noises:
                    audio = with_noise(base, snr, rng)
                    yield Item(kind, said, hints, expected, voice.name, path, snr, audio)


# -- human recordings -----------------------------------------------------------------------------

TESTDATA = Path("/usr/share/pocketsphinx/test/data")


def _raw(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<i2").astype(np.int16)


def _wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if w.getframerate() != SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: not 16 kHz mono int16")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def _transcripts(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "(" not in line:
            continue
        text, _, ident = line.rpartition("(")
        words = [w for w in text.split() if w not in ("<s>", "</s>")]
        out[ident.strip(") ")] = " ".join(words)
    return out


def human(root: Path = TESTDATA) -> list[Item]:
    """Debian's pocketsphinx-testdata recordings (16 kHz), [] when the package is missing."""
    if not root.is_dir():
        return []
    items: list[Item] = []

    def add(kind: str, said: str, hints: tuple[str, ...], expected: str, audio: np.ndarray):
        for path in PATHS:
            a = audio if path == "16k" else telephone(audio)
            items.append(Item(kind, said, hints, expected, "human", path, None, a))

    libri = _transcripts(root / "librivox" / "transcription")
    for ident, text in sorted(libri.items()):
        add("open", text, (), text, _wav(root / "librivox" / f"{ident}.wav"))
    cards = _transcripts(root / "cards" / "cards.transcription")
    for ident, text in sorted(cards.items()):
        add("open", text, (), text, _wav(root / "cards" / f"{ident}.wav"))
    add("open", "go forward ten meters", (), "go forward ten meters", _raw(root / "goforward.raw"))
    add(
        "digits", "two nine three four zero", ("12345",), "29340",
        _raw(root / "tidigits" / "dhd.2934z.raw"),
    )  # fmt: skip
    return items
