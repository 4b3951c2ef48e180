"""Tests for relaykit.media.sources: silence, national ringtones, decoding files, and gain.

Fetching URLs is the I/O layer's: see tests/calls/test_fetch.py."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from relaykit.errors import MediaError
from relaykit.media.frames import SAMPLE_RATE
from relaykit.media.sources import (
    RINGTONE_LEVEL_DBFS,
    RINGTONES,
    AudioTooLong,
    Ringtone,
    apply_gain_db,
    decode_audio,
    load_audio,
    ringtone,
    ringtone_source,
    silence,
    silence_source,
)

BLOCK = int(0.05 * SAMPLE_RATE)  # 50 ms


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def spectrum_peaks(x: np.ndarray, count: int) -> list[float]:
    """Frequencies (1 Hz resolution) of the ``count`` strongest local maxima of the spectrum."""
    window = np.hanning(x.size)
    mag = np.abs(np.fft.rfft(x * window, n=SAMPLE_RATE))  # zero-padded to 1 Hz bins
    local_max = np.flatnonzero((mag[1:-1] > mag[:-2]) & (mag[1:-1] >= mag[2:])) + 1
    strongest = local_max[np.argsort(mag[local_max])[::-1][:count]]
    return sorted(float(f) for f in strongest)


def dominant_frequency(x: np.ndarray) -> float:
    return spectrum_peaks(x, 1)[0]


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate)


# ------------------------------------------------------------------------------------- silence


@pytest.mark.parametrize("seconds", [0, 0.02, 1.5, 10])
def test_silence_has_exact_length_and_is_all_zero(seconds: float) -> None:
    """silence(d) is round(d * 16000) int16 zeros."""
    audio = silence(seconds)
    assert audio.dtype == np.int16
    assert audio.size == round(seconds * SAMPLE_RATE)
    assert not audio.any()


@pytest.mark.parametrize("seconds", [-0.1, 3600.5, float("nan"), float("inf"), "1", None, True])
def test_silence_rejects_bad_durations_naming_duration(seconds: object) -> None:
    """Negative, huge, non-finite or non-numeric durations raise MediaError about 'duration'."""
    with pytest.raises(MediaError, match="duration"):
        silence(seconds)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- ringtones


def test_ringtone_table_has_the_standard_national_tones() -> None:
    """The well-known ringback tones have their ITU-T E.180 frequencies and cadences."""
    expected = {
        "us": ((440, 480), (2.0, 4.0), None),
        "uk": ((400, 450), (0.4, 0.2, 0.4, 2.0), None),
        "de": ((425,), (1.0, 4.0), None),
        "fr": ((440,), (1.5, 3.5), None),
        "it": ((425,), (1.0, 4.0), None),
        "jp": ((400,), (1.0, 2.0), 16),
        "es": ((425,), (1.5, 3.0), None),
        "au": ((413, 438), (0.4, 0.2, 0.4, 2.0), None),
        "in": ((400,), (0.4, 0.2, 0.4, 2.0), 25),
        "cn": ((450,), (1.0, 4.0), None),
    }
    for name, (freqs, cadence, modulation) in expected.items():
        t = RINGTONES[name]
        assert isinstance(t, Ringtone)
        assert (t.frequencies, t.cadence, t.modulation_hz) == (freqs, cadence, modulation), name


def test_ringtone_table_entries_are_well_formed() -> None:
    """Every tone has lower-case name, 1-2 audible frequencies and an on/off cadence."""
    for name, t in RINGTONES.items():
        assert name == t.name == name.lower()
        assert 1 <= len(t.frequencies) <= 2 and all(300 <= f <= 500 for f in t.frequencies)
        assert len(t.cadence) % 2 == 0 and all(c > 0 for c in t.cadence)
        assert t.modulation_hz is None or len(t.frequencies) == 1


@pytest.mark.parametrize("name", sorted(RINGTONES))
def test_ringtone_has_the_table_frequencies(name: str) -> None:
    """The strongest spectral peaks of a burst are the table's frequencies (or AM sidebands)."""
    spec = RINGTONES[name]
    audio = ringtone(name)
    start, end = max(spec.segments(), key=lambda s: s[1] - s[0])
    burst = audio[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)].astype(np.float64)
    if spec.modulation_hz is None:
        peaks = spectrum_peaks(burst, len(spec.frequencies))
        assert np.allclose(peaks, sorted(spec.frequencies), atol=2), peaks
    else:
        carrier, fm = spec.frequencies[0], spec.modulation_hz
        assert abs(dominant_frequency(burst) - carrier) <= 2
        peaks = spectrum_peaks(burst, 3)
        assert np.allclose(peaks, [carrier - fm, carrier, carrier + fm], atol=2), peaks


@pytest.mark.parametrize("name", sorted(RINGTONES))
def test_ringtone_follows_the_table_cadence(name: str) -> None:
    """The 50 ms RMS envelope over two cycles switches on and off exactly as the cadence says."""
    spec = RINGTONES[name]
    audio = ringtone(name, 2 * spec.cycle_seconds)
    blocks = audio[: audio.size // BLOCK * BLOCK].reshape(-1, BLOCK)
    on = [rms(b) > 500 for b in blocks]
    silent_off = [not b.any() for b in blocks]
    assert all(o or s for o, s in zip(on, silent_off, strict=True))  # off blocks are true silence
    runs: list[float] = []
    for i, state in enumerate(on):
        if i == 0 or state != on[i - 1]:
            runs.append(0.0)
        runs[-1] = round(runs[-1] + 0.05, 3)
    assert on[0], "a ringtone starts with a burst"
    assert tuple(runs) == spec.cadence * 2


def test_ringtone_without_duration_is_one_cycle() -> None:
    """ringtone(name) is exactly one cadence cycle long."""
    for name, spec in RINGTONES.items():
        assert ringtone(name).size == round(spec.cycle_seconds * SAMPLE_RATE), name


@pytest.mark.parametrize("seconds", [0, 0.3, 7.3, 13])
def test_ringtone_with_duration_is_exactly_that_long(seconds: float) -> None:
    """A duration cuts or repeats the cadence to exactly that many samples."""
    audio = ringtone("uk", seconds)
    assert audio.dtype == np.int16
    assert audio.size == round(seconds * SAMPLE_RATE)
    if seconds > 3:
        cycle = ringtone("uk")
        assert np.array_equal(audio[cycle.size : 2 * cycle.size], cycle[: audio.size - cycle.size])


def test_ringtone_components_are_at_minus_16_dbfs() -> None:
    """A single-frequency tone peaks at -16 dBFS; a two-frequency tone at twice that amplitude."""
    single = np.abs(ringtone("de").astype(np.int32)).max()
    dual = np.abs(ringtone("us").astype(np.int32)).max()
    level = 32767 * 10 ** (RINGTONE_LEVEL_DBFS / 20)
    assert abs(single - level) <= 0.01 * level
    assert level * 1.9 <= dual <= level * 2.0 + 1


def test_ringtone_name_is_case_insensitive() -> None:
    """'US' is the same tone as 'us'."""
    assert np.array_equal(ringtone("US", 1.0), ringtone("us", 1.0))


def test_unknown_ringtone_raises_listing_valid_names() -> None:
    """An unknown country names the valid ones."""
    with pytest.raises(MediaError, match="unknown ringtone 'xx'") as info:
        ringtone("xx")
    assert "us" in str(info.value) and "uk" in str(info.value)


def test_ringtone_rejects_bad_duration() -> None:
    """A negative ringtone duration is a MediaError about 'duration'."""
    with pytest.raises(MediaError, match="duration"):
        ringtone("us", -1)


# ---------------------------------------------------------------------------------- load_audio


@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (44100, 2), (16000, 1), (48000, 2)])
def test_wav_comes_back_16k_mono_with_same_duration(
    tmp_path: Path, rate: int, channels: int
) -> None:
    """WAVs at any rate and channel count load as 16 kHz mono of the same duration and pitch."""
    x = tone(440, 1.25, rate)
    path = tmp_path / "tone.wav"
    sf.write(path, np.stack([x] * channels, axis=1), rate, subtype="PCM_16")
    audio = load_audio(str(path))
    assert audio.dtype == np.int16 and audio.ndim == 1
    assert abs(audio.size - 1.25 * SAMPLE_RATE) <= 16  # within 1 ms
    assert abs(dominant_frequency(audio) - 440) <= 2
    assert abs(np.abs(audio.astype(np.int32)).max() - 0.5 * 32768) <= 0.02 * 32768


def test_16k_mono_int16_wav_round_trips_bit_exact(tmp_path: Path) -> None:
    """A WAV already in the internal format loads sample for sample."""
    rng = np.random.default_rng(7)
    samples = rng.integers(-32768, 32768, size=8000, dtype=np.int16)
    path = tmp_path / "exact.wav"
    sf.write(path, samples, SAMPLE_RATE, subtype="PCM_16")
    assert np.array_equal(load_audio(str(path)), samples)


def test_stereo_is_mixed_to_the_mean_of_the_channels(tmp_path: Path) -> None:
    """Left at 0.6 and right at 0.2 amplitude mix to 0.4."""
    x = tone(300, 0.5, SAMPLE_RATE, amplitude=1.0)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([0.6 * x, 0.2 * x], axis=1), SAMPLE_RATE, subtype="FLOAT")
    peak = np.abs(load_audio(str(path)).astype(np.int32)).max()
    assert abs(peak - 0.4 * 32768) <= 0.01 * 32768


@pytest.mark.parametrize(("fmt", "rate"), [("MP3", 44100), ("MP3", 22050), ("FLAC", 48000)])
def test_compressed_formats_decode(tmp_path: Path, fmt: str, rate: int) -> None:
    """MP3 and FLAC decode to 16 kHz mono with the right duration and pitch."""
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(path, np.stack([tone(440, 1.0, rate)] * 2, axis=1), rate, format=fmt)
    audio = load_audio(str(path))
    assert abs(audio.size / SAMPLE_RATE - 1.0) <= 0.1
    assert abs(dominant_frequency(audio) - 440) <= 2


def test_ogg_vorbis_decodes(tmp_path: Path) -> None:
    """OGG/Vorbis decodes to 16 kHz mono with the right duration and pitch."""
    path = tmp_path / "tone.ogg"
    sf.write(path, tone(440, 1.0, 44100), 44100, format="OGG", subtype="VORBIS")
    audio = load_audio(str(path))
    assert abs(audio.size / SAMPLE_RATE - 1.0) <= 0.1
    assert abs(dominant_frequency(audio) - 440) <= 2


def test_file_url_loads_like_a_path(tmp_path: Path) -> None:
    """file:// URLs (also with percent-escapes) load the local file."""
    path = tmp_path / "with space.wav"
    sf.write(path, tone(440, 0.5, 8000), 8000)
    assert path.as_uri().startswith("file:///") and "%20" in path.as_uri()
    assert np.array_equal(load_audio(path.as_uri()), load_audio(str(path)))


def test_missing_file_says_not_found_and_where(tmp_path: Path) -> None:
    """A missing path is a MediaError naming the path."""
    missing = tmp_path / "nope.wav"
    with pytest.raises(MediaError, match="not found") as info:
        load_audio(str(missing))
    assert str(missing) in str(info.value)


def test_directory_is_not_audio(tmp_path: Path) -> None:
    """A directory is refused with a clear message."""
    with pytest.raises(MediaError, match="not a regular file"):
        load_audio(str(tmp_path))


def test_garbage_bytes_cannot_be_decoded(tmp_path: Path) -> None:
    """Undecodable data is a MediaError that says so and where, not a libsndfile traceback."""
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"this is not audio at all " * 100)
    with pytest.raises(MediaError, match="cannot decode audio") as info:
        load_audio(str(path))
    assert str(path) in str(info.value)
    assert "BytesIO" not in str(info.value)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    """A zero-byte file is a MediaError saying it is empty."""
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        load_audio(str(path))


def test_file_over_max_bytes_is_refused(tmp_path: Path) -> None:
    """A file larger than max_bytes is refused before it is read."""
    path = tmp_path / "big.wav"
    sf.write(path, tone(440, 1.0, 8000), 8000)
    with pytest.raises(MediaError, match="limit"):
        load_audio(str(path), max_bytes=1000)


@pytest.mark.parametrize(
    "location",
    ["ftp://example.com/a.wav", "s3://bucket/a.wav", "data:,x", "http://127.0.0.1:9/a.wav"],
)
def test_unsupported_scheme_is_refused(location: str) -> None:
    """load_audio reads local paths and file:// only; URLs are fetched by relaykit.calls.fetch
    (and the media layer opens no sockets)."""
    with pytest.raises(MediaError, match="unsupported URL scheme"):
        load_audio(location)


@pytest.mark.parametrize("location", ["", "   "])
def test_blank_location_is_refused(location: str) -> None:
    """An empty location is a MediaError."""
    with pytest.raises(MediaError, match="location"):
        load_audio(location)


def test_decode_audio_refuses_audio_longer_than_max_seconds_before_decoding(
    tmp_path: Path,
) -> None:
    """A 2 s file with max_seconds=1 raises AudioTooLong carrying its length."""
    path = tmp_path / "two.wav"
    sf.write(path, tone(440, 2.0, 8000), 8000)
    with pytest.raises(AudioTooLong, match="limit is 1 s") as info:
        decode_audio(path.read_bytes(), "two.wav", max_seconds=1.0)
    assert info.value.seconds == pytest.approx(2.0)
    assert decode_audio(path.read_bytes(), "two.wav", max_seconds=2.5).size == 2 * SAMPLE_RATE


# --------------------------------------------------------------------------- sources on demand


@pytest.mark.parametrize("name", ["us", "uk", "jp", "za"])
def test_ringtone_source_read_frame_by_frame_equals_the_array(name: str) -> None:
    """Reading a ringtone source 20 ms at a time (across cadence cycles) gives exactly the
    samples of the array version."""
    whole = ringtone(name, 13.37)
    source = ringtone_source(name, 13.37)
    assert len(source) == whole.size
    frames = [source.read(start, 320) for start in range(0, len(source), 320)]
    assert np.array_equal(np.concatenate(frames), whole)


def test_an_hour_of_ringing_or_silence_costs_less_than_a_second_of_samples() -> None:
    """Making and playing from a 3600 s ringtone or silence allocates less than a second of
    samples (32 KB), where the arrays would take 115 MB each."""
    ringtone_source("fr")  # the tone's one cadence cycle is computed once, here
    tracemalloc.start()
    try:
        ring = ringtone_source("fr", 3600)
        quiet = silence_source(3600)
        for start in range(0, 3600 * SAMPLE_RATE, 36 * SAMPLE_RATE):
            ring.read(start, 320)
            quiet.read(start, 320)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(ring) == len(quiet) == 3600 * SAMPLE_RATE
    assert peak < SAMPLE_RATE * 2
    assert quiet.read(len(quiet) - 100, 320).size == 100
    assert not quiet.read(len(quiet) - 100, 320).any()
    assert ring.read(len(ring), 320).size == 0


def test_sources_validate_like_the_arrays() -> None:
    """Bad durations and names are MediaErrors naming the problem."""
    with pytest.raises(MediaError, match="duration"):
        silence_source(3601)
    with pytest.raises(MediaError, match="duration"):
        ringtone_source("us", -1)
    with pytest.raises(MediaError, match="unknown ringtone"):
        ringtone_source("xx")


# ---------------------------------------------------------------------------------------- gain


def test_minus_6_db_halves_the_amplitude() -> None:
    """-6 dB scales amplitude by 0.501, i.e. halves it within 1 %."""
    x = np.round(tone(440, 0.5, SAMPLE_RATE, amplitude=20000 / 32768) * 32768).astype(np.int16)
    y = apply_gain_db(x, -6)
    assert y.dtype == np.int16
    ratio = np.abs(y.astype(np.int32)).max() / np.abs(x.astype(np.int32)).max()
    assert abs(ratio - 0.5) <= 0.005


def test_gain_clips_instead_of_wrapping() -> None:
    """+20 dB saturates at the int16 limits."""
    x = np.array([0, 1000, -1000, 20000, -20000], dtype=np.int16)
    assert apply_gain_db(x, 20).tolist() == [0, 10000, -10000, 32767, -32768]


def test_gain_of_minus_40_db_or_less_is_silence() -> None:
    """RELAY's -40 dB floor means silence."""
    x = np.full(100, 30000, dtype=np.int16)
    assert not apply_gain_db(x, -40).any()
    assert not apply_gain_db(x, -100).any()


def test_gain_returns_a_new_array_and_accepts_read_only_input() -> None:
    """The input (possibly a read-only cached prompt) is never modified."""
    x = np.arange(-100, 100, dtype=np.int16)
    x.flags.writeable = False
    same = apply_gain_db(x, 0)
    louder = apply_gain_db(x, 3)
    assert np.array_equal(same, x) and same is not x and same.flags.writeable
    assert np.array_equal(x, np.arange(-100, 100, dtype=np.int16))
    assert np.abs(louder.astype(np.int32)).max() == round(100 * 10 ** (3 / 20))


@pytest.mark.parametrize("db", [float("nan"), float("inf"), "3", None])
def test_gain_rejects_non_numbers(db: object) -> None:
    """A volume that is not a finite number is a MediaError."""
    with pytest.raises(MediaError, match="volume"):
        apply_gain_db(np.zeros(4, dtype=np.int16), db)  # type: ignore[arg-type]


def test_ringtone_names_match_relay_documentation() -> None:
    """Exactly the country codes SignalWire RELAY documents for ringtone media are available."""
    documented = {
        *("at", "au", "bg", "br", "be", "ch", "cl", "cn", "cz", "de", "dk", "ee", "es", "fi"),
        *("fr", "gr", "hu", "il", "in", "it", "lt", "jp", "mx", "my", "nl", "no", "nz", "ph"),
        *("pl", "pt", "ru", "se", "sg", "th", "uk", "us", "tw", "ve", "za"),
    }
    assert sorted(RINGTONES) == sorted(documented)
