"""MediaLoader: media made on demand, long speech in pieces, every byte charged and given back."""

from __future__ import annotations

import pytest

from relaykit.calls.budget import MediaLimits
from relaykit.calls.loader import MediaLoader
from relaykit.media.frames import SAMPLE_RATE
from relaykit.media.tts import EspeakTts
from relaykit.protocol.calling import RingtoneMedia, SilenceMedia, TtsMedia

pytestmark = pytest.mark.asyncio

LONG_TEXT = " ".join(f"This is sentence number {n} of a long announcement." for n in range(40))


@pytest.fixture(scope="module")
def tts() -> EspeakTts:
    return EspeakTts(cache_size=0)


async def test_long_speech_is_made_in_pieces_that_play_as_one_item(tts: EspeakTts) -> None:
    """A 2000-character text becomes one item as long as its whole synthesis (within 5 %),
    made of pieces each charged to the project; releasing the item gives all of it back."""
    loader = MediaLoader(tts)
    try:
        media = [TtsMedia(LONG_TEXT)]
        (item,) = loader.prepare(media)
        await loader.load([item], media, "p")
        budget = loader.budgets["p"]
        assert item.error is None and item.samples is None and item.source is not None
        whole = tts.synthesize(LONG_TEXT)
        assert item.size() == pytest.approx(whole.size, rel=0.05)
        assert budget.bytes_held == item.size() * 2
        assert item.read(0, SAMPLE_RATE).any()
        item.release()
        assert budget.bytes_held == 0 and item.source is None
    finally:
        await loader.close()


async def test_speech_that_cannot_fit_is_refused_before_it_is_synthesised(tts: EspeakTts) -> None:
    """With a 1 MB budget a 2000-character text (about 6 MB of speech) fails at once, and no
    CPU is spent on it."""
    loader = MediaLoader(tts, limits=MediaLimits(max_bytes=2**20))
    try:
        media = [TtsMedia(LONG_TEXT)]
        (item,) = loader.prepare(media)
        await loader.load([item], media, "p")
        assert item.error is not None and "media budget exceeded" in item.error
        assert loader.budgets["p"].cpu_spent == 0 and loader.budgets["p"].bytes_held == 0
    finally:
        await loader.close()


async def test_silence_and_ringtones_cost_nothing(tts: EspeakTts) -> None:
    loader = MediaLoader(tts, limits=MediaLimits(max_bytes=1))
    try:
        media = [SilenceMedia(3600.0), RingtoneMedia("uk", 3600.0)]
        items = loader.prepare(media)
        await loader.load(items, media, "p")
        assert [i.error for i in items] == [None, None]
        assert [i.size() for i in items] == [3600 * SAMPLE_RATE] * 2
        assert loader.budgets["p"].bytes_held == 0
    finally:
        await loader.close()


async def test_items_released_while_loading_are_not_charged(tts: EspeakTts) -> None:
    """A play stopped before its speech is made: the speech is dropped, nothing stays charged."""
    loader = MediaLoader(tts)
    try:
        media = [TtsMedia("Released before it was loaded.")]
        (item,) = loader.prepare(media)
        item.release()
        await loader.load([item], media, "p")
        assert item.samples is None and item.source is None
        assert loader.budgets["p"].bytes_held == 0
    finally:
        await loader.close()
