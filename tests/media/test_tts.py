"""Tests for relaykit.media.tts: real espeak-ng speech, languages, voices, cache and threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from relaykit.errors import MediaError, UnsupportedLanguageError
from relaykit.media.frames import SAMPLE_RATE
from relaykit.media.tts import (
    DEFAULT_LANGUAGE,
    LANGUAGE_VOICES,
    MAX_TEXT_CHARS,
    EspeakTts,
    TtsEngine,
)

PROMPT = "Please enter your 3 digit PIN, then press pound"


@pytest.fixture(scope="module")
def tts() -> EspeakTts:
    return EspeakTts()


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def median_f0(x: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Median pitch of the voiced 40 ms frames, by autocorrelation (60-400 Hz)."""
    n = int(0.04 * rate)
    lo, hi = rate // 400, rate // 60
    estimates = []
    for start in range(0, len(x) - n, n):
        frame = x[start : start + n].astype(np.float64)
        frame -= frame.mean()
        if rms(frame) < 1000:
            continue
        ac = np.correlate(frame, frame, "full")[n - 1 :]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3 * ac[0]:
            estimates.append(rate / lag)
    assert len(estimates) > 10, "too few voiced frames to estimate pitch"
    return float(np.median(estimates))


def test_sentence_is_16k_mono_int16_speech_of_plausible_length(tts: EspeakTts) -> None:
    """A one-sentence prompt gives 1-6 s of audible, unclipped int16 mono audio."""
    audio = tts.synthesize(PROMPT, language="en-US")
    assert audio.dtype == np.int16
    assert audio.ndim == 1
    assert 1.0 <= audio.size / SAMPLE_RATE <= 6.0
    assert rms(audio) > 500  # about -36 dBFS: clearly not silence
    assert np.count_nonzero(np.abs(audio.astype(np.int32)) >= 32767) == 0


def test_result_is_read_only(tts: EspeakTts) -> None:
    """Returned arrays cannot be written, so nobody corrupts the shared cache."""
    audio = tts.synthesize(PROMPT)
    assert not audio.flags.writeable
    with pytest.raises(ValueError):
        audio[0] = 1


def test_default_language_is_en_us(tts: EspeakTts) -> None:
    """No language means RELAY's default, en-US."""
    assert DEFAULT_LANGUAGE == "en-US"
    assert tts.voice_for(None) == "en-us"
    assert tts.synthesize(PROMPT) is tts.synthesize(PROMPT, language="en-US")


def test_two_languages_produce_different_audio(tts: EspeakTts) -> None:
    """The same text read by the English and the German voice is different audio."""
    english = tts.synthesize("Hello, one two three", language="en-US")
    german = tts.synthesize("Hello, one two three", language="de-DE")
    assert english.size != german.size or not np.array_equal(english, german)


def test_every_listed_language_speaks(tts: EspeakTts) -> None:
    """Each advertised language maps to a bundled voice that produces sound."""
    assert set(tts.languages) == set(LANGUAGE_VOICES)
    for language in tts.languages:
        audio = tts.synthesize("1 2 3", language=language)
        assert rms(audio) > 300, language


def test_language_tags_are_case_insensitive_and_fall_back_to_primary(tts: EspeakTts) -> None:
    """BCP-47 matching ignores case and '_', and an unlisted region uses the language's voice."""
    assert tts.voice_for("EN-us") == "en-us"
    assert tts.voice_for("en_GB") == "en"
    assert tts.voice_for("fr-FR") == "fr"
    assert tts.voice_for("fr-CA") == "fr"
    assert tts.voice_for("en-AU") == "en-us"
    assert tts.voice_for("de") == "de"
    assert tts.supports("es-ES") and tts.supports("it-IT") and tts.supports("pt-BR")
    assert not tts.supports("xx-YY")


def test_unknown_language_raises_listing_supported(tts: EspeakTts) -> None:
    """A language espeak-ng cannot speak is refused with the list of supported ones."""
    with pytest.raises(UnsupportedLanguageError) as info:
        tts.synthesize("hello", language="tlh-QO")
    assert info.value.language == "tlh-QO"
    assert "en-US" in info.value.supported
    assert "en-US" in str(info.value) and "fr-FR" in str(info.value)


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text_raises(tts: EspeakTts, text: str) -> None:
    """Empty or whitespace-only text is a MediaError."""
    with pytest.raises(MediaError, match="empty"):
        tts.synthesize(text)


def test_overlong_text_raises(tts: EspeakTts) -> None:
    """Text beyond MAX_TEXT_CHARS is refused before synthesis."""
    with pytest.raises(MediaError, match=str(MAX_TEXT_CHARS)):
        tts.synthesize("a" * (MAX_TEXT_CHARS + 1))


@pytest.mark.parametrize("gender", ["robot", "", "f"])
def test_unknown_gender_raises(tts: EspeakTts, gender: str) -> None:
    """Only 'male' and 'female' are genders; anything else is a MediaError naming it."""
    with pytest.raises(MediaError, match="gender") as info:
        tts.synthesize("hello", gender=gender)
    assert not isinstance(info.value, UnsupportedLanguageError)


def test_female_voice_is_higher_pitched_than_male(tts: EspeakTts) -> None:
    """gender='female' picks a voice variant about an octave above the male one."""
    male = median_f0(tts.synthesize(PROMPT, gender="male"))
    female = median_f0(tts.synthesize(PROMPT, gender="FEMALE"))
    assert 70 < male < 150
    assert female > 1.5 * male


def test_cache_returns_the_same_object(tts: EspeakTts) -> None:
    """Repeating a prompt returns the cached array itself; other voices are other entries."""
    first = tts.synthesize("Your call is important to us", language="en-US")
    assert tts.synthesize("Your call is important to us", language="en-us") is first
    assert tts.synthesize("Your call is important to us", gender="female") is not first


def test_cache_is_bounded_lru() -> None:
    """The least recently used prompt is evicted once the cache is full."""
    engine = EspeakTts(cache_size=2)
    one = engine.synthesize("one")
    two = engine.synthesize("two")
    assert engine.synthesize("one") is one  # "one" is now the most recent
    engine.synthesize("three")  # evicts "two"
    assert engine.synthesize("one") is one
    assert engine.synthesize("two") is not two


def test_concurrent_first_requests_synthesise_once() -> None:
    """Four threads asking for a new prompt at once all get the one cached array."""
    engine = EspeakTts()
    barrier = threading.Barrier(4)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(engine.synthesize(PROMPT, language="en-GB"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 4
    assert all(r is results[0] for r in results)


def test_concurrent_uncached_calls_match_single_threaded() -> None:
    """Without the cache, 4 threads synthesising different prompts get the same audio as one.

    espeak-ng keeps pitch-flutter state between utterances, so samples are not bit-identical;
    interleaved synthesis would mix prompts, which length and level would show at once.
    """
    engine = EspeakTts(cache_size=0)
    texts = {
        ("en-US", None): "Press one for sales",
        ("fr-FR", "female"): "Appuyez sur deux pour le support",
        ("de-DE", "male"): "Bitte warten Sie",
        ("es-ES", None): "Gracias por llamar a nuestra empresa",
    }
    expected = {k: engine.synthesize(t, language=k[0], gender=k[1]) for k, t in texts.items()}
    barrier = threading.Barrier(len(texts))
    results: dict[tuple[str, str | None], list[np.ndarray]] = {k: [] for k in texts}
    errors: list[BaseException] = []

    def worker(key: tuple[str, str | None]) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                results[key].append(engine.synthesize(texts[key], language=key[0], gender=key[1]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for key, audios in results.items():
        want = expected[key]
        for audio in audios:
            assert abs(audio.size - want.size) <= 0.01 * want.size, key
            assert abs(rms(audio) - rms(want)) <= 0.1 * rms(want), key


def test_ssml_break_inserts_a_pause(tts: EspeakTts) -> None:
    """Text starting with <speak> is SSML: a 1 s <break> makes the prompt about 1 s longer."""
    plain = tts.synthesize("one two")
    ssml = tts.synthesize('<speak>one <break time="1s"/> two</speak>')
    assert 0.7 <= (ssml.size - plain.size) / SAMPLE_RATE <= 1.5


def test_utf8_text_is_spoken(tts: EspeakTts) -> None:
    """Non-ASCII text is passed as UTF-8 and read, not spelled as bytes."""
    audio = tts.synthesize("Ça a été très élégant", language="fr-FR")
    assert 1.0 <= audio.size / SAMPLE_RATE <= 4.0
    assert rms(audio) > 500


def test_engine_satisfies_tts_protocol() -> None:
    """EspeakTts is a TtsEngine the server can use."""
    assert isinstance(EspeakTts(), TtsEngine)


@pytest.mark.parametrize("gender", ["male", "female"])
def test_speech_recogniser_understands_synthesised_words(tts: EspeakTts, gender: str) -> None:
    """pocketsphinx, limited to a small grammar, recognises each synthesised menu word."""
    pocketsphinx = pytest.importorskip("pocketsphinx")
    decoder = pocketsphinx.Decoder(samprate=SAMPLE_RATE, lm=None, loglevel="FATAL")
    decoder.add_jsgf_string(
        "menu",
        "#JSGF V1.0; grammar menu; public <item> = sales | support | operator | billing;",
    )
    decoder.activate_search("menu")
    for word in ("sales", "support", "operator", "billing"):
        pcm = tts.synthesize(word, language="en-US", gender=gender)
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        assert hyp is not None and hyp.hypstr == word
