"""Measure the DTMF receiver's edges: where each requirement turns from accepted to rejected.

``python -m benchmarks.dtmf_edges`` prints the receiver table of docs/dtmf-receiver.md. Every
row scans one property of generated keys (level, twist, tone and gap duration, frequency
offset, noise) on a fine grid; each grid point decodes all 16 keys at several alignments to
the 20 ms frames and phases, one detector channel each. A point is *accepted* when every
signal gives exactly its key(s), *rejected* when none gives any key; the table shows the
last accepted and the first rejected point on each side. Talk-off decodes espeak-ng speech
in every bundled voice variant, synthetic vowels, music-like chords and noise, and counts
keys (and, more sensitive, single windows that pass every test). ``--cost`` times
``DtmfDetector.process`` per channel on silent, noisy, speaking and key-pressing lines;
``--vad`` counts what the voice detector's steady-tone check changes on speech.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import benchmarks  # noqa: F401  (OPENBLAS_NUM_THREADS first)
from relaykit.media.dtmf import COL_FREQS, DTMF_KEYS, ROW_FREQS, DtmfDetector
from relaykit.media.frames import SAMPLE_RATE, SAMPLES_PER_FRAME

KEYS = "0123456789*#ABCD"
MS = SAMPLE_RATE // 1000
ALIGNMENTS_MS = (0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5)  # start within a 20 ms frame


def dual_tone(
    key: str,
    ms: float,
    *,
    row_db: float,
    col_db: float,
    row_dev: float = 0.0,
    col_dev: float = 0.0,
    phase: float = 0.0,
) -> np.ndarray:
    """Float samples of one key: each tone at its level (dBFS) and relative frequency offset."""
    k = DTMF_KEYS.index(key)
    t = np.arange(round(ms * MS)) / SAMPLE_RATE
    row = 10 ** (row_db / 20) * np.sin(2 * np.pi * ROW_FREQS[k // 4] * (1 + row_dev) * t)
    col = 10 ** (col_db / 20) * np.sin(2 * np.pi * COL_FREQS[k % 4] * (1 + col_dev) * t + phase)
    return 32767.0 * (row + col)


def pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def decode(signals: Sequence[np.ndarray], **options: float) -> list[str]:
    """Decode each signal on its own channel of one batch detector (one frame per tick)."""
    det = DtmfDetector(**options)  # type: ignore[arg-type]
    channels = np.array([det.add_channel() for _ in signals], dtype=np.intp)
    n = max(len(s) for s in signals)
    n += -n % SAMPLES_PER_FRAME + 6 * SAMPLES_PER_FRAME
    audio = np.zeros((len(signals), n), dtype=np.float32)
    for row, s in zip(audio, signals, strict=True):
        row[: len(s)] = s
    keys = [""] * len(signals)
    for start in range(0, n, SAMPLES_PER_FRAME):
        for ch, key in det.process(channels, audio[:, start : start + SAMPLES_PER_FRAME]):
            keys[ch] += key
    return keys


@dataclass(frozen=True)
class Point:
    value: float
    accepted: int  # signals that gave exactly their keys
    rejected: int  # signals that gave no key
    total: int


Case = tuple[np.ndarray, str, str]  # signal, its result when accepted, when rejected


def scan(values: Iterable[float], make: Callable[[float], list[Case]]) -> list[Point]:
    """For each value: decode the cases ``make(value)`` returns and count both outcomes."""
    points = []
    for v in values:
        cases = make(v)
        got = decode([pcm(c[0]) for c in cases])
        ok = sum(g == c[1] for g, c in zip(got, cases, strict=True))
        rej = sum(g == c[2] for g, c in zip(got, cases, strict=True))
        points.append(Point(v, ok, rej, len(cases)))
    return points


def edge(points: list[Point]) -> tuple[float | None, float | None]:
    """(last value where all were accepted, first value after it where all were rejected),
    scanning in the given order (from the accepted side outwards)."""
    last_ok = first_rej = None
    for p in points:
        if p.accepted == p.total and first_rej is None:
            last_ok = p.value
        if p.rejected == p.total and last_ok is not None:
            first_rej = p.value
            break
    return last_ok, first_rej


def keys_at(ms: float = 60.0, **tone: float) -> list[Case]:
    """Every key at every alignment, one signal each, ``tone`` passed to :func:`dual_tone`."""
    out = []
    for i, key in enumerate(KEYS):
        for j, align in enumerate(ALIGNMENTS_MS):
            phase = (i * 8 + j) * 0.7  # vary the phase between the two tones
            sig = dual_tone(key, ms, phase=phase, **tone)  # type: ignore[arg-type]
            lead = np.zeros(round(align * MS))
            out.append((np.concatenate([lead, sig, np.zeros(60 * MS)]), key, ""))
    return out


def frange(start: float, stop: float, step: float) -> list[float]:
    n = round((stop - start) / step)
    return [round(start + i * step, 4) for i in range(n + 1)]


# -- rows ---------------------------------------------------------------------------------------


Row = dict[str, str]


def row(name: str, accepted: str, rejected: str, edge: str) -> Row:
    return {"row": name, "accepted": accepted, "rejected": rejected, "edge": edge}


def level_row() -> Row:
    pts = scan(frange(-30.0, -46.0, -0.1), lambda v: keys_at(row_db=v, col_db=v))
    ok, rej = edge(pts)
    per_key = []
    for key in KEYS:  # the level edge of each key on its own: how alike the keys are
        for p in pts:
            cases = [c for c in keys_at(row_db=p.value, col_db=p.value) if c[1] == key]
            if any(g != key for g in decode([pcm(c[0]) for c in cases])):
                per_key.append(p.value)
                break
    top = scan([-6.02], lambda v: keys_at(row_db=v, col_db=v))[0]
    clipped = scan([-3.0], lambda v: keys_at(row_db=v, col_db=v))[0]  # pcm() clips the peaks
    return row(
        "level, each tone (dBFS)",
        "-6.02 (the loudest pair that does not clip, -3 dBFS in all) to -33; -3 per tone, clipped",
        "-42 and below",
        f"{ok} / {rej}; each key's first miss between {max(per_key)} and {min(per_key)}; "
        f"-6.02: {top.accepted}/{top.total}, -3 clipped: {clipped.accepted}/{clipped.total}",
    )


def twist_rows() -> list[Row]:
    rows = []
    for label, sign, accepted in (("weaker", -1.0, "8"), ("stronger", 1.0, "4")):
        found = []
        for low in ("loud", -20.0, -33.0):  # the low-group tone's level; the high one is twisted

            def make(v: float, low: float | str = low, sign: float = sign) -> list[Case]:
                if low == "loud":  # the pair scaled to peak at -1 dBFS, whatever the twist
                    lo = 20 * np.log10(0.89 / (1 + 10 ** (sign * v / 20)))
                    return keys_at(row_db=lo, col_db=lo + sign * v)
                return keys_at(row_db=float(low), col_db=float(low) + sign * v)

            found.append((low, *edge(scan(frange(0.0, 14.0, 0.1), make))))
        where = {"loud": "pair peaking at -1 dBFS", -20.0: "low at -20", -33.0: "low at -33"}
        rows.append(
            row(
                f"twist: high group {label} than low group (dB)",
                f"up to {accepted}",
                "10 and more",
                ", ".join(f"{ok} / {rej} ({where[lo]})" for lo, ok, rej in found),
            )
        )
    return rows


def duration_rows() -> list[Row]:
    # Every key at 20 alignments, 1 ms apart (the 8 of keys_at are too coarse here).
    def tones(v: float) -> list[Case]:
        out = []
        for i, key in enumerate(KEYS):
            for a in range(20):
                sig = dual_tone(key, v, row_db=-10, col_db=-10, phase=i + a)
                out.append((np.concatenate([np.zeros(a * MS), sig]), key, ""))
        return out

    # The same key twice around a gap: two keys if accepted, one if bridged.
    def gaps(v: float) -> list[Case]:
        out = []
        for i, key in enumerate(KEYS):
            for a in range(20):
                tone = dual_tone(key, 100, row_db=-10, col_db=-10, phase=i + a)
                sig = np.concatenate([np.zeros(a * MS), tone, np.zeros(round(v * MS)), tone])
                out.append((sig, key + key, key))
        return out

    tone_ok, tone_rej = edge(scan(frange(50.0, 10.0, -1.0), tones))
    gap_ok, gap_rej = edge(scan(frange(60.0, 0.0, -1.0), gaps))
    return [
        row("tone duration (ms)", "40 and longer", "20 and shorter", f"{tone_ok} / {tone_rej}"),
        row(
            "pause between two presses (ms)",
            "40 and longer: two keys",
            "20 and shorter: one key (bridged)",
            f"{gap_ok} / {gap_rej}",
        ),
    ]


def frequency_row() -> Row:
    found = []
    for sign in (1.0, -1.0):
        for which in ("row_dev", "col_dev", "both"):

            def make(v: float, sign: float = sign, which: str = which) -> list[Case]:
                dev = sign * v / 100
                devs = {"row_dev": dev, "col_dev": dev} if which == "both" else {which: dev}
                return keys_at(row_db=-10, col_db=-10, **devs)

            found.append((sign, which, *edge(scan(frange(0.0, 5.0, 0.05), make))))
    names = {"row_dev": "low", "col_dev": "high", "both": "both"}
    return row(
        "frequency offset, either or both tones (%)",
        "±1.5",
        "±3.5 and beyond",
        ", ".join(f"{names[w]} {'+' if s > 0 else '-'}: {ok} / {rej}" for s, w, ok, rej in found),
    )


def snr_row(seeds: int = 3) -> Row:
    def make(v: float) -> list[Case]:
        out = []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            for i, key in enumerate(KEYS):
                sig = dual_tone(key, 60, row_db=-20, col_db=-20, phase=i)
                pair_power = (32767 * 10 ** (-20 / 20)) ** 2  # two sines of amplitude a: a^2
                x = np.concatenate([np.zeros(300 * MS), sig, np.zeros(100 * MS)])
                x += rng.normal(0.0, np.sqrt(pair_power / 10 ** (v / 10)), x.shape)
                out.append((x, key, ""))
        return out

    ok, rej = edge(scan(frange(25.0, 0.0, -0.5), make))
    return row(
        "signal to white noise, pair to noise power (dB)",
        "15 and more",
        "5 and less: no key, and no false one",
        f"{ok} / {rej}",
    )


def corners_row() -> Row:
    """Every combination of accepted edges at once, as in tests/media/test_dtmf_receiver.py."""
    cases: list[Case] = []
    for loud, twist, ms, (rd, cd) in itertools.product(
        (True, False),
        (-8.0, 0.0, 4.0),
        (40.0, 100.0),
        ((-0.015, -0.015), (0.0, 0.0), (0.015, 0.015), (0.015, -0.015), (-0.015, 0.015)),
    ):
        lo = float(20 * np.log10(0.89 / (1 + 10 ** (twist / 20)))) if loud else -33.0
        cases += keys_at(ms, row_db=lo, col_db=lo + twist, row_dev=rd, col_dev=cd)
    (p,) = scan([0.0], lambda _: cases)
    return row(
        "all accepted edges at once: level × twist × duration × offset",
        "-1 dBFS peak and -33 × -8, 0, +4 dB × 40, 100 ms × 5 offsets",
        "-",
        f"{p.accepted}/{p.total} decoded",
    )


def release_row() -> Row:
    """When in_tone() ends after a tone of 40 ms to 2 s ends (20 alignments, every key)."""
    delays = []
    for ms in (40, 100, 500, 2000):
        signals = []
        for i, key in enumerate(KEYS):
            for a in range(0, 20, 1):
                tone = dual_tone(key, ms, row_db=-10, col_db=-10, phase=i + a)
                signals.append(pcm(np.concatenate([np.zeros((100 + a) * MS), tone])))
        det = DtmfDetector()
        ch = np.array([det.add_channel() for _ in signals], dtype=np.intp)
        n = max(len(x) for x in signals) + 200 * MS
        n += -n % SAMPLES_PER_FRAME
        audio = np.zeros((len(signals), n), dtype=np.int16)
        for r, x in zip(audio, signals, strict=True):
            r[: len(x)] = x
        last_on = np.full(len(signals), -1)
        for f, start in enumerate(range(0, n, SAMPLES_PER_FRAME)):
            det.process(ch, audio[:, start : start + SAMPLES_PER_FRAME])
            last_on[det.in_tone(ch)] = f
        ends = np.array([len(x) for x in signals]) / MS
        delays += list((last_on + 1) * 20 - ends)
    return row(
        "key release: end of in_tone() after the tone (ms, 40 ms to 2 s tones)",
        "-",
        "-",
        f"{min(delays):.0f} to {max(delays):.0f} (frame ends)",
    )


# -- talk-off -----------------------------------------------------------------------------------

TALK_TEXTS = (
    "Thank you for calling. Please enter your account number, followed by the pound key.",
    "One two three four five six seven eight nine zero star pound. Oh, ah, mmm, eee.",
    "Hello, I would like to talk to someone in billing please, it's about my last invoice.",
    "Sales. Support. Yes. No. Operator. Representative. Agent please.",
)


def talkoff_corpus(variants: Sequence[str] | None = None) -> list[np.ndarray]:
    """espeak-ng speech in every bundled voice variant, vowels, chords: float samples."""
    from relaykit.media.tts import EspeakTts

    tts = EspeakTts()
    if variants is None:
        import espeakng_loader

        root = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
        variants = sorted(os.listdir(root))
    tts.synthesize("warm up")  # loads the library
    speech = [_speak(v, text) for v in variants for text in TALK_TEXTS]
    return speech + _vowels() + _chords()


def _speak(variant: str, text: str) -> np.ndarray:
    """``text`` in voice variant ``variant``: the TTS module's internals, since its public
    lookup only knows two voices per language."""
    from relaykit.media import tts

    with tts._LOCK:
        raw = tts._ESPEAK.synth(text, f"en-us+{variant}", ssml=False)
        return tts.EspeakTts._finish(raw, tts._ESPEAK.rate).astype(float)


def _vowels() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    formants = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
                (570, 840, 2410))  # fmt: skip
    out = []
    for lo in range(80, 300, 10):
        for f1, f2, f3 in formants:
            n = round(0.4 * SAMPLE_RATE)
            pitch = np.linspace(lo, lo * 1.2, n) * (1 + 0.01 * rng.standard_normal())
            source = np.diff(np.floor(np.cumsum(pitch) / SAMPLE_RATE), prepend=0.0)
            freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
            env = sum(1 / (1 + ((freqs - f) / (60 + f / 20)) ** 2) for f in (f1, f2, f3))
            voiced = np.fft.irfft(np.fft.rfft(source) * env / (1 + freqs / 1000), n)
            out.append(voiced / np.abs(voiced).max() * 8000)
    return out


def _chords() -> list[np.ndarray]:
    t = np.arange(round(0.25 * SAMPLE_RATE)) / SAMPLE_RATE
    out = []
    for root in range(40, 90):
        for intervals in ((0, 4, 7), (0, 3, 7), (0, 7), (0, 5)):
            chord = np.zeros_like(t)
            for step in intervals:
                f = 440.0 * 2 ** ((root + step - 69) / 12)
                for h in range(1, 9):
                    if h * f < 7000:
                        chord += np.sin(2 * np.pi * h * f * t) / h
            out.append(3000 * chord)
    return out


def talkoff_row(corpus: list[np.ndarray]) -> Row:
    seconds = 0.0
    keys = near = 0
    for level in (-10.0, -20.0, -30.0):
        scaled = []
        for x in corpus:
            active = x[np.abs(x) > 0.01 * np.abs(x).max()]
            rms = np.sqrt(np.mean(active**2)) if active.size else 1.0
            scaled.append(pcm(x * 32768 * 10 ** (level / 20) / rms))
            seconds += len(x) / SAMPLE_RATE
        keys += sum(len(k) for k in decode(scaled))
        near += sum(len(k) for k in decode(scaled, confirm_windows=1))
    return row(
        "talk-off: speech (espeak-ng, all 104 voice variants), vowels, chords",
        "-",
        f"speech and music: no key ({seconds / 60:.0f} min, at -10, -20 and -30 dBFS)",
        f"{keys} keys, {near} single windows passing every test",
    )


# -- cost ---------------------------------------------------------------------------------------


def cost(n: int = 1000, ticks: int = 200) -> dict[str, float]:
    """CPU µs per channel per tick of DtmfDetector.process on 1000 channels (median of 5 runs):
    silent, noisy and speaking lines, and every line pressing keys (half the time in a tone),
    with the tones level and with the high group 6 dB down (measured again through Hann)."""
    rng = np.random.default_rng(1)
    length = SAMPLES_PER_FRAME * ticks
    speech = np.concatenate(talkoff_corpus(["m1", "f3"])[:8])

    def pressing(twist: float) -> np.ndarray:
        one = [
            np.concatenate([dual_tone(k, 60, row_db=-15, col_db=-15 + twist), np.zeros(60 * MS)])
            for k in KEYS
        ]
        keys = np.tile(np.concatenate(one), 1 + length // (16 * 120 * MS))
        return pcm(np.stack([np.roll(keys, 331 * i)[:length] for i in range(n)]))

    lines = {
        "silence": np.zeros((n, length), dtype=np.int16),
        "noise": pcm(rng.normal(0, 300, (n, length))),
        "speech": pcm(np.stack([np.roll(speech, 3217 * i)[:length] for i in range(n)])),
        "keys": pressing(0.0),
        "keys, high group 6 dB down": pressing(-6.0),
    }
    out = {}
    for name, audio in lines.items():
        det = DtmfDetector()
        ch = np.array([det.add_channel() for _ in range(n)], dtype=np.intp)
        runs = []
        for r in range(6):
            t = time.thread_time()
            for i in range(ticks // 5):
                start = ((r * ticks // 5 + i) % ticks) * SAMPLES_PER_FRAME
                det.process(ch, audio[:, start : start + SAMPLES_PER_FRAME])
            runs.append((time.thread_time() - t) / (ticks // 5) / n * 1e6)
        out[name] = sorted(runs[1:])[2]
    return out


def vad_on_speech() -> dict[str, int]:
    """What the VAD's steady-tone check changes on speech: espeak-ng's every voice variant,
    each text at -20 and -30 dBFS, with the check against without it (tone_purity 1.0)."""
    import espeakng_loader

    from relaykit.media.vad import SpeechSegmenter, VoiceActivityDetector

    root = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    out = {"utterances": 0, "speech frames": 0, "frames changed": 0, "events changed": 0}
    for variant in sorted(os.listdir(root)):
        for text in TALK_TEXTS:
            speech = _speak(variant, text)
            active = speech[np.abs(speech) > 0.01 * np.abs(speech).max()]
            for level in (-20.0, -30.0):
                gain = 32768 * 10 ** (level / 20) / np.sqrt(np.mean(active**2))
                x = pcm(np.concatenate([np.zeros(SAMPLE_RATE // 2), speech * gain]))
                x = np.concatenate([x, np.zeros(2 * SAMPLE_RATE, np.int16)])
                frames = x[: len(x) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME]
                frames = frames.reshape(-1, SAMPLES_PER_FRAME)
                plain, aware = VoiceActivityDetector(tone_purity=1.0), VoiceActivityDetector()
                a = np.array([plain.push(f) for f in frames])
                b = np.array([aware.push(f) for f in frames])
                before = SpeechSegmenter(VoiceActivityDetector(tone_purity=1.0)).push_samples(x)
                after = SpeechSegmenter().push_samples(x)
                out["utterances"] += 1
                out["speech frames"] += int(a.sum())
                out["frames changed"] += int((a != b).sum())
                out["events changed"] += before != after
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cost", action="store_true", help="time the detector only")
    parser.add_argument("--no-talkoff", action="store_true", help="skip the talk-off corpus")
    parser.add_argument("--vad", action="store_true", help="the VAD's tone check on speech")
    args = parser.parse_args()
    if args.vad:
        print(vad_on_speech())
        return
    if args.cost:
        for name, us in cost().items():
            print(f"{name}: {us:.3f} µs per channel per tick (1000 channels)")
        return
    rows = [level_row(), *twist_rows(), *duration_rows(), frequency_row(), snr_row()]
    rows += [corners_row(), release_row()]
    if not args.no_talkoff:
        rows.append(talkoff_row(talkoff_corpus()))
    print("| property | accepted (required) | rejected (required) | measured edge |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['row']} | {r['accepted']} | {r['rejected']} | {r['edge']} |")


if __name__ == "__main__":
    main()
