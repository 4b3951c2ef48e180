"""The media engine alone, without sockets: cost per call per tick, against a bare numpy sketch.

Every call is in the state that dominates a load run: a prompt's TTS playing out, the caller's
line carrying audio (so the call is in the DTMF batch every tick), no keys. The *sketch* does
the physical minimum for the same calls: slice each call's inbound frame, stack them, run the
same batch DTMF detector, slice each call's outbound frame. The difference between the two is
the engine's own Python overhead per call and per tick.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from typing import Any

import numpy as np

import benchmarks  # noqa: F401  (OPENBLAS_NUM_THREADS first)
from relaykit.media.dtmf import DtmfDetector
from relaykit.media.engine import MediaEngine
from relaykit.media.frames import FRAME_SECONDS, SAMPLES_PER_FRAME
from relaykit.media.playback import MediaItem
from relaykit.media.tts import EspeakTts
from relaykit.media.vad import VoiceActivityDetector
from relaykit.protocol.calling import Collect

PIN_PROMPT = "Please enter your 4 digit PIN, then press pound"
_COLLECT = {"digits": {"max": 10, "terminators": "#"}, "initial_timeout": 60}


def _prompt_audio(seconds: float) -> np.ndarray:
    """The PIN prompt, repeated to ``seconds`` (long enough never to end during a run)."""
    one = EspeakTts().synthesize(PIN_PROMPT)
    reps = int(seconds * 16000 // len(one)) + 1
    audio = np.tile(one, reps)
    audio.flags.writeable = False
    return audio


def build_engine(n: int, audio: np.ndarray, line: np.ndarray, *, idle: bool = False) -> MediaEngine:
    engine = MediaEngine(vad_factory=VoiceActivityDetector)
    collect = Collect.parse(_COLLECT)
    for i in range(n):
        call = engine.add_call(f"call-{i}", record=False)
        if idle:
            continue
        engine.start_prompt(
            call.call_id, "prompt", [MediaItem("tts", PIN_PROMPT, samples=audio)], collect
        )
        call.push_inbound(line)
    return engine


def time_ticks(engine: MediaEngine, ticks: int) -> float:
    """CPU seconds per tick (median of 5 runs of ``ticks // 5`` ticks, after a warm-up).

    CPU time of this thread, not wall time, so other processes on the machine do not count."""
    for _ in range(10):
        engine.tick()
    per: list[float] = []
    chunk = max(1, ticks // 5)
    for _ in range(5):
        t = time.thread_time()
        for _ in range(chunk):
            engine.tick()
        per.append((time.thread_time() - t) / chunk)
    return sorted(per)[len(per) // 2]


def time_sketch(n: int, audio: np.ndarray, line: np.ndarray, ticks: int) -> float:
    """The physical minimum for the same calls: slicing in and out, and the batch detector."""
    det = DtmfDetector()
    channels = np.array([det.add_channel() for _ in range(n)], dtype=np.intp)
    inbound = [line] * n
    outbound = [audio] * n
    offsets = [0] * n
    f = SAMPLES_PER_FRAME

    def tick() -> None:
        frames = np.stack([buf[o : o + f] for buf, o in zip(inbound, offsets, strict=True)])
        det.process(channels, frames)
        out = [buf[o : o + f] for buf, o in zip(outbound, offsets, strict=True)]
        for i in range(n):
            offsets[i] += f
        del out

    for _ in range(10):
        tick()
    per: list[float] = []
    chunk = max(1, ticks // 5)
    for _ in range(5):
        t = time.thread_time()
        for _ in range(chunk):
            tick()
        per.append((time.thread_time() - t) / chunk)
    return sorted(per)[len(per) // 2]


def profile_ticks(engine: MediaEngine, ticks: int, per_tick: float, n: int) -> list[list[Any]]:
    """Top functions by own time under cProfile, rescaled to the unprofiled tick time:
    [function, µs per call per tick, share %]."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(ticks):
        engine.tick()
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    total = 0.0
    for (filename, line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += tottime
        short = filename.rsplit("/", 2)
        where = "/".join(short[-2:]) if len(short) > 1 else filename
        rows.append((tottime, f"{name} ({where}:{line})"))
    rows.sort(reverse=True)
    scale = per_tick / (total / ticks) if total else 0.0
    return [
        [label, tottime / ticks * scale / n * 1e6, 100 * tottime / total]
        for tottime, label in rows[:15]
    ]


class _Variant:
    """Switch the media classes between the tree's code and an experiment's patches."""

    def __init__(self, experiment: str) -> None:
        from benchmarks import experiments
        from relaykit.media import collector, engine, playback

        self.classes = [
            engine.MediaEngine,
            engine.CallMedia,
            playback.Playback,
            collector.Collector,
        ]
        before = [dict(vars(c)) for c in self.classes]
        experiments.apply(experiment, None)
        after = [dict(vars(c)) for c in self.classes]
        self.base = [
            {k: b.get(k) for k in a if a[k] is not b.get(k)}
            for b, a in zip(before, after, strict=True)
        ]
        self.patched = [{k: a[k] for k in d} for d, a in zip(self.base, after, strict=True)]

    def use(self, patched: bool) -> None:
        for cls, attrs in zip(self.classes, self.patched if patched else self.base, strict=True):
            for name, value in attrs.items():
                if value is None:
                    if hasattr(cls, name):
                        delattr(cls, name)
                else:
                    setattr(cls, name, value)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    sizes: list[int] = spec.get("sizes", [1000])
    ticks: int = spec.get("ticks", 250)
    rounds = 3 if spec.get("experiment") else 1
    seconds = (ticks * 3 * rounds + 200) * FRAME_SECONDS + 5
    audio = _prompt_audio(seconds)
    line = np.zeros(len(audio), dtype=np.int16)
    line.flags.writeable = False
    variant = _Variant(spec["experiment"]) if spec.get("experiment") else None
    if variant is not None:
        variant.use(False)
    rows = []
    for n in sizes:
        engine = build_engine(n, audio, line)
        row: dict[str, Any] = {"n": n}
        if variant is not None:
            # baseline and variant in turn on the same calls, so load swings hit both alike
            base, patched = [], []
            for _ in range(rounds):
                base.append(time_ticks(engine, ticks))
                variant.use(True)
                patched.append(time_ticks(engine, ticks))
                variant.use(False)
            tick = sorted(base)[rounds // 2]
            fast = sorted(patched)[rounds // 2]
            row.update(
                {
                    "experiment_ms": fast * 1e3,
                    "experiment_us_per_call": fast / n * 1e6,
                    "experiment_gain_pct": 100 * (1 - fast / tick),
                }
            )
        else:
            tick = time_ticks(engine, ticks)
        sketch = time_sketch(n, audio, line, ticks)
        idle = time_ticks(build_engine(n, audio, line, idle=True), ticks)
        row.update(
            {
                "engine_ms": tick * 1e3,
                "engine_core_pct": 100 * tick / FRAME_SECONDS,
                "engine_us_per_call": tick / n * 1e6,
                "sketch_ms": sketch * 1e3,
                "sketch_core_pct": 100 * sketch / FRAME_SECONDS,
                "idle_us_per_call": idle / n * 1e6,
            }
        )
        if spec.get("profile_n") == n:
            row["profile"] = profile_ticks(build_engine(n, audio, line), ticks // 2, tick, n)
        rows.append(row)
    return {"scenario": "engine", "ticks": ticks, "rows": rows}
