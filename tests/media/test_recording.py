"""A call's recording streams to a temporary file: memory per call stays flat, the audio reads
back exactly, and the file goes away with the call."""

from __future__ import annotations

import gc
import tracemalloc
import wave
import weakref
from pathlib import Path

import numpy as np

from relaykit.media.engine import MediaEngine
from relaykit.media.frames import SAMPLE_RATE, SAMPLES_PER_FRAME
from relaykit.media.playback import MediaItem
from relaykit.media.recording import CallRecording
from relaykit.media.sources import ringtone_source


def test_a_minute_of_call_allocates_no_more_than_a_second_of_recording() -> None:
    """60 s of a call with audio both ways: the memory the ticks keep stays under a second of
    stereo audio (64 KB), where keeping the recording in memory takes 3.8 MB."""
    engine = MediaEngine()
    call = engine.add_call("c")
    engine.start_play("c", "ring", [MediaItem("ringtone", "us", source=ringtone_source("us", 70))])
    voice = (np.sin(np.arange(SAMPLE_RATE * 60) * 0.05) * 3000).astype(np.int16)
    call.push_inbound(voice)
    for _ in range(50):  # warm up: the engine's per-call state, the first flush
        engine.tick()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(50 * 59):
            engine.tick()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024
    recording = call.recording()
    assert recording.shape == (50 * 60 * SAMPLES_PER_FRAME, 2)
    assert np.array_equal(recording[: len(voice), 0], voice[: len(recording)])
    assert recording[:, 1].any()


def test_the_recording_reads_back_and_copies_to_a_wav_exactly(tmp_path: Path) -> None:
    rec = CallRecording(flush_frames=7)
    rng = np.random.default_rng(3)
    frames = rng.integers(-32768, 32767, size=(123, 2, SAMPLES_PER_FRAME), dtype=np.int16)
    for caller, ivr in frames:
        rec.append(caller, ivr)
    assert rec.buffered_frames == 123 % 7
    expected = np.concatenate([np.stack([c, i], axis=1) for c, i in frames])
    assert np.array_equal(rec.read(), expected)
    path = rec.write_wav(tmp_path / "call.wav", chunk_frames=10)
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, SAMPLE_RATE)
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert np.array_equal(data, expected)
    assert rec.seconds == 123 * SAMPLES_PER_FRAME / SAMPLE_RATE


def test_the_file_goes_away_with_the_call() -> None:
    """20 recorded calls, ended: still readable while referenced; once the call and whoever
    holds it are gone, the recorder is collected and its finalizer has closed (so deleted) its
    unnamed file."""
    engine = MediaEngine()
    medias = [engine.add_call(f"c{n}") for n in range(20)]
    for _ in range(60):
        engine.tick()
    recorders = [weakref.ref(m.recorder) for m in medias if m.recorder is not None]
    assert len(recorders) == 20
    for n in range(20):
        engine.end_call(f"c{n}")
    assert medias[0].recording().shape[0] == 60 * SAMPLES_PER_FRAME  # still readable
    del medias
    gc.collect()
    assert all(ref() is None for ref in recorders)


def test_a_closed_recording_reads_as_empty_and_takes_no_more_frames() -> None:
    rec = CallRecording()
    rec.append(np.ones(SAMPLES_PER_FRAME, np.int16), np.ones(SAMPLES_PER_FRAME, np.int16))
    rec.close()
    rec.append(np.ones(SAMPLES_PER_FRAME, np.int16), np.ones(SAMPLES_PER_FRAME, np.int16))
    assert rec.read().shape == (0, 2)


def test_calls_without_recording_keep_nothing() -> None:
    engine = MediaEngine()
    call = engine.add_call("c", record=False)
    for _ in range(10):
        engine.tick()
    assert call.recording().shape == (0, 2)
    assert call.recorder is None


def test_recordings_read_back_exactly_at_any_frame_for_calls_on_any_slot() -> None:
    """Calls on different slots, started on different frames (the engine starts their
    recording blocks on different frames): read during the call and after it ends, each
    recording is exactly the caller audio pushed, frame for frame."""
    engine = MediaEngine()
    rng = np.random.default_rng(5)
    calls, voices = [], []
    for n in range(5):
        for _ in range(n * 3):
            engine.tick()
        call = engine.add_call(f"c{n}")
        voice = rng.integers(-3000, 3000, size=SAMPLES_PER_FRAME * 80, dtype=np.int16)
        call.push_inbound(voice)
        calls.append(call)
        voices.append(voice)
    for ticks in (1, 7, 16, 23):
        for _ in range(ticks):
            engine.tick()
        for call, voice in zip(calls, voices, strict=True):
            recording = call.recording()
            assert len(recording) == (engine.frame - call.start_frame) * SAMPLES_PER_FRAME
            assert np.array_equal(recording[:, 0], voice[: len(recording)])
            assert not recording[:, 1].any()
    ended = {}
    for call in calls:
        engine.end_call(call.call_id)
        ended[call.call_id] = (engine.frame - call.start_frame) * SAMPLES_PER_FRAME
        engine.tick()
    for call, voice in zip(calls, voices, strict=True):
        recording = call.recording()
        assert len(recording) == ended[call.call_id]
        assert np.array_equal(recording[:, 0], voice[: len(recording)])
