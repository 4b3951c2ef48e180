"""Bridged audio in the engine: two calls hear each other's far end in the same tick."""

from __future__ import annotations

import numpy as np

from relaykit.media.bridge import BridgedAudio
from relaykit.media.engine import MediaEngine
from relaykit.media.frames import SAMPLE_RATE, SAMPLES_PER_FRAME
from relaykit.media.playback import MediaItem
from relaykit.media.record import Recorder


def tone(seconds: float, freq: float, amplitude: float = 6000.0) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def bridged(engine: MediaEngine) -> None:
    a, b = engine.get_call("a"), engine.get_call("b")
    assert a is not None and b is not None
    engine.start_component("a", BridgedAudio("bridge", b))
    engine.start_component("b", BridgedAudio("bridge", a))


def test_each_leg_hears_the_other_legs_audio_sample_for_sample_in_the_same_frame():
    """What A's far end says is B's outbound, and the other way round, with no frame of delay;
    neither hears itself."""
    engine = MediaEngine()
    a, b = engine.add_call("a"), engine.add_call("b")
    bridged(engine)
    said_a, said_b = tone(0.5, 440.0), tone(0.5, 1300.0)
    a.push_inbound(said_a)
    b.push_inbound(said_b)
    for _ in range(25):
        engine.tick()
    heard_by_a, heard_by_b = a.recording()[:, 1], b.recording()[:, 1]
    assert np.array_equal(heard_by_a, said_b)
    assert np.array_equal(heard_by_b, said_a)


def test_bridged_audio_mixes_with_what_plays_and_recorders_hear_the_mix():
    """A play on leg A sounds together with B's voice; a recorder of what A hears gets both."""
    engine = MediaEngine()
    a, b = engine.add_call("a"), engine.add_call("b")
    bridged(engine)
    voice, prompt = tone(0.4, 700.0, 4000.0), tone(0.4, 1900.0, 3000.0)
    b.push_inbound(voice)
    engine.start_play("a", "play", [MediaItem("audio", "prompt", samples=prompt)])
    heard: list[np.ndarray] = []

    def keep(frame: np.ndarray) -> bool:
        heard.append(frame.copy())
        return True

    engine.start_component("a", Recorder("rec", keep, direction="listen"))
    for _ in range(20):
        engine.tick()
    n = 15 * SAMPLES_PER_FRAME
    expected = voice[:n].astype(np.int32) + prompt[:n]
    assert np.array_equal(a.recording()[:n, 1], expected)
    assert np.array_equal(np.concatenate(heard)[:n], expected)


def test_a_stopped_bridge_leaves_the_table_and_the_legs_hear_nothing_more():
    engine = MediaEngine()
    a, b = engine.add_call("a"), engine.add_call("b")
    bridged(engine)
    assert engine.stop("a", "bridge") == [] and engine.stop("b", "bridge") == []
    assert not engine.has_component("a", "bridge") and engine.component_count("b") == 0
    b.push_inbound(tone(0.2, 500.0))
    for _ in range(10):
        engine.tick()
    assert not a.recording()[:, 1].any()


def test_a_leg_whose_peer_ended_hears_silence_not_its_last_frame():
    """The engine forgets an ended call's inbound frame, so a bridge not yet taken down does
    not repeat it."""
    engine = MediaEngine()
    a, b = engine.add_call("a"), engine.add_call("b")
    bridged(engine)
    b.push_inbound(tone(1.0, 600.0))
    for _ in range(5):
        engine.tick()
    engine.end_call("b")
    for _ in range(5):
        engine.tick()
    assert a.recording()[: 5 * SAMPLES_PER_FRAME, 1].any()
    assert not a.recording()[5 * SAMPLES_PER_FRAME :, 1].any()
