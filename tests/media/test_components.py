"""The engine's generic components on real audio: recorder, digit sender, tap; their lifecycle."""

from __future__ import annotations

import numpy as np
import pytest

from relaykit.media.components import MediaComponent, Update
from relaykit.media.dtmf import ChannelDtmfDetector, generate_dtmf
from relaykit.media.engine import ComponentUpdate, MediaEngine, PlaybackEvent
from relaykit.media.frames import FRAME_SECONDS, SAMPLE_RATE, SAMPLES_PER_FRAME
from relaykit.media.playback import MediaItem
from relaykit.media.record import BEEP_SECONDS, Recorder
from relaykit.media.send_digits import DigitSender
from relaykit.media.tap import AudioTap
from relaykit.media.vad import VoiceActivityDetector


def tone(seconds: float, freq: float = 440.0, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def run(engine: MediaEngine, frames: int) -> list:
    events = []
    for _ in range(frames):
        events += engine.tick()
    return events


def updates(events: list) -> list[ComponentUpdate]:
    return [e for e in events if isinstance(e, ComponentUpdate)]


class Sink:
    """Collects what a recorder or tap hands on; can be told to fail."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.frames: list[np.ndarray] = []
        self.fail_after = fail_after

    def __call__(self, frame: np.ndarray) -> bool:
        if self.fail_after is not None and len(self.frames) >= self.fail_after:
            return False
        self.frames.append(np.array(frame))
        return True

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, dtype=np.int16)


def test_recorder_directions_pick_the_callers_audio_what_it_hears_or_both():
    """speak: the caller's tone; listen: the IVR's tone; both: the sum; stereo: side by side."""
    engine = MediaEngine()
    call = engine.add_call("c", record=False)
    caller, ivr = tone(1.0, 440.0, 4000), tone(1.0, 1000.0, 3000)
    call.push_inbound(caller)
    engine.start_play("c", "play", [MediaItem("audio", "ivr", samples=ivr)])
    sinks = {name: Sink() for name in ("speak", "listen", "both", "stereo")}
    for name, sink in sinks.items():
        direction = "both" if name == "stereo" else name
        engine.start_component(
            "c", Recorder(name, sink, direction=direction, stereo=name == "stereo")
        )
    run(engine, 50)
    n = 40 * SAMPLES_PER_FRAME  # well inside both sounds
    assert np.array_equal(sinks["speak"].audio[:n], caller[:n])
    assert np.array_equal(sinks["listen"].audio[:n], ivr[:n])
    both = np.clip(caller[:n].astype(np.int32) + ivr[:n], -32768, 32767)
    assert np.array_equal(sinks["both"].audio[:n], both)
    stereo = sinks["stereo"].audio
    assert stereo.shape[1] == 2
    assert np.array_equal(stereo[:n, 0], caller[:n]) and np.array_equal(stereo[:n, 1], ivr[:n])


def test_recorder_beeps_first_and_records_from_the_end_of_the_beep():
    """With beep the caller hears 0.5 s of 1 kHz; the recording holds none of it."""
    engine = MediaEngine()
    call = engine.add_call("c", record=False)
    heard: list[np.ndarray] = []
    call.on_outbound = heard.append
    sink = Sink()
    engine.start_component("c", Recorder("r", sink, direction="listen", beep_first=True))
    run(engine, 40)
    beep = np.concatenate(heard)
    assert len(beep) == round(BEEP_SECONDS * SAMPLE_RATE)  # only the beep went out
    spectrum = np.abs(np.fft.rfft(beep))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(beep) - 1000.0) < 5
    assert len(sink.frames) == 40 - round(BEEP_SECONDS / FRAME_SECONDS)
    assert not sink.audio.any()  # what the caller heard after the beep: silence


def speech_like(seconds: float) -> np.ndarray:
    """Noise bursts with syllable-like gaps: loud enough for the voice detector."""
    rng = np.random.default_rng(7)
    out = rng.normal(0, 3000, round(seconds * SAMPLE_RATE))
    envelope = (np.arange(len(out)) // 2400) % 4 != 3  # 150 ms on, 50 ms off
    return (out * envelope).astype(np.int16)


def test_recorder_ends_on_silence_after_speech_with_its_duration():
    engine = MediaEngine()
    call = engine.add_call("c", record=False)
    call.push_inbound(speech_like(1.0))
    sink = Sink()
    recorder = Recorder(
        "r", sink, initial_timeout=5.0, end_silence_timeout=0.6, vad=VoiceActivityDetector()
    )
    engine.start_component("c", recorder)
    events = updates(run(engine, 150))
    (end,) = events
    assert (end.state, end.reason, end.final) == ("finished", "end_silence", True)
    assert 1.5 <= end.params["duration"] <= 1.8  # 1 s of speech, then 0.6 s of silence
    assert end.params["duration"] == pytest.approx(len(sink.frames) * FRAME_SECONDS)
    assert not engine.has_component("c", "r")


def test_recorder_without_speech_ends_no_input_and_a_terminator_ends_it():
    engine = MediaEngine()
    engine.add_call("c", record=False)
    engine.start_component(
        "c", Recorder("quiet", Sink(), initial_timeout=0.5, vad=VoiceActivityDetector())
    )
    (end,) = updates(run(engine, 40))
    assert (end.state, end.reason) == ("no_input", "initial_timeout")
    assert end.at == pytest.approx(0.5, abs=0.021)

    call = engine.add_call("d", record=False)
    engine.start_component("d", Recorder("keyed", Sink(), terminators="#"))
    run(engine, 10)
    call.push_inbound(generate_dtmf("1#"))
    (end,) = updates(run(engine, 30))
    assert (end.state, end.reason) == ("finished", "terminator")


def test_a_recorder_whose_sink_fails_ends_in_error():
    engine = MediaEngine()
    engine.add_call("c", record=False)
    engine.start_component("c", Recorder("r", Sink(fail_after=3)))
    (end,) = updates(run(engine, 10))
    assert (end.state, end.reason, end.params["duration"]) == ("error", "write failed", 0.06)


def test_digit_sender_plays_tones_a_detector_decodes_with_v2_pauses():
    """'1w2W#': the far end's detector hears 1, 2, # with 0.5 s and 1 s pauses between."""
    engine = MediaEngine()
    call = engine.add_call("c", record=False)
    frames: list[np.ndarray] = []
    call.on_outbound = frames.append
    engine.start_component("c", DigitSender("s", "1w2W#"))
    events = updates(run(engine, 200))
    (end,) = events
    assert (end.state, end.final) == ("finished", True)
    # three keys of 0.2 s each and 1.5 s of pauses
    assert end.at == pytest.approx(3 * 0.2 + 1.5, abs=0.021)
    detector = ChannelDtmfDetector()
    heard = [(i * FRAME_SECONDS, key) for i, f in enumerate(frames) for key in detector.push(f)]
    assert [key for _, key in heard] == ["1", "2", "#"]
    gaps = np.diff([at for at, _ in heard])
    assert gaps == pytest.approx([0.2 + 0.5, 0.2 + 1.0], abs=0.03)


def test_digit_sender_mixes_over_a_play():
    """The IVR's play goes on under the digits: both are in what the caller hears."""
    engine = MediaEngine()
    call = engine.add_call("c", record=False)
    frames: list[np.ndarray] = []
    call.on_outbound = frames.append
    engine.start_play("c", "p", [MediaItem("audio", "music", samples=tone(1.0, 300.0, 2000))])
    engine.start_component("c", DigitSender("s", "5"))
    run(engine, 15)
    audio = np.concatenate(frames)[: 5 * SAMPLES_PER_FRAME]
    spectrum = np.abs(np.fft.rfft(audio))
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    for f in (300.0, 770.0, 1336.0):  # the play, and key 5's two tones
        assert spectrum[np.argmin(abs(freqs - f))] > 20 * np.median(spectrum)


def test_tap_hands_every_frame_silence_included_and_ends_when_the_sink_fails():
    engine = MediaEngine()
    call = engine.add_call("c", record=False)
    sink = Sink()
    engine.start_component("c", AudioTap("t", sink, "speak"))
    call.push_inbound(tone(0.2))
    assert updates(run(engine, 30)) == []
    assert len(sink.frames) == 30
    assert np.array_equal(sink.audio[: 10 * SAMPLES_PER_FRAME], tone(0.2)[: 10 * SAMPLES_PER_FRAME])
    assert not sink.audio[12 * SAMPLES_PER_FRAME :].any()

    engine.start_component("c", AudioTap("t2", Sink(fail_after=2), "listen"))
    (end,) = updates(run(engine, 5))
    assert (end.control_id, end.state, end.reason) == ("t2", "finished", "error")


class Counting(MediaComponent):
    kind = "counting"

    def __init__(self, control_id: str) -> None:
        super().__init__(control_id)
        self.heard = 0
        self.keys: list[str] = []

    def hear(self, inbound, outbound, now):
        self.heard += 1
        return [Update("tick")] if self.heard == 2 else []

    def key(self, key, now):
        self.keys.append(key)
        return []


def test_components_share_the_table_stop_and_hang_up_with_final_updates():
    """A MediaComponent runs beside a play, gets keys (in band and out of band), is stopped or
    ended by the hang-up with one final update, and leaves the table."""
    engine = MediaEngine()
    call = engine.add_call("c", record=False)
    engine.start_play("c", "p", [MediaItem("audio", "a", samples=tone(2.0))])
    component = Counting("x")
    engine.start_component("c", component)
    with pytest.raises(ValueError, match="already running"):
        engine.start_component("c", Counting("p"))
    assert engine.component_count("c") == 2
    assert not engine.set_volume("c", "x", -6.0)  # no volume for this kind
    (tick,) = updates(run(engine, 3))
    assert (tick.kind, tick.state, tick.final) == ("counting", "tick", False)
    call.push_inbound(generate_dtmf("7"))
    run(engine, 15)
    engine.inject_key("c", "9")
    assert component.keys == ["7", "9"]

    (stopped,) = updates(engine.stop("c", "x"))
    assert (stopped.state, stopped.reason, stopped.final) == ("finished", "stopped", True)
    assert not engine.has_component("c", "x") and engine.has_component("c", "p")
    assert updates(engine.stop("c", "x")) == []

    other = Counting("y")
    engine.start_component("c", other)
    ended = engine.end_call("c")
    (hangup,) = updates(ended)
    assert (hangup.control_id, hangup.reason) == ("y", "hangup")
    assert any(isinstance(e, PlaybackEvent) and e.cause == "hangup" for e in ended)
