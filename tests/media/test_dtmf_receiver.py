"""The DTMF receiver at the edges of its requirements, table-driven, on generated tones.

Accepted: every key at -6 (loudest unclipped pair) to -33 dBFS per tone, the high group from
8 dB weaker to 4 dB stronger than the low group, tones of 40 ms, ±1.5 % on either tone, and all
of these together. Rejected, each with the other properties on their accepted side: -42 dBFS
and below, twist of 10 dB either way, 20 ms tones, 3.5 % off. Every case is decoded for all 16
keys at several alignments to the 20 ms frames and phases between the two tones, one channel
each, and must give the same answer for every one of them. docs/dtmf-receiver.md has the
measured edges (benchmarks/dtmf_edges.py).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from relaykit.media.dtmf import COL_FREQS, DTMF_KEYS, ROW_FREQS, DtmfDetector, generate_dtmf
from relaykit.media.frames import SAMPLE_RATE, SAMPLES_PER_FRAME

ALL_KEYS = "0123456789*#ABCD"
MS = SAMPLE_RATE // 1000
ALIGNMENTS_MS = (0.0, 5.3, 10.0, 15.7)
LOUD = "loud"  # the pair scaled to peak at -1 dBFS, whatever its twist


@dataclass(frozen=True)
class Tone:
    level: float | str  # the low-group tone, dBFS, or LOUD
    twist: float  # dB, the high-group tone relative to the low-group one
    ms: float
    row_dev: float  # relative frequency offsets
    col_dev: float

    def levels(self) -> tuple[float, float]:
        if self.level == LOUD:
            low = 20 * np.log10(0.89 / (1 + 10 ** (self.twist / 20)))
        else:
            low = float(self.level)
        return low, low + self.twist


def dual_tone(key: str, tone: Tone, phase: float) -> np.ndarray:
    k = DTMF_KEYS.index(key)
    low, high = tone.levels()
    t = np.arange(round(tone.ms * MS)) / SAMPLE_RATE
    row = 10 ** (low / 20) * np.sin(2 * np.pi * ROW_FREQS[k // 4] * (1 + tone.row_dev) * t)
    col = 10 ** (high / 20) * np.sin(2 * np.pi * COL_FREQS[k % 4] * (1 + tone.col_dev) * t + phase)
    return 32767.0 * (row + col)


def pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def decode_all(signals: list[np.ndarray]) -> list[str]:
    """Each signal on its own channel of one batch detector."""
    det = DtmfDetector()
    channels = np.array([det.add_channel() for _ in signals])
    n = max(len(s) for s in signals)
    n += -n % SAMPLES_PER_FRAME + 6 * SAMPLES_PER_FRAME  # whole frames, and the release
    audio = np.zeros((len(signals), n), dtype=np.int16)
    for row, s in zip(audio, signals, strict=True):
        row[: len(s)] = s
    keys = [""] * len(signals)
    for start in range(0, n, SAMPLES_PER_FRAME):
        for ch, key in det.process(channels, audio[:, start : start + SAMPLES_PER_FRAME]):
            keys[ch] += key
    return keys


def every_key(tones: list[Tone]) -> tuple[list[np.ndarray], list[tuple[Tone, str]]]:
    """Each tone for every key at every alignment, with a phase that varies between them."""
    signals, labels = [], []
    for tone in tones:
        for i, key in enumerate(ALL_KEYS):
            for j, align in enumerate(ALIGNMENTS_MS):
                x = dual_tone(key, tone, phase=0.9 * (4 * i + j))
                signals.append(pcm(np.concatenate([np.zeros(round(align * MS)), x])))
                labels.append((tone, key))
    return signals, labels


# The accepted side of every edge, and the rejected side of each (the others accepted).
ACCEPTED = {
    "level": [LOUD, -33.0],
    "twist": [-8.0, 0.0, 4.0],
    "ms": [40.0, 100.0],
    "dev": [(-0.015, -0.015), (0.0, 0.0), (0.015, 0.015), (0.015, -0.015), (-0.015, 0.015)],
}
REJECTED = {
    "level": [-42.0, -45.0, -55.0],
    "twist": [-10.0, -12.0, 10.0, 12.0],
    "ms": [10.0, 15.0, 20.0],
    "dev": [(0.035, 0.0), (-0.035, 0.0), (0.0, 0.035), (0.0, -0.035), (0.04, -0.04)],
}


def grid(**values: list) -> list[Tone]:
    out = []
    for level, twist, ms, (row_dev, col_dev) in itertools.product(
        values["level"], values["twist"], values["ms"], values["dev"]
    ):
        out.append(Tone(level, twist, ms, row_dev, col_dev))
    return out


def test_every_combination_of_accepted_edges_gives_every_key():
    """Level × twist × duration × offset, all on their accepted side: 100 combinations, each
    for all 16 keys at 4 alignments, all decoded as their key."""
    tones = grid(**ACCEPTED)
    signals, labels = every_key(tones)
    got = decode_all(signals)
    wrong = {(tone, key, g) for g, (tone, key) in zip(got, labels, strict=True) if g != key}
    assert wrong == set()


@pytest.mark.parametrize("edge", ["level", "twist", "ms", "dev"])
def test_the_rejected_side_of_each_edge_gives_no_key(edge):
    """One property beyond its edge, every combination of the others on their accepted side:
    no key at all, for every key and alignment."""
    if edge == "level":  # twist is relative to a level, so only the level itself goes down
        tones = grid(**{**ACCEPTED, "level": REJECTED["level"], "twist": [0.0]})
    elif edge == "twist":  # the weak tone's level must not be what rejects it
        tones = grid(**{**ACCEPTED, "level": [LOUD, -20.0], "twist": REJECTED["twist"]})
    else:
        tones = grid(**{**ACCEPTED, edge: REJECTED[edge]})
    signals, labels = every_key(tones)
    got = decode_all(signals)
    heard = {(tone, key, g) for g, (tone, key) in zip(got, labels, strict=True) if g}
    assert heard == set()


def test_each_key_gives_the_same_answer_at_every_level_down_to_minus_38():
    """1 dB steps from the loudest unclipped pair (-6.02 dBFS per tone) to -38: every key at
    every alignment and phase is decoded (the floor is at -40, out of the way)."""
    levels = [-6.02, *np.arange(-7.0, -38.5, -1.0)]
    tones = [Tone(float(v), 0.0, 60.0, 0.0, 0.0) for v in levels]
    signals, labels = every_key(tones)
    got = decode_all(signals)
    wrong = sorted({(t.level, key) for g, (t, key) in zip(got, labels, strict=True) if g != key})
    assert wrong == []


def test_an_overloaded_pair_clipped_at_full_scale_is_still_a_key():
    """-3 dBFS per tone peaks at 1.41 times full scale; the clipped pair is still every key."""
    tones = [Tone(-3.0, 0.0, 60.0, 0.0, 0.0)]
    signals, labels = every_key(tones)
    assert [s.min() for s in signals[:1]] == [-32768]  # really clipped
    assert decode_all(signals) == [key for _, key in labels]


@pytest.mark.parametrize(("gap_ms", "presses"), [(40.0, 2), (60.0, 2), (10.0, 1), (20.0, 1)])
def test_a_pause_of_40_ms_separates_presses_and_one_of_20_ms_does_not(gap_ms, presses):
    """The same key twice around a gap: two keys from 40 ms, one (bridged) up to 20 ms, at
    every 1 ms alignment to the frames."""
    signals, expected = [], []
    for i, key in enumerate(ALL_KEYS):
        for align in range(20):
            tone = dual_tone(key, Tone(-10.0, 0.0, 100.0, 0.0, 0.0), phase=i + align)
            gap = np.zeros(round(gap_ms * MS))
            lead = np.zeros(align * MS + 3)
            signals.append(pcm(np.concatenate([lead, tone, gap, tone])))
            expected.append(key * presses)
    assert decode_all(signals) == expected


# -- noise: the tones must stand above the line's noise floor -----------------------------------


def noisy_keys(snr_db: float, seed: int, twist: float = 0.0) -> tuple[np.ndarray, str]:
    """All keys, 60 ms on / 60 off, in white noise that starts 300 ms before the first."""
    rng = np.random.default_rng(seed)
    low, high = -20.0 - twist / 2, -20.0 + twist / 2
    parts = [np.zeros(300 * MS)]
    for i, key in enumerate(ALL_KEYS):
        parts += [dual_tone(key, Tone(low, high - low, 60.0, 0.0, 0.0), i), np.zeros(60 * MS)]
    x = np.concatenate(parts)
    pair_power = (32767**2) * (10 ** (low / 10) + 10 ** (high / 10)) / 2
    return pcm(x + rng.normal(0.0, np.sqrt(pair_power / 10 ** (snr_db / 10)), x.shape)), ALL_KEYS


@pytest.mark.parametrize("twist", [0.0, -8.0, 4.0])
def test_keys_in_white_noise_at_15_db_snr_are_all_decoded(twist):
    """15 dB under the pair's power, with the twist at either accepted edge too."""
    signals, expected = zip(*(noisy_keys(15.0, seed, twist) for seed in range(4)), strict=True)
    assert decode_all(list(signals)) == list(expected)


def test_keys_in_white_noise_at_5_db_snr_give_nothing():
    """Tones not 10 dB above the tracked noise floor are not keys, and noise makes none."""
    signals = [noisy_keys(5.0, seed)[0] for seed in range(4)]
    assert decode_all(signals) == [""] * 4


def test_a_quiet_key_right_after_loud_noise_stops_is_decoded():
    """The noise floor drops at once when the noise stops: a -33 dBFS key 40 ms later counts."""
    rng = np.random.default_rng(4)
    noise = rng.normal(0.0, 3000.0, 2 * SAMPLE_RATE)  # -21 dBFS
    key = generate_dtmf("5", tone_ms=60, gap_ms=60, level_dbfs=-33.0)
    signal = np.concatenate([noise, np.zeros(40 * MS), key])
    assert decode_all([pcm(signal)]) == ["5"]


# -- key release: how long a key is held ----------------------------------------------------------


@pytest.mark.parametrize("tone_ms", [40, 100, 250, 500, 2000])
@pytest.mark.parametrize("align", [0, 7, 13])
@pytest.mark.parametrize("twist", [0.0, -8.0, 4.0])
def test_a_key_is_held_from_its_first_window_until_shortly_after_its_tone(tone_ms, align, twist):
    """in_tone() is True on every frame the tone touches after its first 20 ms, and ends
    within 60 ms after the tone does (the release); a 10 ms dropout does not end it."""
    det = DtmfDetector()
    ch = np.array([det.add_channel()])
    lead = 100 + align
    tone = pcm(dual_tone("#", Tone(-12.0, twist, tone_ms, 0.0, 0.0), phase=0.3))
    if tone_ms >= 250:
        tone[120 * MS : 130 * MS] = 0  # a dropout
    x = np.concatenate([np.zeros(lead * MS, np.int16), tone, np.zeros(300 * MS, np.int16)])
    flags = []
    for frame in x[: len(x) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME].reshape(
        -1, SAMPLES_PER_FRAME
    ):
        det.process(ch, frame[None])
        flags.append(bool(det.in_tone(ch)[0]))
    on = np.flatnonzero(flags)
    first_ms, last_end_ms = on[0] * 20, (on[-1] + 1) * 20
    assert np.all(np.diff(on) == 1), "held without a break"
    assert first_ms <= lead + 20  # from the frame after the tone began, at the latest
    assert lead + tone_ms <= last_end_ms <= lead + tone_ms + 60 + 20
