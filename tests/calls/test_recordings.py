"""The recording store: files streamed to disk, readable WAV/MP3, names, retention, clean-up."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from relaykit.calls import recordings
from relaykit.calls.recordings import RecordingStore
from relaykit.errors import ProtocolError
from relaykit.media.frames import SAMPLE_RATE, SAMPLES_PER_FRAME


def frames(seconds: float, channels: int = 1) -> list[np.ndarray]:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = (6000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    if channels == 2:
        audio = np.column_stack((audio, audio // 2))
    return [audio[i : i + SAMPLES_PER_FRAME] for i in range(0, len(audio), SAMPLES_PER_FRAME)]


def test_a_wav_recording_streams_to_disk_and_reads_back_sample_exact(tmp_path):
    store = RecordingStore(tmp_path)
    store.base_url = "http://host/recordings/"
    recording = store.create("wav", 1)
    assert recording.url == "http://host/recordings/" + recording.path.name
    written = frames(3.0)
    sizes = []
    for frame in written:
        assert recording.write(frame)
        sizes.append(recording.path.stat().st_size)
    # the file grows as the call goes on: at most a second waits in memory
    assert sizes[60] > sizes[0] and sizes[-1] >= 2 * SAMPLE_RATE * 2
    size = recording.close()
    assert size == recording.path.stat().st_size and recording.close() == size
    data, rate = soundfile.read(recording.path, dtype="int16")
    assert rate == SAMPLE_RATE and np.array_equal(data, np.concatenate(written))
    assert not recording.write(written[0])  # closed


@pytest.mark.skipif(not recordings.mp3_available(), reason="this libsndfile has no MP3")
def test_an_mp3_stereo_recording_is_a_real_mp3(tmp_path):
    store = RecordingStore(tmp_path)
    recording = store.create("mp3", 2)
    for frame in frames(2.0, channels=2):
        recording.write(frame)
    recording.close()
    assert recording.path.suffix == ".mp3"
    info = soundfile.info(recording.path)
    assert (info.format, info.channels, info.samplerate) == ("MP3", 2, SAMPLE_RATE)
    assert info.duration == pytest.approx(2.0, abs=0.1)


def test_mp3_is_refused_with_a_clear_error_where_libsndfile_cannot_write_it(tmp_path, monkeypatch):
    monkeypatch.setattr(recordings, "mp3_available", lambda: False)
    store = RecordingStore(tmp_path)
    assert store.default_format == "wav"
    with pytest.raises(ProtocolError) as info:
        store.create("mp3", 1)
    assert info.value.field == "record.audio.format"
    assert "libsndfile" in str(info.value) and "use wav" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_names_are_unguessable_and_lookup_takes_nothing_else(tmp_path):
    store = RecordingStore(tmp_path)
    one, two = store.create("wav", 1), store.create("wav", 1)
    assert one.path.name != two.path.name and len(one.path.stem) == 32
    assert store.lookup(one.path.name) is one
    for name in ("../etc/passwd", one.path.stem, "x" * 32 + ".wav", one.path.name + "/"):
        assert store.lookup(name) is None


def test_retention_deletes_finished_recordings_only(tmp_path):
    store = RecordingStore(tmp_path, retention=10.0)
    done, running = store.create("wav", 1), store.create("wav", 1)
    done.write(frames(0.1)[0])
    done.close()
    assert done.ended_at is not None
    assert store.sweep(now=done.ended_at + 5.0) == 0
    assert store.sweep(now=done.ended_at + 10.0) == 1
    assert not done.path.exists() and running.path.exists()
    assert store.lookup(done.path.name) is None
    with pytest.raises(ValueError, match="retention"):
        RecordingStore(tmp_path, retention=0)


def test_close_keeps_a_given_directory_and_removes_its_own():
    own = RecordingStore()
    recording = own.create("wav", 1)
    directory = recording.path.parent
    assert directory.exists()
    own.close()
    assert recording.closed and not directory.exists()


def test_close_closes_open_recordings_in_a_given_directory(tmp_path):
    store = RecordingStore(tmp_path)
    recording = store.create("wav", 1)
    recording.write(frames(0.1)[0])
    store.close()
    assert recording.closed and recording.path.exists()
    assert soundfile.info(recording.path).frames == SAMPLES_PER_FRAME
