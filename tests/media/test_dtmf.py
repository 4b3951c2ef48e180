"""DTMF generator and detector, on real signals: every key, Q.24 timing, noise, codecs, talk-off."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from relaykit.media.dtmf import (
    COL_FREQS,
    DTMF_KEYS,
    ROW_FREQS,
    ChannelDtmfDetector,
    DtmfDetector,
    generate_dtmf,
)
from relaykit.media.frames import SAMPLE_RATE, SAMPLES_PER_FRAME

ALL_KEYS = "0123456789*#ABCD"
MS = SAMPLE_RATE // 1000


def decode(samples: np.ndarray, **options: float) -> str:
    return "".join(ChannelDtmfDetector(**options).push(samples))


def decode_many(signals: list[np.ndarray]) -> list[str]:
    """Decode several signals at once, one channel each, through the batch detector."""
    det = DtmfDetector()
    channels = np.array([det.add_channel() for _ in signals])
    n = max(len(s) for s in signals)
    n += -n % SAMPLES_PER_FRAME + SAMPLES_PER_FRAME  # whole frames, and one to spare
    audio = np.zeros((len(signals), n), dtype=np.int16)
    for row, s in zip(audio, signals, strict=True):
        row[: len(s)] = s
    keys = [""] * len(signals)
    for start in range(0, n, SAMPLES_PER_FRAME):
        for ch, key in det.process(channels, audio[:, start : start + SAMPLES_PER_FRAME]):
            keys[ch] += key
    return keys


def dual_tone(
    key: str,
    ms: float,
    *,
    row_db: float = -10.0,
    col_db: float = -10.0,
    row_dev: float = 0.0,
    col_dev: float = 0.0,
    phase: float = 0.0,
) -> np.ndarray:
    """One key as float samples, with chosen levels (dBFS per tone) and frequency deviations."""
    k = DTMF_KEYS.index(key)
    t = np.arange(round(ms * MS)) / SAMPLE_RATE
    row = 32767 * 10 ** (row_db / 20) * np.sin(2 * np.pi * ROW_FREQS[k // 4] * (1 + row_dev) * t)
    col = (
        32767
        * 10 ** (col_db / 20)
        * np.sin(2 * np.pi * COL_FREQS[k % 4] * (1 + col_dev) * t + phase)
    )
    return row + col


def pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def silence(ms: float) -> np.ndarray:
    return np.zeros(round(ms * MS))


def mulaw_encode(x: np.ndarray) -> np.ndarray:
    """G.711 µ-law as in the reference coder (14-bit magnitude, biased), int16 in, codes out."""
    v = x.astype(np.int32) >> 2
    neg = v < 0
    mag = np.minimum(np.where(neg, -v, v), 8159) + 33
    seg = np.floor(np.log2(mag)).astype(np.int32) - 5
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (seg + 1)) & 0x0F))
    return (code ^ np.where(neg, 0x7F, 0xFF)).astype(np.uint8)


def mulaw_decode(codes: np.ndarray) -> np.ndarray:
    c = ~codes.astype(np.int32) & 0xFF
    exponent = (c >> 4) & 0x07
    mag = (((c & 0x0F) << 3) + 0x84 << exponent) - 0x84
    return np.where(c & 0x80, -mag, mag).astype(np.int16)


# -- generator ---------------------------------------------------------------------------------


def test_generated_keys_are_tone_then_silence_at_the_requested_level():
    """Each key is tone_ms of dual tone then gap_ms of silence, each tone at level_dbfs."""
    out = generate_dtmf("19", tone_ms=50, gap_ms=30, level_dbfs=-20.0)
    assert out.dtype == np.int16
    assert len(out) == 2 * 80 * MS
    assert not out[50 * MS : 80 * MS].any() and not out[130 * MS :].any()
    tone = out[: 50 * MS].astype(float)
    expected_rms = 32767 * 10 ** (-20 / 20)  # two sines of amplitude A: rms A
    assert np.sqrt(np.mean(tone**2)) == pytest.approx(expected_rms, rel=0.02)


def test_generated_tones_never_clip_at_the_highest_level():
    """The loudest allowed level peaks just under full scale."""
    out = generate_dtmf(ALL_KEYS, level_dbfs=-6.03)
    assert np.abs(out.astype(int)).max() <= 32767
    assert np.abs(out.astype(int)).max() > 30000


@pytest.mark.parametrize("twist_db", [-8.0, 4.0])
def test_twist_sets_the_high_group_tone_relative_to_the_low_group_tone(twist_db):
    """The low-group tone is at level_dbfs, the high-group tone twist_db above it."""
    out = generate_dtmf("5", tone_ms=1000, gap_ms=0, level_dbfs=-20.0, twist_db=twist_db)
    spectrum = np.abs(np.fft.rfft(out.astype(float))) * 2 / len(out)  # 1 Hz bins: exact
    row, col = spectrum[770], spectrum[1336]
    assert 20 * np.log10(row / 32767) == pytest.approx(-20.0, abs=0.05)
    assert 20 * np.log10(col / row) == pytest.approx(twist_db, abs=0.05)


def test_a_twisted_pair_that_would_clip_is_refused():
    """Level and twist together may not make the pair's peak exceed full scale."""
    generate_dtmf("1", level_dbfs=-10.0, twist_db=4.0)  # 0.32 + 0.50 of full scale: fine
    with pytest.raises(ValueError, match="clip"):
        generate_dtmf("1", level_dbfs=-8.0, twist_db=4.0)
    with pytest.raises(ValueError):
        generate_dtmf("1", twist_db=float("inf"))


def test_lowercase_letters_are_keys_too():
    """a-d are accepted and mean A-D."""
    assert np.array_equal(generate_dtmf("abcd"), generate_dtmf("ABCD"))


def test_an_empty_string_gives_no_audio():
    """No keys, no samples."""
    assert generate_dtmf("").shape == (0,)


@pytest.mark.parametrize("digits", ["12x4", "1 2", "E", "5-"])
def test_a_bad_key_is_named_in_the_error(digits):
    """ValueError names the first character that is not a DTMF key."""
    bad = next(ch for ch in digits if ch not in DTMF_KEYS)
    with pytest.raises(ValueError, match=repr(bad)):
        generate_dtmf(digits)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tone_ms": 0},
        {"tone_ms": 0.5},
        {"tone_ms": float("nan")},
        {"gap_ms": -1},
        {"level_dbfs": -3.0},
        {"level_dbfs": float("nan")},
        {"sample_rate": 0},
        {"sample_rate": 3000},
    ],
)
def test_bad_generator_parameters_are_refused(kwargs):
    """Tones under 1 ms, negative gaps, clipping levels and useless rates raise ValueError."""
    with pytest.raises(ValueError):
        generate_dtmf("1", **kwargs)


# -- every key, timing -------------------------------------------------------------------------


def test_every_key_is_decoded_at_100_ms_on_100_ms_off():
    """All 16 keys, in order, from the generator's defaults."""
    assert decode(generate_dtmf(ALL_KEYS)) == ALL_KEYS


def test_every_key_is_decoded_at_40_ms_on_40_ms_off():
    """All 16 keys at the shortest timing Q.24 requires to be accepted."""
    assert decode(generate_dtmf(ALL_KEYS, tone_ms=40, gap_ms=40)) == ALL_KEYS


def test_40_ms_tones_are_accepted_at_every_alignment_to_frames():
    """A 40 ms tone is a key wherever it starts within a 20 ms frame."""
    keys = generate_dtmf(ALL_KEYS, tone_ms=40, gap_ms=60)
    offsets = [0, 1, 37, 80, 111, 160, 199, 240, 287, 319]
    signals = [np.concatenate([np.zeros(off, np.int16), keys]) for off in offsets]
    assert decode_many(signals) == [ALL_KEYS] * len(offsets)


def test_20_ms_tones_are_rejected_at_every_alignment_to_frames():
    """Tones of 20 ms or less are never keys, wherever they start within a frame."""
    offsets = [0, 1, 37, 80, 111, 160, 199, 240, 287, 319]
    signals = [
        np.concatenate([np.zeros(off, np.int16), generate_dtmf(ALL_KEYS, tone_ms=ms, gap_ms=60)])
        for off in offsets
        for ms in (10, 15, 20)
    ]
    assert decode_many(signals) == [""] * len(signals)


def test_a_key_held_for_two_seconds_is_one_key():
    """Duration does not repeat a key."""
    assert decode(generate_dtmf("5", tone_ms=2000, gap_ms=100)) == "5"


def test_the_same_key_pressed_again_after_a_40_ms_pause_counts_each_time():
    """Six presses of one key with 40 ms pauses are six keys."""
    assert decode(generate_dtmf("777777", tone_ms=50, gap_ms=40)) == "777777"


def test_different_keys_back_to_back_without_a_pause_are_each_decoded():
    """A change of key is an onset even without silence between."""
    assert decode(generate_dtmf("1397", tone_ms=60, gap_ms=0)) == "1397"


def test_a_10_ms_dropout_does_not_split_a_held_key():
    """A short interruption inside a tone is not a new press."""
    tone = dual_tone("8", 300)
    tone[150 * MS : 160 * MS] = 0
    assert decode(pcm(np.concatenate([tone, silence(100)]))) == "8"


# -- levels, frequency, twist, noise, codec ------------------------------------------------------


@pytest.mark.parametrize("level", [-30.0, -24.0, -18.0, -12.0, -6.03])
def test_keys_are_decoded_from_minus_30_to_the_loudest_level(level):
    """Per-tone levels from -30 dBFS up to a pair peaking at full scale (-3 dBFS rms)."""
    assert decode(generate_dtmf(ALL_KEYS, tone_ms=50, gap_ms=50, level_dbfs=level)) == ALL_KEYS


def test_tones_below_the_floor_are_ignored():
    """-45 dBFS per tone is under the -40 dBFS floor."""
    assert decode(generate_dtmf(ALL_KEYS, level_dbfs=-45.0)) == ""


@pytest.mark.parametrize("row_dev, col_dev", [(0.015, 0.015), (-0.015, -0.015), (0.015, -0.015)])
def test_frequencies_off_by_1_5_percent_are_accepted(row_dev, col_dev):
    """Q.24: a deviation of ±1.5 % on either tone must still be a key."""
    parts = [
        np.concatenate([dual_tone(k, 50, row_dev=row_dev, col_dev=col_dev), silence(50)])
        for k in ALL_KEYS
    ]
    assert decode(pcm(np.concatenate(parts))) == ALL_KEYS


@pytest.mark.parametrize("row_dev, col_dev", [(0.035, 0.0), (0.0, -0.035), (-0.04, 0.04)])
def test_frequencies_off_by_3_5_percent_are_rejected(row_dev, col_dev):
    """Q.24: a deviation of 3.5 % or more is not a key."""
    parts = [
        np.concatenate([dual_tone(k, 80, row_dev=row_dev, col_dev=col_dev), silence(50)])
        for k in ALL_KEYS
    ]
    assert decode(pcm(np.concatenate(parts))) == ""


@pytest.mark.parametrize("row_db, col_db", [(-14.0, -9.0), (-10.0, -13.5), (-12.0, -12.0)])
def test_twist_within_limits_is_accepted(row_db, col_db):
    """Column 5 dB above the row tone, row 3.5 dB above the column tone, and level."""
    parts = [
        np.concatenate([dual_tone(k, 50, row_db=row_db, col_db=col_db), silence(50)])
        for k in ALL_KEYS
    ]
    assert decode(pcm(np.concatenate(parts))) == ALL_KEYS


def test_a_single_tone_or_a_badly_twisted_pair_is_not_a_key():
    """One tone alone, or one tone 12 dB under the other, is rejected."""
    lone_row = dual_tone("5", 200, col_db=-200)
    lone_col = dual_tone("5", 200, row_db=-200)
    twisted = dual_tone("5", 200, row_db=-22, col_db=-10)
    reverse = dual_tone("5", 200, row_db=-10, col_db=-22)
    gap = silence(100)
    signal = np.concatenate([lone_row, gap, lone_col, gap, twisted, gap, reverse, gap])
    assert decode(pcm(signal)) == ""


def test_keys_are_decoded_in_white_noise_at_15_db_snr():
    """Gaussian noise 15 dB under the pair's power does not hide any key."""
    rng = np.random.default_rng(15)
    clean = generate_dtmf(ALL_KEYS * 2, tone_ms=50, gap_ms=50, level_dbfs=-16.0).astype(float)
    tone_power = (32767 * 10 ** (-16 / 20)) ** 2  # two sines of amplitude A
    noisy = clean + rng.normal(0.0, np.sqrt(tone_power / 10**1.5), clean.shape)
    assert decode(pcm(noisy)) == ALL_KEYS * 2


def test_a_dc_offset_does_not_disturb_decoding():
    """A constant offset is not signal."""
    signal = generate_dtmf(ALL_KEYS, tone_ms=50, gap_ms=50, level_dbfs=-20.0).astype(float)
    assert decode(pcm(signal + 4000.0)) == ALL_KEYS


def test_keys_survive_a_g711_mulaw_round_trip_at_8_khz():
    """16 kHz -> 8 kHz -> µ-law -> 8 kHz -> 16 kHz, as on a telephone leg."""
    for level in (-28.0, -8.0):
        wide = generate_dtmf(ALL_KEYS, tone_ms=45, gap_ms=45, level_dbfs=level)
        narrow = soxr.resample(wide, SAMPLE_RATE, 8000)
        line = mulaw_decode(mulaw_encode(narrow))
        assert decode(soxr.resample(line, 8000, SAMPLE_RATE)) == ALL_KEYS


def test_an_8_khz_detector_decodes_8_khz_audio():
    """sample_rate=8000 takes 160-sample frames and decodes 8 kHz keys."""
    audio = generate_dtmf(ALL_KEYS, sample_rate=8000, tone_ms=40, gap_ms=40)
    det = ChannelDtmfDetector(8000)
    assert det.detector.frame_size == 160
    assert "".join(det.push(audio)) == ALL_KEYS


def test_mulaw_codec_in_this_file_is_sane():
    """The test's own µ-law round trip is within G.711's quantisation error."""
    x = np.arange(-32768, 32768, 7, dtype=np.int32).astype(np.int16)
    y = mulaw_decode(mulaw_encode(x)).astype(int)
    err = np.abs(y - x.astype(int))
    assert err.max() <= 1024 and np.all(err <= np.abs(x.astype(int)) // 16 + 16)


# -- talk-off: things that are not DTMF -----------------------------------------------------------


def test_white_noise_gives_no_keys():
    """Five seconds of noise at several levels."""
    rng = np.random.default_rng(7)
    noise = np.concatenate([rng.normal(0, sd, 16000 * 5 // 4) for sd in (30, 300, 3000, 12000)])
    assert decode(pcm(noise)) == ""


def test_frequency_sweeps_give_no_keys():
    """A linear sweep through the DTMF band, slow and fast, and a sweep in noise."""
    rng = np.random.default_rng(3)
    parts = []
    for seconds in (0.5, 3.0):
        t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        f0, f1 = 300.0, 3400.0
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
        parts.append(8000 * np.sin(phase))
        parts.append(8000 * np.sin(phase) + rng.normal(0, 800, t.shape))
    assert decode(pcm(np.concatenate(parts))) == ""


def test_music_like_chords_give_no_keys():
    """Triads of harmonic-rich notes over several octaves, as in hold music."""
    t = np.arange(round(0.25 * SAMPLE_RATE)) / SAMPLE_RATE
    harmonics = np.arange(1, 9)
    chords = []
    for root_midi in range(48, 80, 2):
        chord = np.zeros_like(t)
        for interval in (0, 4, 7):  # major triad
            f = 440.0 * 2 ** ((root_midi + interval - 69) / 12)
            for h in harmonics[harmonics * f < 7000]:
                chord += np.sin(2 * np.pi * h * f * t) / h
        chords.append(3000 * chord)
    assert decode(pcm(np.concatenate(chords))) == ""


def test_synthetic_vowels_give_no_keys():
    """Glottal-pulse vowels through formant resonators, with pitch glides, give no keys."""
    rng = np.random.default_rng(11)
    vowels = {"a": (730, 1090, 2440), "i": (270, 2290, 3010), "u": (300, 870, 2240),
              "e": (530, 1840, 2480), "o": (570, 840, 2410)}  # fmt: skip
    out = []
    for pitch_lo, pitch_hi in ((95, 140), (180, 260), (220, 250)):
        for f1, f2, f3 in vowels.values():
            n = round(0.4 * SAMPLE_RATE)
            pitch = np.linspace(pitch_lo, pitch_hi, n) * (1 + 0.01 * rng.standard_normal())
            phase = np.cumsum(pitch) / SAMPLE_RATE
            source = np.diff(np.floor(phase), prepend=0.0)  # one impulse per period
            spectrum = np.fft.rfft(source)
            freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
            envelope = sum(1 / (1 + ((freqs - f) / (60 + f / 20)) ** 2) for f in (f1, f2, f3)) / (
                1 + freqs / 1000
            )
            voiced = np.fft.irfft(spectrum * envelope, n)
            out.append(8000 * voiced / np.abs(voiced).max())
    assert decode(pcm(np.concatenate(out))) == ""


def test_synthesised_speech_gives_no_keys():
    """espeak-ng prompts in a male and a female voice, including spoken digits."""
    tts = pytest.importorskip("relaykit.media.tts")
    engine = tts.EspeakTts()
    text = (
        "Thank you for calling. Please enter your account number, followed by the pound key. "
        "One two three four five six seven eight nine zero star pound. Ooh, aah, mmm."
    )
    speech = [engine.synthesize(text, gender=gender) for gender in ("male", "female")]
    assert decode_many(speech) == ["", ""]


def test_keys_are_decoded_right_after_speech():
    """Speech history in a channel does not disturb the keys that follow it."""
    tts = pytest.importorskip("relaykit.media.tts")
    speech = tts.EspeakTts().synthesize("Press one for sales.")
    assert decode(np.concatenate([speech, generate_dtmf("1#", tone_ms=50, gap_ms=50)])) == "1#"


# -- batch detector --------------------------------------------------------------------------------


def test_many_channels_at_once_each_get_their_own_keys():
    """64 channels, each with its own key sequence, timing and start, decoded in one batch."""
    rng = np.random.default_rng(64)
    expected, signals = [], []
    for ch in range(64):
        keys = "".join(rng.choice(list(ALL_KEYS), size=rng.integers(1, 7)))
        tone, gap = int(rng.integers(40, 120)), int(rng.integers(40, 120))
        lead = np.zeros(int(rng.integers(0, 4000)), dtype=np.int16)
        level = float(rng.uniform(-28, -8))
        sig = generate_dtmf(keys, tone_ms=tone, gap_ms=gap, level_dbfs=level)
        signals.append(np.concatenate([lead, sig]))
        expected.append(keys if ch % 8 else "")  # every 8th channel only hears noise
        if ch % 8 == 0:
            signals[-1] = pcm(rng.normal(0, 2000, len(signals[-1])))
    assert decode_many(signals) == expected


def test_channels_do_not_affect_each_other():
    """Loud keys on some channels leave silent and noisy neighbours without keys."""
    rng = np.random.default_rng(5)
    keys = generate_dtmf(ALL_KEYS, tone_ms=60, gap_ms=40, level_dbfs=-6.03)
    noise = pcm(rng.normal(0, 3000, len(keys)))
    backwards = keys[::-1].copy()  # a tone played backwards is the same tone
    result = decode_many([np.zeros_like(keys), keys, noise, backwards, np.zeros_like(keys)])
    assert result == ["", ALL_KEYS, "", ALL_KEYS[::-1], ""]


def test_channels_may_be_listed_in_any_order_and_subset_per_tick():
    """Each tick may name any subset of channels, in any order; state follows the channel id."""
    det = DtmfDetector()
    ids = [det.add_channel() for _ in range(6)]
    signals = {ch: generate_dtmf(ALL_KEYS[ch::6], tone_ms=60, gap_ms=60) for ch in ids}
    n_frames = max(len(s) for s in signals.values()) // SAMPLES_PER_FRAME + 2
    pos = dict.fromkeys(ids, 0)
    got = dict.fromkeys(ids, "")
    rng = np.random.default_rng(9)
    for _ in range(4 * n_frames):
        listed = rng.permutation(ids)[: rng.integers(1, 7)]
        frames = np.zeros((len(listed), SAMPLES_PER_FRAME), dtype=np.int16)
        for row, ch in zip(frames, listed, strict=True):
            chunk = signals[ch][pos[ch] : pos[ch] + SAMPLES_PER_FRAME]
            row[: len(chunk)] = chunk
            pos[ch] += SAMPLES_PER_FRAME
        for ch, key in det.process(listed, frames):
            got[ch] += key
    assert got == {ch: ALL_KEYS[ch::6] for ch in ids}


def test_channel_ids_are_reused_and_reset_forgets_a_key_in_progress():
    """Freed ids come back lowest first; a fresh or reset channel starts with no state."""
    det = DtmfDetector()
    a, b, c = det.add_channel(), det.add_channel(), det.add_channel()
    assert (a, b, c) == (0, 1, 2)
    det.remove_channel(b)
    det.remove_channel(a)
    assert det.channel_count == 1
    assert det.add_channel() == a and det.add_channel() == b
    assert det.add_channel() == 3

    tone = generate_dtmf("4", tone_ms=200, gap_ms=0)
    frames = tone.reshape(-1, SAMPLES_PER_FRAME)
    assert det.process(np.array([c]), frames[:1]) == []
    det.reset(c)  # forget the first frame: the key is confirmed one frame later than otherwise
    hits = [det.process(np.array([c]), f[None]) for f in frames[1:]]
    assert [h for h in hits if h] == [[(c, "4")]]


def test_many_channels_grow_the_state_arrays():
    """Adding thousands of channels works and each one stays independent."""
    det = DtmfDetector()
    ids = np.array([det.add_channel() for _ in range(2500)])
    assert det.channel_count == 2500
    audio = generate_dtmf("9", tone_ms=60, gap_ms=40).reshape(-1, SAMPLES_PER_FRAME)
    hits = []
    for frame in audio:
        frames = np.zeros((len(ids), SAMPLES_PER_FRAME), dtype=np.int16)
        frames[1234] = frame
        hits += det.process(ids, frames)
    assert hits == [(1234, "9")]


def test_process_rejects_unknown_channels_and_misshapen_frames():
    """Ids that were never allocated or were freed raise KeyError; bad shapes ValueError."""
    det = DtmfDetector()
    ch = det.add_channel()
    frame = np.zeros((1, SAMPLES_PER_FRAME), dtype=np.int16)
    with pytest.raises(KeyError):
        det.process(np.array([ch + 1]), frame)
    with pytest.raises(ValueError):
        det.process(np.array([ch]), np.zeros((1, 160), dtype=np.int16))
    with pytest.raises(ValueError):
        det.process(np.array([ch, ch]), frame)
    det.remove_channel(ch)
    with pytest.raises(KeyError):
        det.process(np.array([ch]), frame)
    with pytest.raises(KeyError):
        det.remove_channel(ch)
    assert det.process(np.array([], dtype=int), np.zeros((0, SAMPLES_PER_FRAME))) == []


def test_single_channel_push_does_not_depend_on_chunk_sizes():
    """Pushing audio in odd-sized chunks gives the same keys as pushing it whole."""
    audio = generate_dtmf(ALL_KEYS, tone_ms=45, gap_ms=45)
    rng = np.random.default_rng(2)
    det = ChannelDtmfDetector()
    keys, pos = [], 0
    while pos < len(audio):
        step = int(rng.integers(1, 700))
        keys += det.push(audio[pos : pos + step])
        pos += step
    assert "".join(keys) == ALL_KEYS
    det.reset()
    assert det.push(audio) == list(ALL_KEYS)
