"""Tones are not speech: a held key's tone stays out of the next prompt's voice detection.

Two independent guards, each tested on its own: the engine keeps the frames of a key's tone
(from its first window until its release) from the prompts' voice detectors, and the voice
detector measures frames without steady tones (DTMF, dial, busy, ringback, test tones).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from relaykit.media.collector import InputStarted, PromptResultData
from relaykit.media.dtmf import ChannelDtmfDetector, generate_dtmf
from relaykit.media.engine import CollectOutputEvent, MediaEngine, SpeechCaptured
from relaykit.media.frames import SAMPLE_RATE, SAMPLES_PER_FRAME
from relaykit.media.playback import MediaItem
from relaykit.media.tts import EspeakTts
from relaykit.media.vad import SpeechSegmenter, VoiceActivityDetector
from relaykit.protocol.calling import Collect, DigitsCollect, SpeechCollect

TONES_MS = [100, 250, 500]


@pytest.fixture(scope="module")
def word() -> np.ndarray:
    return EspeakTts().synthesize("sales")


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.int16)


def frames_of(x: np.ndarray) -> np.ndarray:
    n = len(x) // SAMPLES_PER_FRAME
    return x[: n * SAMPLES_PER_FRAME].reshape(n, SAMPLES_PER_FRAME)


def pin_then_question(
    tone_ms: int, after: np.ndarray, vad_factory: Callable[[], VoiceActivityDetector]
) -> tuple[PromptResultData, list[CollectOutputEvent], list[SpeechCaptured], float]:
    """12# into a digit prompt; a speech prompt starts in the very frame the # is detected.

    Returns the speech prompt's result, its outputs, the audio it captured, and when (call
    time) the # tone ended."""
    engine = MediaEngine(vad_factory=vad_factory)
    call = engine.add_call("c")
    media = [MediaItem("audio", "beep", samples=silence(0.1))]
    pin = Collect(initial_timeout=5.0, digits=DigitsCollect(max=8, terminators="#"))
    engine.start_prompt("c", "pin", media, pin)
    keys = generate_dtmf("12#", tone_ms=tone_ms, gap_ms=100)[: -100 * SAMPLE_RATE // 1000]
    call.push_inbound(np.concatenate([keys, after]))
    tone_end = len(keys) / SAMPLE_RATE

    question = Collect(initial_timeout=1.0, speech=SpeechCollect(hints=("sales", "support")))
    outputs: list[CollectOutputEvent] = []
    captured: list[SpeechCaptured] = []
    asked = False
    for _ in range(400):
        for event in engine.tick():
            if isinstance(event, CollectOutputEvent) and event.control_id == "pin":
                if isinstance(event.output, PromptResultData):
                    assert event.output.params == {"digits": "12", "terminator": "#"}
                    engine.start_prompt("c", "question", media, question)
                    asked = True
            elif isinstance(event, CollectOutputEvent):
                outputs.append(event)
            elif isinstance(event, SpeechCaptured) and event.final:
                captured.append(event)
                answer = engine.speech_recognized("c", "question", "sales", 80.0, event.reason)
                outputs += [e for e in answer if isinstance(e, CollectOutputEvent)]
        done = [o.output for o in outputs if isinstance(o.output, PromptResultData)]
        if done:
            return done[0], outputs, captured, tone_end
    assert asked, "the # was never detected"
    raise AssertionError("the question never ended")


VADS = {
    "energy-only VAD": lambda: VoiceActivityDetector(tone_purity=1.0),
    "tone-aware VAD": VoiceActivityDetector,
}


@pytest.mark.parametrize("vad", VADS.values(), ids=VADS.keys())
@pytest.mark.parametrize("tone_ms", TONES_MS)
def test_the_rest_of_the_pound_tone_is_not_speech(tone_ms, vad):
    """The question hears only the tail of a held # and then silence: no_input, no speech.

    With a VAD that takes any energy for speech, the engine's key tracking alone does it."""
    result, outputs, captured, _ = pin_then_question(tone_ms, silence(2.0), vad)
    assert (result.result_type, result.reason) == ("no_input", "initial_timeout")
    assert not any(isinstance(o.output, InputStarted) for o in outputs)
    assert captured == []


@pytest.mark.parametrize("vad", VADS.values(), ids=VADS.keys())
@pytest.mark.parametrize("tone_ms", TONES_MS)
def test_a_word_after_the_pound_tone_is_captured_without_the_tone(word, tone_ms, vad):
    """A word 100 ms after the # tone starts the speech at the word, and the audio handed to
    the recogniser holds the word but not the tone."""
    after = np.concatenate([silence(0.1), word, silence(1.5)])
    result, outputs, captured, tone_end = pin_then_question(tone_ms, after, vad)
    assert (result.result_type, result.reason) == ("speech", "end_silence")
    (started,) = [o for o in outputs if isinstance(o.output, InputStarted)]
    assert started.at >= tone_end + 0.1, "speech starts with the word, not with the tone"
    (utterance,) = captured
    assert ChannelDtmfDetector().push(utterance.audio) == []
    voiced = np.abs(utterance.audio.astype(float)).max()
    assert voiced > 0.5 * np.abs(word.astype(float)).max()


# -- the voice detector on its own ----------------------------------------------------------------


def dual(f1: float, f2: float, seconds: float, level_dbfs: float = -10.0) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    a = 32767 * 10 ** (level_dbfs / 20)
    return np.round(a * (np.sin(2 * np.pi * f1 * t) + np.sin(2 * np.pi * f2 * t))).astype(np.int16)


STEADY_TONES = {
    "every DTMF key": np.concatenate(
        [generate_dtmf("0123456789*#ABCD", tone_ms=ms, gap_ms=80) for ms in (100, 500)]
    ),
    "a 3 s key": generate_dtmf("5", tone_ms=3000, gap_ms=0),
    "dial tone": dual(350, 440, 3.0),
    "ringback": dual(440, 480, 3.0),
    "busy": np.concatenate([dual(480, 620, 0.5), silence(0.5)] * 3),
    "1 kHz test tone": dual(1000, 1000, 2.0, -16.0),
}


@pytest.mark.parametrize("tone", STEADY_TONES.values(), ids=STEADY_TONES.keys())
def test_steady_tones_on_a_quiet_line_are_not_speech(tone):
    """Not one frame of a steady dual (or single) tone counts as speech."""
    detector = VoiceActivityDetector()
    x = np.concatenate([silence(0.3), tone, silence(0.3)])
    assert not any(detector.push(f) for f in frames_of(x))


def test_the_same_tones_are_speech_to_an_energy_only_detector():
    """The check above can fail: with tone_purity 1.0 a long key is taken for speech."""
    detector = VoiceActivityDetector(tone_purity=1.0)
    x = np.concatenate([silence(0.3), STEADY_TONES["a 3 s key"]])
    assert any(detector.push(f) for f in frames_of(x))


def test_speech_right_after_a_tone_starts_at_the_speech(word):
    """A 500 ms key, 100 ms of silence, a word: one utterance, starting with the word."""
    tone = generate_dtmf("#", tone_ms=500, gap_ms=100)
    x = np.concatenate([silence(0.3), tone, word, silence(1.5)])
    events = SpeechSegmenter().push_samples(x)
    assert [e.type.value for e in events] == ["speech_start", "speech_end"]
    assert events[0].seconds >= 0.3 + 0.6 - 0.02


def test_speech_over_a_steady_tone_is_still_speech(word):
    """Speaking while a dial tone plays: the speech is found, the tone alone is not."""
    tone = dual(350, 440, 3.0, -20.0)
    over = tone.astype(float)
    start = SAMPLE_RATE
    over[start : start + len(word)] += word
    x = np.clip(over, -32768, 32767).astype(np.int16)
    events = SpeechSegmenter().push_samples(np.concatenate([x, silence(1.5)]))
    assert [e.type.value for e in events] == ["speech_start", "speech_end"]
    assert abs(events[0].seconds - 1.0) <= 0.1
