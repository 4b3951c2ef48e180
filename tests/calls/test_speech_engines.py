"""Speech on the server side: thresholds, engine choice, config and counts in workers."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pytest

from relaykit.calls.speech import SpeechRecognition
from relaykit.errors import MediaError, UnsupportedLanguageError
from relaykit.media.asr import PocketsphinxModel
from relaykit.media.engines import SpeechConfig
from relaykit.media.whisper import whisper_available
from tests.synthetic_speech import synthesize_elsewhere

pytestmark = pytest.mark.asyncio

HINTS = ["sales", "support"]
NOTHING = (None, 0.0)


TEXTS = ("sales", "support", "4 2 7", "I lost my credit card")
_AUDIO: dict[str, np.ndarray] = {}


def spoken(text: str) -> np.ndarray:
    """``text`` with silence around it; synthesised outside this process (espeak-ng state)."""
    if not _AUDIO:
        speech = synthesize_elsewhere([(t, None, None) for t in TEXTS])
        _AUDIO.update(zip(TEXTS, speech, strict=True))
    pad = np.zeros(8000, dtype=np.int16)
    return np.concatenate([pad, _AUDIO[text], pad, pad])


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory of one's own: the bundled acoustic model and a digits dictionary."""
    bundled = PocketsphinxModel.bundled()
    root = tmp_path_factory.mktemp("model")
    shutil.copytree(bundled.acoustic, root / "am")
    digits = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
    with bundled.dictionary.open() as f:
        lines = [line for line in f if line.split(" ", 1)[0] in digits]
    (root / "digits.dic").write_text("".join(lines))
    return root


@pytest.mark.parametrize("processes", [0, 1])
async def test_min_confidence_applies_to_final_results_only(processes: int) -> None:
    speech = SpeechRecognition(processes=processes)
    try:
        audio = spoken("sales")
        text, confidence = await speech.decode("en-US", HINTS, audio, final=True)
        assert text == "sales" and confidence >= speech.min_confidence
        assert await speech.decode("en-US", HINTS, audio, final=True, min_confidence=100) == NOTHING
        partial = await speech.decode("en-US", HINTS, audio, final=False, min_confidence=100)
        assert partial[0] == "sales"
        strict = SpeechRecognition(processes=processes, min_confidence=100)
        try:
            assert await strict.decode("en-US", HINTS, audio, final=True) == NOTHING
        finally:
            strict.close()
    finally:
        speech.close()


async def test_decodes_are_queued_bounded_and_counted() -> None:
    """Six utterances on one worker: one decodes at a time, the rest wait, all are counted."""
    speech = SpeechRecognition(processes=1)
    try:
        audio = spoken("support")
        results = await asyncio.gather(
            *(speech.decode("en-US", HINTS, audio, final=True) for _ in range(6))
        )
        assert [text for text, _ in results] == ["support"] * 6
        stats = speech.stats()
        assert stats["decodes"] == 6
        assert stats["max_queued"] >= 4  # submitted together, served one by one
        assert stats["queued"] == 0
        assert stats["cpu_total"] > 0 and stats["decode_max"] >= stats["decode_mean"] > 0
    finally:
        speech.close()


@pytest.mark.skipif(not whisper_available(), reason="relaykit[whisper] missing")
async def test_a_backed_up_queue_skips_whisper_s_second_opinion() -> None:
    """Six hinted utterances at once on one worker: the grammar alone answers the waiting ones."""
    speech = SpeechRecognition(processes=1)
    try:
        audio = spoken("support")
        results = await asyncio.gather(
            *(speech.decode("en-US", HINTS, audio, final=True) for _ in range(6))
        )
        assert [text for text, _ in results] == ["support"] * 6
        skipped = speech.stats()["second_opinions_skipped"]
        assert skipped >= 4  # all but the first one or two
        await speech.decode("en-US", HINTS, audio, final=True)  # idle again: not skipped
        assert speech.stats()["second_opinions_skipped"] == skipped
    finally:
        speech.close()


async def test_the_config_reaches_the_worker_processes(digits_model: Path) -> None:
    """An own model directory for en-GB decodes in a worker process."""
    speech = SpeechRecognition(
        processes=1, config=SpeechConfig(models={"en-GB": str(digits_model)})
    )
    try:
        assert speech.supports("en-GB") and "en-GB" in speech.languages
        assert await speech.decode("en-GB", ["123"], spoken("4 2 7"), final=True) == (
            "427",
            pytest.approx(100, abs=50),
        )
    finally:
        speech.close()


async def test_a_bad_model_directory_fails_when_the_server_is_built(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="acoustic model"):
        SpeechRecognition(config=SpeechConfig(models={"fr-FR": str(tmp_path)}))


async def test_check_names_what_cannot_be_served() -> None:
    speech = SpeechRecognition(processes=0)
    assert speech.check(None, "en-US", HINTS) == "pocketsphinx"
    with pytest.raises(UnsupportedLanguageError):
        speech.check(None, "it-IT", HINTS)
    with pytest.raises(MediaError, match="engine"):
        speech.check("google", "en-US", HINTS)


@pytest.mark.skipif(not whisper_available(), reason="relaykit[whisper] missing")
async def test_whisper_decodes_in_the_worker_processes() -> None:
    speech = SpeechRecognition(processes=1)
    try:
        text, confidence = await speech.decode(
            "en-US", [], spoken("I lost my credit card"), final=True
        )
        assert text is not None and "credit card" in text and 0 < confidence <= 100
        forced, _ = await speech.decode(
            "en-US", HINTS, spoken("I lost my credit card"), final=True, engine="whisper"
        )
        assert forced is not None and "card" in forced
    finally:
        speech.close()
