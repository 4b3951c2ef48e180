"""Playback of items made on demand, and items released as soon as the playback is done."""

from __future__ import annotations

import numpy as np

from relaykit.media.engine import MediaEngine
from relaykit.media.frames import SAMPLES_PER_FRAME
from relaykit.media.playback import MediaItem
from relaykit.media.sources import ringtone, ringtone_source, silence_source


def _loaded(kind: str, samples: np.ndarray, released: list[str]) -> MediaItem:
    """An item as the loader fills it: samples paid for by a budget."""
    item = MediaItem(kind, f"{kind}-{len(released)}", samples=samples)
    item.on_release = lambda: released.append(item.label)
    return item


def test_an_hour_long_ringtone_plays_the_same_samples_as_its_array() -> None:
    """The first 7 s (across a cadence cycle) of a 3600 s ringtone source, as the caller
    hears them, are the samples of the 7 s ringtone array."""
    engine = MediaEngine()
    call = engine.add_call("c")
    item = MediaItem("ringtone", "us", source=ringtone_source("us", 3600))
    engine.start_play("c", "p", [item])
    for _ in range(350):
        engine.tick()
    heard = call.recording()[:, 1]
    assert np.array_equal(heard, ringtone("us", 7.0))
    engine.end_call("c")


def test_items_are_released_when_played_and_when_stopped() -> None:
    """A played item gives its budget back and drops its samples; stopping a play releases
    the item playing and those not played yet, once each."""
    engine = MediaEngine()
    engine.add_call("c")
    released: list[str] = []
    first = _loaded("tts", np.full(SAMPLES_PER_FRAME * 3, 100, np.int16), released)
    second = _loaded("tts", np.full(SAMPLES_PER_FRAME * 50, 100, np.int16), released)
    third = _loaded("tts", np.full(SAMPLES_PER_FRAME * 50, 100, np.int16), released)
    engine.start_play("c", "p", [first, second, third])
    for _ in range(5):
        engine.tick()
    assert released == [first.label] and first.samples is None
    assert second.samples is not None
    engine.stop("c", "p")
    assert released == [first.label, second.label, third.label]
    assert second.samples is None and third.samples is None
    engine.end_call("c")
    assert len(released) == 3


def test_a_virtual_callers_audio_items_are_kept_until_the_call_ends() -> None:
    """With keep_audio (a virtual caller checks what audio prompts say), a played audio item
    keeps its samples and its charge until the call ends; then the charge is given back and
    the samples stay with the caller. Other kinds are released as usual."""
    engine = MediaEngine()
    call = engine.add_call("c")
    call.keep_audio = True
    released: list[str] = []
    audio = _loaded("audio", np.full(SAMPLES_PER_FRAME * 2, 7, np.int16), released)
    speech = _loaded("tts", np.full(SAMPLES_PER_FRAME * 2, 7, np.int16), released)
    engine.start_play(
        "c", "p", [audio, speech, MediaItem("silence", "1 s", source=silence_source(1))]
    )
    for _ in range(10):
        engine.tick()
    assert released == [speech.label]
    assert audio.samples is not None
    engine.end_call("c")
    assert released == [speech.label, audio.label]
    assert audio.samples is not None
