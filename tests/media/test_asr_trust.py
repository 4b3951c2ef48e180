"""Speech a caller can trust: rejection, calibrated confidence, digit hints, 8 kHz, own models.

Audio is espeak-ng speech in the default voice and in voices the virtual caller does not use
(British English, female), on the 16 kHz path and through the SIP gateway's 8 kHz µ-law path.
Only cases that held on every run of ``benchmarks/speech`` are asserted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from relaykit.errors import MediaError, UnsupportedLanguageError
from relaykit.media.asr import (
    DEFAULT_MIN_CONFIDENCE,
    PocketsphinxModel,
    PocketsphinxRecognizer,
    RecognitionResult,
    build_grammar,
    calibrate,
    digits_as_text,
    suppress_noise,
)
from relaykit.media.frames import SAMPLE_RATE
from relaykit.sip.g711 import ulaw_decode, ulaw_encode
from relaykit.sip.resample import HISTORY, UP_HISTORY, downsample2, upsample2
from tests.synthetic_speech import synthesize_elsewhere

MENU = ["sales", "support", "billing", "operator", "customer service"]
GB_FEMALE = ("en-GB", "female")
SAID: list[tuple[str, str | None, str | None]] = [
    *((w, None, None) for w in ["banana", "weather", "pizza", "my name is john", *MENU]),
    *((w, *GB_FEMALE) for w in MENU),
    *(
        (w, None, None)
        for w in [
            "four two seven one", "1 2 3 4", "4 2 7", "four two one", "operator",
            "please cancel my subscription",
        ]
    ),
    *(
        ("eight one four seven", language, gender)
        for language, gender in [
            (None, None), ("en-US", "female"), ("en-GB", "male"), ("en-GB", "female"),
            ("en-US", "male"),
        ]
    ),
]  # fmt: skip

Speech = dict[tuple[str, str | None, str | None], np.ndarray]


@pytest.fixture(scope="module")
def tts() -> Speech:
    """Every utterance these tests speak, synthesised once, outside this process."""
    return dict(zip(SAID, synthesize_elsewhere(SAID), strict=True))


@pytest.fixture(scope="module")
def recognizer() -> PocketsphinxRecognizer:
    rec = PocketsphinxRecognizer()
    rec.warm_up()
    return rec


def spoken(
    tts: Speech, text: str, language: str | None = None, gender: str | None = None
) -> np.ndarray:
    """``text`` with the silence the prompt engine hands over: 0.3 s before, 1 s after."""
    speech = tts[(text, language, gender)]
    lead = np.zeros(round(0.3 * SAMPLE_RATE), dtype=np.int16)
    return np.concatenate([lead, speech, np.zeros(SAMPLE_RATE, dtype=np.int16)])


def telephone(audio: np.ndarray) -> np.ndarray:
    """What a SIP call delivers: 8 kHz G.711 µ-law, back at 16 kHz, with the gateway's filters."""
    pcm = audio[: len(audio) // 2 * 2].reshape(1, -1)
    down, _ = downsample2(pcm, np.zeros((1, HISTORY), dtype=np.float32))
    codes = ulaw_encode(down.reshape(-1))
    up, _ = upsample2(ulaw_decode(codes).reshape(1, -1), np.zeros((1, UP_HISTORY), np.float32))
    return np.asarray(up, dtype=np.int16).reshape(-1)


def recognize(
    rec: PocketsphinxRecognizer, audio: np.ndarray, hints: list[str]
) -> RecognitionResult | None:
    utterance = rec.open(hints=hints)
    utterance.feed(audio)
    return utterance.finish()


# -- rejection ----------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["banana", "weather", "pizza", "my name is john"])
@pytest.mark.parametrize("path", ["16k", "8k"])
def test_words_off_the_menu_are_no_match(
    recognizer: PocketsphinxRecognizer, tts: Speech, word: str, path: str
) -> None:
    """Speech outside the hints is no match, not the nearest menu word."""
    audio = spoken(tts, word)
    audio = telephone(audio) if path == "8k" else audio
    assert recognize(recognizer, audio, MENU) is None


@pytest.mark.parametrize("word", MENU)
def test_menu_words_are_kept_in_other_voices_and_on_the_telephone(
    recognizer: PocketsphinxRecognizer, tts: Speech, word: str
) -> None:
    """Rejection does not cost the menu: each word, female British voice and 8 kHz µ-law."""
    for audio in (
        spoken(tts, word, language="en-GB", gender="female"),
        telephone(spoken(tts, word)),
    ):
        result = recognize(recognizer, audio, MENU)
        assert result is not None and result.text == word
        assert result.confidence >= DEFAULT_MIN_CONFIDENCE


def with_noise(audio: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """White noise ``snr_db`` under the speech's power, over the whole utterance."""
    loud = audio.astype(np.float64)
    power = float(np.mean(loud[np.abs(loud) > 0.05 * np.abs(loud).max()] ** 2))
    noise = np.random.default_rng(seed).standard_normal(len(audio)) * np.sqrt(
        power / 10 ** (snr_db / 10)
    )
    return np.clip(np.rint(audio + noise), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("path", ["16k", "8k"])
def test_menu_words_are_heard_through_loud_noise(
    recognizer: PocketsphinxRecognizer, tts: Speech, path: str
) -> None:
    """At 10 dB SNR (noise a third as loud as the voice) menu words still come through."""
    for word in MENU:
        audio = spoken(tts, word)
        audio = with_noise(telephone(audio) if path == "8k" else audio, 10.0)
        result = recognize(recognizer, audio, MENU)
        assert result is not None and result.text == word, word
    for word in ["banana", "pizza", "my name is john"]:
        assert recognize(recognizer, with_noise(spoken(tts, word), 10.0), MENU) is None, word


def test_noise_suppression_quietens_the_pauses_and_keeps_the_speech(tts: Speech) -> None:
    clean = spoken(tts, "customer service")
    noisy = with_noise(clean, 10.0)
    cleaned = suppress_noise(noisy)
    assert cleaned.dtype == np.int16 and cleaned.shape == noisy.shape

    def power_db(pcm: np.ndarray, part: np.ndarray) -> float:
        x = pcm.astype(np.float64)[part]
        return float(10 * np.log10(np.mean(x * x) + 1e-9))

    pause = np.zeros(len(clean), dtype=bool)
    pause[-SAMPLE_RATE // 2 :] = True  # the trailing silence: noise only
    speech = np.abs(clean.astype(np.float64)) > 0.05 * np.abs(clean).max()
    assert power_db(cleaned, pause) < power_db(noisy, pause) - 15  # noise down by > 15 dB
    assert abs(power_db(cleaned, speech) - power_db(clean, speech)) < 3  # speech kept
    assert np.array_equal(suppress_noise(noisy[:100]), noisy[:100])  # too short: unchanged


def test_the_threshold_is_what_turns_a_weak_guess_into_no_match(tts: Speech) -> None:
    """An off-menu word forced onto the grammar scores low; min_confidence decides."""
    permissive = PocketsphinxRecognizer(min_confidence=0.0)
    strict = PocketsphinxRecognizer(min_confidence=100.0)
    guess = recognize(permissive, spoken(tts, "weather"), MENU)
    assert guess is not None and guess.confidence < DEFAULT_MIN_CONFIDENCE
    right = recognize(permissive, spoken(tts, "billing"), MENU)
    assert right is not None and right.text == "billing"
    assert right.confidence > guess.confidence
    assert recognize(strict, spoken(tts, "billing"), MENU) is None


def test_calibration_is_monotone_and_spans_0_to_100() -> None:
    """The confidence map keeps the order of raw scores and RELAY's 0–100 range."""
    values = [calibrate(raw) for raw in np.linspace(-10, 110, 121)]
    assert values == sorted(values)
    assert values[0] == 0.0 and values[-1] == 100.0


# -- digits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "hints", "expected"),
    [
        ("four two seven one", ["1234"], "4271"),
        ("1 2 3 4", ["1234"], "1234"),
        ("4 2 7", ["four two seven"], "427"),
        ("four two one", ["1234"], "421"),
    ],
)
def test_digit_hints_give_digit_strings(
    recognizer: PocketsphinxRecognizer, tts: Speech, said: str, hints: list[str], expected: str
) -> None:
    """Numbers and spelled-out digits as hints open a digit grammar; results are digits."""
    for audio in (spoken(tts, said), telephone(spoken(tts, said))):
        result = recognize(recognizer, audio, hints)
        assert result is not None and result.text == expected


def test_a_first_digit_is_not_taken_for_five_in_other_voices(
    recognizer: PocketsphinxRecognizer, tts: Speech
) -> None:
    """The floor added under a digit grammar's audio is pink noise: a white one was heard as
    the "f" of "five" before the first digit ("eight one four seven" → "5147" in four of
    these five voices)."""
    voices = [key for key in SAID if key[0] == "eight one four seven"]
    heard = [recognize(recognizer, spoken(tts, *key), ["1234"]) for key in voices]
    texts = [r.text if r else None for r in heard]
    assert texts.count("8147") >= 4, texts


def test_spelled_digit_hints_compile_to_a_digit_grammar() -> None:
    grammar = build_grammar(["four two seven", "sales"], lambda w: True)
    assert grammar.digits == (1, 3)
    assert grammar.text_for(["nine", "one"]) == "91"
    assert grammar.text_for(["sales"]) == "sales"


def test_phrases_of_several_words_are_one_answer(
    recognizer: PocketsphinxRecognizer, tts: Speech
) -> None:
    """ "customer service" is recognised as the phrase, not as two answers."""
    result = recognize(recognizer, spoken(tts, "customer service"), ["customer service", "sales"])
    assert result is not None and result.text == "customer service"


def test_digit_words_in_a_transcript_become_numbers() -> None:
    assert digits_as_text(["my", "pin", "is", "four", "two", "seven"]) == "my pin is 427"
    assert digits_as_text(["one", "and", "two"]) == "1 and 2"


# -- open vocabulary ----------------------------------------------------------------------------


def test_without_hints_an_ivr_word_uses_the_default_grammar(
    recognizer: PocketsphinxRecognizer, tts: Speech
) -> None:
    result = recognize(recognizer, spoken(tts, "operator"), [])
    assert result is not None and result.text == "operator"


def test_without_hints_a_sentence_gets_an_open_vocabulary_transcript(tts: Speech) -> None:
    """Pocketsphinx's n-gram mode answers open prompts when Whisper is not installed."""
    rec = PocketsphinxRecognizer(min_confidence=0.0)
    result = recognize(rec, spoken(tts, "please cancel my subscription"), [])
    assert result is not None
    assert "cancel" in result.text.split() and "subscription" in result.text.split()


# -- model directories --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model directory of one's own: the bundled acoustic model, a 10-word dictionary."""
    bundled = PocketsphinxModel.bundled()
    root = tmp_path_factory.mktemp("model")
    shutil.copytree(bundled.acoustic, root / "acoustic")
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    lines = []
    with bundled.dictionary.open() as f:
        for line in f:
            if line.split(" ", 1)[0] in words:
                lines.append(line)
    (root / "digits.dict").write_text("".join(lines))
    return root


def test_an_own_model_directory_is_loaded_for_its_language(digits_model: Path, tts: Speech) -> None:
    model = PocketsphinxModel.from_dir(digits_model)
    assert model.language_model is None
    assert model.dictionary.name == "digits.dict"
    rec = PocketsphinxRecognizer(model=model, languages=("en-GB",))
    assert rec.languages == ("en-GB",)
    result = recognize_lang(rec, spoken(tts, "4 2 7"), ["123"], "en-GB")
    assert result is not None and result.text == "427"
    with pytest.raises(UnsupportedLanguageError):
        rec.open(language="en-US", hints=["123"])


def recognize_lang(
    rec: PocketsphinxRecognizer, audio: np.ndarray, hints: list[str], language: str
) -> RecognitionResult | None:
    utterance = rec.open(language=language, hints=hints)
    utterance.feed(audio)
    return utterance.finish()


def test_broken_model_directories_are_refused_with_a_reason(
    digits_model: Path, tmp_path: Path
) -> None:
    with pytest.raises(MediaError, match="does not exist"):
        PocketsphinxModel.from_dir(tmp_path / "nowhere")
    with pytest.raises(MediaError, match="acoustic model"):
        PocketsphinxModel.from_dir(tmp_path)
    twice = tmp_path / "twice"
    shutil.copytree(digits_model, twice)
    shutil.copy(twice / "digits.dict", twice / "more.dic")
    with pytest.raises(MediaError, match="exactly one"):
        PocketsphinxModel.from_dir(twice)
