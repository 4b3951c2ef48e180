"""Detectors on real audio: keys, fax tones (CNG/CED), answering machines by voice timing."""

from __future__ import annotations

import numpy as np
import pytest

from relaykit.media.detect import DigitDetector, FaxToneDetector, MachineDetector
from relaykit.media.dtmf import generate_dtmf
from relaykit.media.engine import ComponentUpdate, MediaEngine
from relaykit.media.frames import SAMPLE_RATE
from relaykit.media.record import beep
from relaykit.media.tts import EspeakTts
from relaykit.media.vad import VoiceActivityDetector

GREETING = (
    "Hello, you have reached the voicemail of Jordan Lee. I cannot take your call right now, "
    "please leave a message after the tone."
)


@pytest.fixture(scope="module")
def tts() -> EspeakTts:
    return EspeakTts()


def tone(seconds: float, freq: float, amplitude: float = 6000.0) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.int16)


def detect(component, audio: np.ndarray, seconds: float) -> list[ComponentUpdate]:
    """Run ``component`` on a call whose caller sends ``audio``; its updates in order."""
    engine = MediaEngine()
    call = engine.add_call("c", record=False)
    call.push_inbound(audio)
    engine.start_component("c", component)
    events = []
    for _ in range(round(seconds / 0.02)):
        events += engine.tick()
    return [e for e in events if isinstance(e, ComponentUpdate)]


def states(updates: list[ComponentUpdate]) -> list[str]:
    return [u.state for u in updates]


def test_digit_detector_reports_the_keys_asked_for_then_finishes_at_its_timeout():
    audio = np.concatenate([silence(0.2), generate_dtmf("1#2")])
    found = detect(DigitDetector("d", timeout=2.0, digits="12"), audio, 3.0)
    assert states(found) == ["1", "2", "finished"]
    assert {u.params["type"] for u in found} == {"digit"}
    assert (found[-1].reason, found[-1].at) == ("timeout", pytest.approx(2.0, abs=0.021))


@pytest.mark.parametrize(
    ("name", "freq", "seconds"),
    [("CNG", 1100.0, 0.5), ("CED", 2100.0, 3.0)],
)
def test_fax_tones_are_reported_once_per_burst(name, freq, seconds):
    """Two bursts of the tone (with 1 s between) give two reports, each within the burst."""
    burst = tone(seconds, freq)
    audio = np.concatenate([silence(0.5), burst, silence(1.0), burst])
    found = detect(FaxToneDetector("f", timeout=10.0), audio, 2 * seconds + 2.0)
    results = [u for u in found if not u.final]
    assert states(results) == [name, name]
    assert 0.5 < results[0].at < 0.5 + min(seconds, 0.6)


def test_fax_detector_honours_tone_and_ignores_speech_and_dtmf(tts):
    cng = np.concatenate([silence(0.3), tone(0.5, 1100.0)])
    assert states(detect(FaxToneDetector("f", 2.0, tone="CED"), cng, 1.5)) == []
    assert states(detect(FaxToneDetector("f", 2.0, tone="CNG"), cng, 1.5)) == ["CNG"]
    talk = np.concatenate([tts.synthesize(GREETING), generate_dtmf("123456789*0#")])
    assert states(detect(FaxToneDetector("f", 30.0), talk, len(talk) / SAMPLE_RATE)) == []


def machine(**options) -> MachineDetector:
    return MachineDetector("m", 30.0, VoiceActivityDetector(), **options)


def test_a_long_greeting_then_a_beep_is_a_machine_ready_at_the_end_of_the_beep(tts):
    greeting = tts.synthesize(GREETING)
    audio = np.concatenate([silence(0.5), greeting, silence(0.3), beep(0.5, 1400.0)])
    found = detect(machine(), audio, len(audio) / SAMPLE_RATE + 1.0)
    assert states(found)[0] == "MACHINE"
    assert states(found)[-2:] == ["READY", "finished"]
    assert set(states(found)[1:-2]) <= {"NOT_READY"}
    assert found[0].at < 0.5 + 2.0  # decided early, from the greeting's length
    beep_end = len(audio) / SAMPLE_RATE
    assert found[-2].at == pytest.approx(beep_end, abs=0.06)
    assert found[-1].reason == "ready"


def test_a_greeting_without_beep_is_ready_after_the_silence(tts):
    greeting = tts.synthesize(GREETING)
    audio = np.concatenate([silence(0.5), greeting])
    found = detect(machine(end_silence_timeout=0.8), audio, len(audio) / SAMPLE_RATE + 2.0)
    assert states(found)[0] == "MACHINE" and states(found)[-2:] == ["READY", "finished"]
    assert found[-2].at == pytest.approx(len(audio) / SAMPLE_RATE + 0.8, abs=0.35)


@pytest.mark.parametrize("answer", ["Hello?", "Yes?", "Hi, this is Sam."])
def test_a_short_answer_then_silence_is_a_human(tts, answer):
    audio = np.concatenate([silence(0.4), tts.synthesize(answer)])
    found = detect(machine(), audio, len(audio) / SAMPLE_RATE + 2.0)
    assert states(found) == ["HUMAN", "finished"]
    assert found[0].at == pytest.approx(len(audio) / SAMPLE_RATE + 1.0, abs=0.4)


def test_silence_is_unknown_after_the_initial_timeout_and_thresholds_change_the_verdict(tts):
    found = detect(machine(initial_timeout=2.0), silence(5.0), 4.0)
    assert states(found) == ["UNKNOWN", "finished"]
    assert found[0].at == pytest.approx(2.0, abs=0.021)
    # the same short answer is a machine once the voice threshold is under its length
    audio = np.concatenate([silence(0.4), tts.synthesize("Hi, this is Sam.")])
    found = detect(machine(machine_voice_threshold=0.5), audio, 4.0)
    assert states(found)[0] == "MACHINE"


def test_a_detector_stops_at_its_timeout_whatever_it_heard(tts):
    audio = np.concatenate([silence(0.3), tts.synthesize(GREETING)])
    found = detect(MachineDetector("m", 3.0, VoiceActivityDetector()), audio, 5.0)
    assert states(found) == ["MACHINE", "finished"]
    assert (found[-1].reason, found[-1].at) == ("timeout", pytest.approx(3.0, abs=0.021))
