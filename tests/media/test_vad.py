"""Voice activity detection on real espeak-ng speech, silence, noise and clicks."""

from __future__ import annotations

import numpy as np
import pytest

from relaykit.media.frames import FRAME_SECONDS, SAMPLE_RATE, SAMPLES_PER_FRAME
from relaykit.media.tts import EspeakTts
from relaykit.media.vad import (
    SpeechSegmenter,
    VadEvent,
    VadEventType,
    VoiceActivityDetector,
    frame_level_db,
)

START, END = VadEventType.SPEECH_START, VadEventType.SPEECH_END
TOLERANCE = 0.100  # seconds
TEXTS = ["sales", "one two three", "hello, I would like to talk to someone in billing please"]


@pytest.fixture(scope="module")
def tts() -> EspeakTts:
    return EspeakTts()


def speech_at(tts: EspeakTts, text: str, level_db: float = -20.0) -> np.ndarray:
    """``text`` as float samples scaled so its voiced part is at ``level_db`` dBFS."""
    x = tts.synthesize(text).astype(np.float64)
    frames = x[: len(x) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME].reshape(-1, SAMPLES_PER_FRAME)
    power = np.mean(frames**2, axis=1)
    active = power[power > power.max() * 1e-3]  # ignore the silence around the words
    return x * 10 ** (level_db / 20) * 32768 / np.sqrt(active.mean())


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE))


def noise(seconds: float, level_db: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 32768 * 10 ** (level_db / 20), round(seconds * SAMPLE_RATE))


def pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def frames_of(x: np.ndarray) -> np.ndarray:
    """``x`` as int16 20 ms frames (a trailing partial frame is dropped)."""
    samples = pcm(x)
    n = len(samples) // SAMPLES_PER_FRAME
    return samples[: n * SAMPLES_PER_FRAME].reshape(n, SAMPLES_PER_FRAME)


def audible_span(x: np.ndarray, offset: float) -> tuple[float, float]:
    """Start and end (seconds, from ``offset``) of the frames of ``x`` above -45 dBFS."""
    levels = np.array([frame_level_db(f) for f in frames_of(x)])
    loud = np.flatnonzero(levels > -45.0)
    return offset + loud[0] * FRAME_SECONDS, offset + (loud[-1] + 1) * FRAME_SECONDS


def run(segmenter: SpeechSegmenter, x: np.ndarray) -> list[tuple[VadEvent, float]]:
    """Push ``x`` frame by frame; each event with the time at which it was emitted."""
    out = []
    for i, frame in enumerate(frames_of(x)):
        event = segmenter.push(frame)
        if event is not None:
            out.append((event, (i + 1) * FRAME_SECONDS))
    return out


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("background_db", [None, -50.0])
def test_start_and_end_of_speech_are_found(
    tts: EspeakTts, text: str, background_db: float | None
) -> None:
    """Start is flagged within 100 ms of the onset, end 1 s (the timeout) after the last word."""
    lead = 1.0
    speech = speech_at(tts, text)
    x = np.concatenate([silence(lead), speech, silence(2.0)])
    if background_db is not None:
        x = x + noise(len(x) / SAMPLE_RATE, background_db)
    onset, offset = audible_span(speech, lead)

    events = run(SpeechSegmenter(end_silence_timeout=1.0), x)

    assert [e.type for e, _ in events] == [START, END]
    (start, start_at), (end, end_at) = events
    assert onset - TOLERANCE <= start.seconds <= onset + TOLERANCE
    assert start_at <= onset + TOLERANCE  # reported, not just dated, within 100 ms
    assert abs(end.seconds - offset) <= TOLERANCE
    assert abs(end_at - (offset + 1.0)) <= TOLERANCE


@pytest.mark.parametrize("timeout", [0.5, 2.0])
def test_end_of_speech_follows_the_configured_silence(tts: EspeakTts, timeout: float) -> None:
    """SPEECH_END is emitted end_silence_timeout after the speech stops, not before."""
    speech = speech_at(tts, "one two three")
    x = np.concatenate([silence(0.5), speech, silence(timeout + 1.0)])
    _, offset = audible_span(speech, 0.5)

    events = run(SpeechSegmenter(end_silence_timeout=timeout), x)

    assert [e.type for e, _ in events] == [START, END]
    assert abs(events[1][1] - (offset + timeout)) <= TOLERANCE


@pytest.mark.parametrize(
    "background",
    [silence(5.0), noise(5.0, -50.0), noise(5.0, -60.0), silence(1.0) + 3],
    ids=["digital-silence", "noise-50dBFS", "noise-60dBFS", "dc-offset"],
)
def test_silence_and_low_noise_are_not_speech(background: np.ndarray) -> None:
    """No speech is detected in silence or -50 dBFS white noise."""
    detector = VoiceActivityDetector()
    segmenter = SpeechSegmenter(detector)
    assert run(segmenter, background) == []
    assert not detector.in_speech


def test_noise_present_from_the_start_is_not_speech_but_speech_over_it_is(
    tts: EspeakTts,
) -> None:
    """Louder steady noise (-35 dBFS) becomes the floor; speech above it is still found."""
    speech = speech_at(tts, "sales")
    x = np.concatenate([silence(2.0), speech, silence(1.5)])
    x = x + noise(len(x) / SAMPLE_RATE, -35.0)
    onset, _ = audible_span(speech, 2.0)

    events = run(SpeechSegmenter(end_silence_timeout=1.0), x)

    assert [e.type for e, _ in events] == [START, END]
    assert abs(events[0][0].seconds - onset) <= TOLERANCE


def test_two_utterances_give_two_start_end_pairs(tts: EspeakTts) -> None:
    """Speech, a long pause, speech again: two separate starts and ends, in order."""
    first, second = speech_at(tts, "sales"), speech_at(tts, "support please")
    t_second = 0.5 + len(first) / SAMPLE_RATE + 3.0
    x = np.concatenate([silence(0.5), first, silence(3.0), second, silence(1.5)])
    onsets = [audible_span(first, 0.5)[0], audible_span(second, t_second)[0]]

    events = run(SpeechSegmenter(end_silence_timeout=1.0), x)

    assert [e.type for e, _ in events] == [START, END, START, END]
    for (event, _), onset in zip(events[::2], onsets, strict=True):
        assert abs(event.seconds - onset) <= TOLERANCE


def burst(ms: float, at_ms: float, total_ms: float = 1000.0) -> np.ndarray:
    """A -6 dBFS square-ish burst of ``ms`` starting ``at_ms`` into ``total_ms`` of silence."""
    x = silence(total_ms / 1000)
    start, n = round(at_ms * 16), round(ms * 16)
    x[start : start + n] = 0.5 * 32768 * np.sign(np.sin(np.arange(n) * 0.3) + 1e-9)
    return x


@pytest.mark.parametrize(
    ("click_ms", "shift_ms"),
    [(ms, shift) for ms in (5, 20, 40) for shift in (0.0, 5.0, 9.0, 13.0)] + [(50, 0.0)],
)
def test_short_clicks_are_not_speech(click_ms: float, shift_ms: float) -> None:
    """Loud clicks up to 40 ms at any alignment (50 ms frame-aligned) never start speech."""
    x = np.concatenate([burst(click_ms, 300 + shift_ms), burst(click_ms, 300 + shift_ms)])
    detector = VoiceActivityDetector()
    assert not any(detector.push(f) for f in frames_of(x))
    assert not detector.in_speech


@pytest.mark.parametrize("shift_ms", [0.0, 9.0])
def test_a_sound_longer_than_60ms_does_start_speech(shift_ms: float) -> None:
    """The click limit is about length: 70 ms of the same sound is taken for speech."""
    detector = VoiceActivityDetector()
    assert any(detector.push(f) for f in frames_of(burst(70, 300 + shift_ms)))
    assert detector.onset_frame == (300 + shift_ms) // 20


def test_push_flags_speech_frames_for_the_prompt_engine(tts: EspeakTts) -> None:
    """push() is True only inside the utterance, from within 100 ms of its onset."""
    speech = speech_at(tts, "hello, I would like to talk to someone in billing please")
    x = np.concatenate([silence(1.0), speech, silence(1.0)])
    onset, offset = audible_span(speech, 1.0)
    detector = VoiceActivityDetector()
    times = np.flatnonzero([detector.push(f) for f in frames_of(x)]) * FRAME_SECONDS

    assert len(times) > 0.5 * (offset - onset) / FRAME_SECONDS  # most of the speech
    assert onset <= times[0] <= onset + TOLERANCE
    assert times[-1] <= offset + 1e-9  # frame times are sums of 0.02 s steps


def test_quiet_speech_below_the_threshold_is_ignored(tts: EspeakTts) -> None:
    """Speech at -50 dBFS is under the -40 dBFS threshold and does not count."""
    x = np.concatenate([silence(0.5), speech_at(tts, "sales", level_db=-50.0), silence(1.5)])
    assert run(SpeechSegmenter(), x) == []


def test_reset_forgets_speech_and_noise_floor(tts: EspeakTts) -> None:
    """After reset() the detector behaves like a new one."""
    frames = frames_of(np.concatenate([silence(0.5), speech_at(tts, "sales")]))
    used, fresh = VoiceActivityDetector(), VoiceActivityDetector()
    for f in frames:
        used.push(f)
    used.reset()
    assert not used.in_speech
    assert [used.push(f) for f in frames] == [fresh.push(f) for f in frames]


def test_invalid_settings_are_refused() -> None:
    """start_frames and end_frames must be positive."""
    with pytest.raises(ValueError):
        VoiceActivityDetector(start_frames=0)
    with pytest.raises(ValueError):
        VoiceActivityDetector(end_frames=0)


def test_frame_level_is_in_dbfs() -> None:
    """A full-scale square wave is 0 dBFS, half scale -6 dBFS, silence and empty frames -120."""
    square = np.array([32767, -32768] * 160, dtype=np.int16)
    assert frame_level_db(square) == pytest.approx(0.0, abs=0.01)
    assert frame_level_db(square // 2) == pytest.approx(-6.02, abs=0.01)
    assert frame_level_db(np.zeros(320, dtype=np.int16)) == -120.0
    assert frame_level_db(np.zeros(0, dtype=np.int16)) == -120.0


def test_push_samples_handles_whole_buffers(tts: EspeakTts) -> None:
    """push_samples() gives the same events as pushing frame by frame."""
    x = np.concatenate([silence(0.5), speech_at(tts, "one two three"), silence(1.5)])
    by_frame = [e for e, _ in run(SpeechSegmenter(), x)]
    assert SpeechSegmenter().push_samples(pcm(x)) == by_frame
