"""The media engine on its own: frames, DTMF from audio, prompt timers, barge-in, volume."""

from __future__ import annotations

import numpy as np
import pytest

from relaykit.media.collector import InputStarted, PromptResultData
from relaykit.media.dtmf import generate_dtmf
from relaykit.media.engine import (
    CollectOutputEvent,
    ItemStarted,
    KeyDetected,
    MediaEngine,
    PlaybackEvent,
)
from relaykit.media.frames import SAMPLE_RATE, SAMPLES_PER_FRAME
from relaykit.media.playback import MediaItem
from relaykit.protocol.calling import Collect, DigitsCollect


def tone(seconds: float, freq: float = 440.0, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def item(samples: np.ndarray, label: str = "tone") -> MediaItem:
    return MediaItem("audio", label, samples=samples)


def run(engine: MediaEngine, frames: int) -> list:
    events = []
    for _ in range(frames):
        events += engine.tick()
    return events


def results(events: list) -> list[PromptResultData]:
    return [
        e.output
        for e in events
        if isinstance(e, CollectOutputEvent) and isinstance(e.output, PromptResultData)
    ]


def digits(
    max_: int | None = None,
    terminators: str = "",
    digit_timeout: float = 1.0,
    initial_timeout: float = 5.0,
) -> Collect:
    return Collect(
        initial_timeout=initial_timeout,
        digits=DigitsCollect(max=max_, terminators=terminators, digit_timeout=digit_timeout),
    )


def test_play_renders_the_samples_and_reports_playing_then_finished():
    """A 100 ms item comes out sample for sample, between playing and finished events."""
    engine = MediaEngine()
    call = engine.add_call("c")
    samples = tone(0.1)
    engine.start_play("c", "p", [item(samples)])
    events = run(engine, 8)
    states = [e.state for e in events if isinstance(e, PlaybackEvent)]
    assert states == ["playing", "finished"]
    out = call.recording()[:, 1]
    assert np.array_equal(out[: len(samples)], samples)
    assert not out[len(samples) :].any()


def test_playback_waits_silently_for_media_that_is_still_loading():
    """An item without samples yet renders silence; it plays once filled in."""
    engine = MediaEngine()
    call = engine.add_call("c")
    pending = MediaItem("tts", "hello")
    engine.start_play("c", "p", [pending])
    assert not any(isinstance(e, PlaybackEvent) for e in run(engine, 5))
    pending.samples = tone(0.04)
    events = run(engine, 5)
    assert [e.state for e in events if isinstance(e, PlaybackEvent)] == ["playing", "finished"]
    assert [e.at for e in events if isinstance(e, ItemStarted)] == [pytest.approx(0.1)]
    assert call.recording()[:, 1][5 * SAMPLES_PER_FRAME :].any()


def test_media_error_ends_a_prompt_with_error_and_the_message():
    """An item that failed to load makes the play event error and the prompt end in error."""
    engine = MediaEngine()
    engine.add_call("c")
    engine.start_prompt(
        "c", "q", [MediaItem("audio", "x.wav", error="x.wav: not found")], digits(max_=1)
    )
    events = run(engine, 2)
    assert [e.state for e in events if isinstance(e, PlaybackEvent)] == ["error"]
    (result,) = results(events)
    assert result.result_type == "error" and result.reason == "error"
    assert result.params == {"message": "x.wav: not found"}


def test_dtmf_in_the_callers_audio_is_collected_and_barges_in_within_one_frame():
    """The first detected key stops the prompt's media in the very frame it is detected."""
    engine = MediaEngine()
    call = engine.add_call("c")
    engine.start_prompt("c", "q", [item(tone(5.0))], digits(max_=3))
    run(engine, 10)
    call.push_inbound(generate_dtmf("123"))
    events = []
    detected_frame = None
    for _ in range(100):
        frame_events = engine.tick()
        if detected_frame is None and any(isinstance(e, KeyDetected) for e in frame_events):
            detected_frame = engine.frame - 1
        events += frame_events
    assert [e.key for e in events if isinstance(e, KeyDetected)] == ["1", "2", "3"]
    (result,) = results(events)
    assert result.params == {"digits": "123", "terminator": ""}
    assert result.reason == "max_digits"
    assert (
        sum(
            isinstance(e, CollectOutputEvent) and isinstance(e.output, InputStarted) for e in events
        )
        == 1
    )
    out = call.recording()[:, 1].reshape(-1, SAMPLES_PER_FRAME)
    assert out[detected_frame - 1].any(), "the prompt played up to the detection"
    assert not out[detected_frame:].any(), "and not a single sample in or after that frame"


def test_barge_in_can_be_turned_off_so_the_media_plays_through_input():
    """With barge_in false, keys are collected while the media keeps playing."""
    engine = MediaEngine()
    call = engine.add_call("c")
    collect = Collect(digits=DigitsCollect(max=5), barge_in=False)
    engine.start_prompt("c", "q", [item(tone(3.0))], collect)
    call.push_inbound(generate_dtmf("1"))
    run(engine, 30)
    assert call.keys and call.keys[0][1] == "1"
    assert call.recording()[:, 1][-SAMPLES_PER_FRAME:].any(), "still playing after the key"


def test_initial_timeout_starts_when_the_media_finishes():
    """0.5 s of media and a 0.3 s initial timeout give no_input at 0.8 s of media clock."""
    engine = MediaEngine()
    engine.add_call("c")
    engine.start_prompt("c", "q", [item(tone(0.5))], digits(max_=4, initial_timeout=0.3))
    events = run(engine, 100)
    (result,) = results(events)
    assert (result.result_type, result.reason) == ("no_input", "initial_timeout")
    (end,) = [e for e in events if isinstance(e, CollectOutputEvent)]
    assert end.at == pytest.approx(0.8, abs=0.021)


def test_digit_timeout_restarts_on_every_key():
    """Keys 0.3 s apart under a 0.5 s digit timeout are all collected; the timeout ends it."""
    engine = MediaEngine()
    call = engine.add_call("c")
    engine.start_prompt("c", "q", [item(tone(0.02))], digits(digit_timeout=0.5))
    call.push_inbound(generate_dtmf("12", tone_ms=100, gap_ms=200))
    call.push_inbound(generate_dtmf("3", tone_ms=100, gap_ms=0))
    events = run(engine, 150)
    (result,) = results(events)
    assert result.params == {"digits": "123", "terminator": ""}
    assert result.reason == "digit_timeout"


def test_terminator_alone_gives_an_empty_digit_result():
    """Pressing only the terminator returns digit with no digits and the terminator."""
    engine = MediaEngine()
    call = engine.add_call("c")
    engine.start_prompt("c", "q", [item(tone(0.02))], digits(max_=4, terminators="#*"))
    call.push_inbound(generate_dtmf("*"))
    (result,) = results(run(engine, 30))
    assert result.params == {"digits": "", "terminator": "*"}
    assert result.reason == "terminator"


def test_stop_ends_a_prompt_once_with_the_captured_digits():
    """stop() gives no_input/stopped carrying the keys so far; a second stop gives nothing."""
    engine = MediaEngine()
    call = engine.add_call("c")
    engine.start_prompt("c", "q", [item(tone(3.0))], digits(max_=6))
    call.push_inbound(generate_dtmf("98"))
    run(engine, 25)
    (result,) = results(engine.stop("c", "q"))
    assert (result.result_type, result.reason) == ("no_input", "stopped")
    assert result.params == {"digits": "98", "terminator": ""}
    assert engine.stop("c", "q") == []
    assert not engine.has_component("c", "q")


def test_ending_a_call_ends_its_prompts_and_plays_and_releases_waiting_audio():
    """end_call: play error, prompt error/hangup, and queued caller audio callbacks fire."""
    engine = MediaEngine()
    call = engine.add_call("c")
    engine.start_play("c", "p", [item(tone(2.0))])
    engine.start_prompt("c", "q", [item(tone(2.0))], digits(max_=2))
    released = []
    call.push_inbound(tone(5.0), lambda: released.append(True))
    run(engine, 3)
    events = engine.end_call("c")
    assert sorted(e.state for e in events if isinstance(e, PlaybackEvent)) == ["error", "error"]
    (result,) = results(events)
    assert (result.result_type, result.reason) == ("error", "hangup")
    assert released == [True]
    assert engine.get_call("c") is None


def test_volume_applies_a_db_gain_to_the_samples_and_minus_40_is_silence():
    """set_volume(-6) halves the amplitude; -40 dB mutes."""
    engine = MediaEngine()
    call = engine.add_call("c")
    engine.start_play("c", "p", [item(tone(1.0, amplitude=10000))])
    run(engine, 10)
    engine.set_volume("c", "p", -6.0)
    run(engine, 10)
    engine.set_volume("c", "p", -40.0)
    run(engine, 10)
    out = call.recording()[:, 1].reshape(-1, SAMPLES_PER_FRAME).astype(float)
    peak = np.abs(out).max(axis=1)
    assert peak[2:9].min() == pytest.approx(10000, rel=0.01)
    assert peak[11:19].max() == pytest.approx(10000 * 10 ** (-6 / 20), rel=0.01)
    assert not peak[21:].any()


def test_calls_are_independent_in_one_batch():
    """Fifty calls pressing different keys in the same ticks each get their own digits."""
    engine = MediaEngine()
    keys = "0123456789*#ABCD"
    for n in range(50):
        call = engine.add_call(f"c{n}")
        engine.start_prompt(f"c{n}", "q", [item(tone(0.02))], digits(max_=2))
        call.push_inbound(generate_dtmf(keys[n % 16] + keys[(n * 7) % 16]))
    got = {
        r.call_id: r.output.params["digits"]
        for r in run(engine, 40)
        if isinstance(r, CollectOutputEvent) and isinstance(r.output, PromptResultData)
    }
    assert got == {f"c{n}": keys[n % 16] + keys[(n * 7) % 16] for n in range(50)}
