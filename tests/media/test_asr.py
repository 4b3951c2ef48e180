"""Speech recognition: grammar building, and pocketsphinx on real espeak-ng audio.

Only results that held in every run of our accuracy table are asserted (menu words, yes/no,
digit strings without "seven" on the open digit grammar, out-of-grammar sentences). Known weak
spots — "seven", "five" in the female voice, 8 kHz telephone-band audio — are not.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from relaykit.errors import MediaError, UnsupportedLanguageError
from relaykit.media.asr import (
    DEFAULT_PHRASES,
    PocketsphinxRecognizer,
    RecognitionResult,
    Recognizer,
    Utterance,
    build_grammar,
    normalize_hint,
)
from relaykit.media.frames import SAMPLE_RATE, SAMPLES_PER_FRAME
from relaykit.media.tts import EspeakTts

LEAD, TRAIL = 0.3, 1.0  # silence around an utterance, as the prompt engine hands it over


@pytest.fixture(scope="module")
def tts() -> EspeakTts:
    return EspeakTts()


@pytest.fixture(scope="module")
def recognizer() -> PocketsphinxRecognizer:
    rec = PocketsphinxRecognizer()
    rec.warm_up()
    return rec


def spoken(tts: EspeakTts, text: str) -> np.ndarray:
    """``text`` in the default voice with engine-like silence before and after."""
    speech = tts.synthesize(text)
    lead = np.zeros(round(LEAD * SAMPLE_RATE), dtype=np.int16)
    trail = np.zeros(round(TRAIL * SAMPLE_RATE), dtype=np.int16)
    return np.concatenate([lead, speech, trail])


def recognize(
    rec: PocketsphinxRecognizer, audio: np.ndarray, hints: list[str]
) -> RecognitionResult | None:
    utterance = rec.open(hints=hints)
    utterance.feed(audio)
    return utterance.finish()


def _known(word: str) -> bool:
    return word in {"press", "one", "two", "sales", "support", "signal", "wire", "cafe", "don't"}


# -- grammar (no audio) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hint", "display", "words"),
    [
        ("Sales", "sales", ("sales",)),
        ("Press 1!", "press 1", ("press", "one")),
        ("427", "427", ("four", "two", "seven")),
        ("  Café, please. ", "cafe please", ("cafe", "please")),
        ("don't", "don't", ("don't",)),
        ("...", "", ()),
    ],
)
def test_hints_are_normalised_to_display_text_and_spoken_words(
    hint: str, display: str, words: tuple[str, ...]
) -> None:
    """Hints are lower-cased, stripped of punctuation, and digits are spoken one by one."""
    assert normalize_hint(hint) == (display, words)


def test_grammar_maps_word_sequences_back_to_hint_text() -> None:
    """A recognised word sequence becomes the hint's normalised text."""
    grammar = build_grammar(["Sales", "Press 1"], _known)
    assert grammar.text_for(["sales"]) == "sales"
    assert grammar.text_for(["press", "one"]) == "press 1"
    assert grammar.text_for(["support"]) is None
    assert grammar.text_for([]) is None
    assert grammar.digits is None


def test_digit_hints_allow_digit_strings_up_to_their_longest() -> None:
    """Digit-string hints open a digit sequence of 1 up to the longest hint, read as digits."""
    grammar = build_grammar(["12", "12345"], _known)
    assert grammar.digits == (1, 5)
    assert grammar.text_for(["four", "two", "seven"]) == "427"
    assert "<digits> = <d> [<d> [<d> [<d> [<d>]]]];" in grammar.jsgf


def test_unknown_words_are_split_or_their_hint_dropped(caplog: pytest.LogCaptureFixture) -> None:
    """A compound becomes dictionary words; an unpronounceable hint is dropped with a warning."""
    with caplog.at_level(logging.WARNING, logger="relaykit.media.asr"):
        grammar = build_grammar(["SignalWire", "xqzt", "sales"], _known)
    assert grammar.text_for(["signal", "wire"]) == "signalwire"
    assert grammar.text_for(["sales"]) == "sales"
    assert "xqzt" not in grammar.jsgf
    assert any("xqzt" in r.getMessage() for r in caplog.records)


def test_no_usable_hints_fall_back_to_the_default_grammar() -> None:
    """Without hints (or with none usable) menu words, yes/no and digit strings are accepted."""
    for hints in ([], ["xqzt"]):
        grammar = build_grammar(hints, lambda w: "x" not in w)
        assert grammar.text_for(["yes"]) == "yes"
        assert grammar.text_for(["main", "menu"]) == "main menu"
        assert grammar.text_for(["five", "five", "five"]) == "555"
        assert len(grammar.phrases) == len(DEFAULT_PHRASES)


def test_recognizer_implements_the_engine_interface(recognizer: PocketsphinxRecognizer) -> None:
    """The pocketsphinx engine and its utterances satisfy the Recognizer/Utterance protocols."""
    assert isinstance(recognizer, Recognizer)
    assert recognizer.languages == ("en-US",)
    with recognizer.open() as utterance:
        assert isinstance(utterance, Utterance)


@pytest.mark.parametrize("language", ["en-US", "en-us", "EN", "en_US"])
def test_english_tags_are_accepted_in_any_case(
    recognizer: PocketsphinxRecognizer, language: str
) -> None:
    """en-US is accepted however it is spelled."""
    recognizer.open(language=language).close()


@pytest.mark.parametrize("language", ["fr-FR", "de", "en-GB-x", ""])
def test_unsupported_language_is_refused(recognizer: PocketsphinxRecognizer, language: str) -> None:
    """Languages other than US English raise UnsupportedLanguageError naming en-US."""
    with pytest.raises(UnsupportedLanguageError) as info:
        recognizer.open(language=language, hints=["sales"])
    assert info.value.supported == ("en-US",)


# -- recognition on synthetic speech ------------------------------------------------------------


@pytest.mark.parametrize("word", ["sales", "support"])
def test_hinted_word_is_recognised_with_relay_confidence(
    recognizer: PocketsphinxRecognizer, tts: EspeakTts, word: str
) -> None:
    """A spoken hint comes back as its text with a confidence on RELAY's 0–100 scale."""
    result = recognize(recognizer, spoken(tts, word), ["sales", "support"])
    assert result is not None
    assert result.text == word
    assert 50.0 <= result.confidence <= 100.0


@pytest.mark.parametrize(
    ("text", "hints", "expected"),
    [
        ("billing", ["sales", "support", "billing", "operator"], "billing"),
        ("operator", ["sales", "support", "billing", "operator"], "operator"),
        ("yes", ["yes", "no"], "yes"),
        ("no", ["yes", "no"], "no"),
        ("Press 1", ["press 1", "press 2"], "press 1"),
    ],
)
def test_menu_answers_come_back_in_the_hints_spelling(
    recognizer: PocketsphinxRecognizer, tts: EspeakTts, text: str, hints: list[str], expected: str
) -> None:
    """Other reliable menu answers are recognised; mixed hints keep their digits."""
    result = recognize(recognizer, spoken(tts, text), hints)
    assert result is not None and result.text == expected


@pytest.mark.parametrize(
    ("text", "hints", "expected"),
    [
        ("4 2 7", ["123"], "427"),
        ("1 2 3", ["123"], "123"),
        ("2 0 2 4", ["1234"], "2024"),
        ("5 5 5 1 2 3 4", [], "5551234"),
    ],
)
def test_spoken_digits_come_back_as_a_digit_string(
    recognizer: PocketsphinxRecognizer, tts: EspeakTts, text: str, hints: list[str], expected: str
) -> None:
    """Digits heard through a digit grammar are returned as digits ("427"), not words."""
    result = recognize(recognizer, spoken(tts, text), hints)
    assert result is not None and result.text == expected


def test_default_grammar_understands_yes_without_hints(
    recognizer: PocketsphinxRecognizer, tts: EspeakTts
) -> None:
    """With no hints the default grammar still recognises a plain "yes"."""
    result = recognize(recognizer, spoken(tts, "yes"), [])
    assert result is not None and result.text == "yes"


@pytest.mark.parametrize(
    "sentence",
    ["the weather is nice today in london", "I would like to speak to someone about my bill"],
)
def test_sentence_outside_the_grammar_is_not_a_match(
    recognizer: PocketsphinxRecognizer, tts: EspeakTts, sentence: str
) -> None:
    """Out-of-grammar speech gives None (no_match) rather than a forced hint."""
    assert recognize(recognizer, spoken(tts, sentence), ["sales", "support"]) is None


@pytest.mark.parametrize("level_db", [-40.0, -20.0])
def test_white_noise_is_not_a_match(recognizer: PocketsphinxRecognizer, level_db: float) -> None:
    """Steady white noise, and a burst of it between silences, give None."""
    rng = np.random.default_rng(7)
    scale = 32768 * 10 ** (level_db / 20)
    steady = rng.normal(0.0, scale, 2 * SAMPLE_RATE)
    burst = np.zeros(2 * SAMPLE_RATE)
    burst[SAMPLE_RATE // 2 : SAMPLE_RATE] = rng.normal(0.0, scale, SAMPLE_RATE // 2)
    for noise in (steady, burst):
        audio = np.clip(np.rint(noise), -32768, 32767).astype(np.int16)
        assert recognize(recognizer, audio, ["sales", "support"]) is None


def test_feeding_in_frames_equals_feeding_one_block(
    recognizer: PocketsphinxRecognizer, tts: EspeakTts
) -> None:
    """Feeding 320-sample frames gives exactly the result of feeding the whole block."""
    audio = spoken(tts, "support")
    whole = recognize(recognizer, audio, ["sales", "support"])
    utterance = recognizer.open(hints=["sales", "support"])
    for start in range(0, len(audio), SAMPLES_PER_FRAME):
        utterance.feed(audio[start : start + SAMPLES_PER_FRAME])
    assert whole is not None
    assert utterance.finish() == whole


def test_empty_or_silent_utterance_finishes_as_none(recognizer: PocketsphinxRecognizer) -> None:
    """No audio, or only digital silence, is no match."""
    utterance = recognizer.open(hints=["sales"])
    assert utterance.partial() == ""
    assert utterance.finish() is None
    silent = recognizer.open(hints=["sales"])
    silent.feed(np.zeros(SAMPLE_RATE, dtype=np.int16))
    silent.feed(np.zeros(0, dtype=np.int16))
    assert silent.finish() is None


def test_partial_gives_the_current_guess(
    recognizer: PocketsphinxRecognizer, tts: EspeakTts
) -> None:
    """partial() decodes the audio so far; after finish() it repeats the final text."""
    utterance = recognizer.open(hints=["sales", "support"])
    utterance.feed(spoken(tts, "sales"))
    assert utterance.partial() == "sales"
    result = utterance.finish()
    assert result is not None and utterance.partial() == result.text


def test_finished_utterance_keeps_its_result_and_refuses_audio(
    recognizer: PocketsphinxRecognizer, tts: EspeakTts
) -> None:
    """finish() is idempotent, close() is harmless, and feeding afterwards is an error."""
    utterance = recognizer.open(hints=["sales", "support"])
    utterance.feed(spoken(tts, "sales"))
    first = utterance.finish()
    utterance.close()
    assert utterance.finish() == first
    with pytest.raises(MediaError):
        utterance.feed(np.zeros(320, dtype=np.int16))


def test_non_int16_audio_is_refused(recognizer: PocketsphinxRecognizer) -> None:
    """Float or wider integer samples are a caller bug, not something to guess about."""
    utterance = recognizer.open()
    with pytest.raises(TypeError):
        utterance.feed(np.zeros(320, dtype=np.float32))


def test_utterances_decode_safely_from_several_threads(
    recognizer: PocketsphinxRecognizer, tts: EspeakTts
) -> None:
    """Concurrent utterances on one recognizer give the same results as one at a time."""
    jobs = [("sales", ["sales", "support"]), ("support", ["sales", "support"]), ("1 2 3", ["123"])]
    audio = {text: spoken(tts, text) for text, _ in jobs}
    expected = {text: recognize(recognizer, audio[text], hints) for text, hints in jobs}
    got: dict[str, list[RecognitionResult | None]] = {text: [] for text, _ in jobs}

    def work(text: str, hints: list[str]) -> None:
        for _ in range(3):
            got[text].append(recognize(recognizer, audio[text], hints))

    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for text, results in got.items():
        assert results == [expected[text]] * 3
