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


async def test_media_ready_at_once_is_loaded_without_waiting(tts: EspeakTts) -> None:
    """Speech already synthesised, silence and ringtones are loaded by load_now, charged as
    load charges them; speech still to synthesise (or an audio URL) is left to load."""
    cached = EspeakTts()  # with a cache
    loader = MediaLoader(cached)
    try:
        cached.synthesize("Enter a digit")
        media = [TtsMedia("Enter a digit"), SilenceMedia(1.0), RingtoneMedia("us", 2.0)]
        items = loader.prepare(media)
        assert loader.load_now(items, media, "p")
        speech, silence, ring = items
        assert speech.samples is not None and speech.samples.size > 0
        assert loader.budgets["p"].bytes_held == speech.samples.nbytes
        assert silence.source is not None and ring.source is not None
        assert all(item.error is None for item in items)
        speech.release()
        assert loader.budgets["p"].bytes_held == 0

        fresh = [TtsMedia("A sentence not yet spoken"), SilenceMedia(1.0)]
        waiting = loader.prepare(fresh)
        assert not loader.load_now(waiting, fresh, "p")
        assert all(i.samples is None and i.source is None for i in waiting)  # nothing done
        await loader.load(waiting, fresh, "p")
        assert waiting[0].samples is not None and waiting[1].source is not None
    finally:
        await loader.close()


async def test_media_ready_at_once_over_the_budget_fails_like_load(tts: EspeakTts) -> None:
    cached = EspeakTts()
    loader = MediaLoader(cached, limits=MediaLimits(max_bytes=1000))
    try:
        cached.synthesize("Enter a digit")
        media = [TtsMedia("Enter a digit")]
        items = loader.prepare(media)
        assert loader.load_now(items, media, "p")
        assert items[0].error is not None and "media budget exceeded" in items[0].error
        assert items[0].samples is None and loader.budgets["p"].bytes_held == 0
    finally:
        await loader.close()
