"""The media engine alone, without sockets: cost per call per tick, against the DSP floor.

Every call is in the state that dominates a load run: a prompt's TTS playing out, the caller's
line carrying audio (so the call is in the DTMF batch every tick), no keys. Two lines: *silent*
(digital silence, as the virtual callers send between keys) and *noisy* (white noise at
-60 dBFS, as on a line with comfort noise), on which the DTMF detector analyses every frame.
The *floor* is a vectorised sketch of the physical minimum for the same calls: every call's
offsets in numpy arrays, all inbound frames gathered at once, the same batch DTMF detector, all
outbound frames gathered at once. Engine and floor are timed in alternation (CPU time of this
thread), so that the machine's load, which swings by ×2 from minute to minute here, weighs on
both alike; the ratio of the two is the figure that counts.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

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


def cpu_per_tick(*ticks: Callable[[], object], total: int) -> list[float]:
    """CPU seconds per call of each of ``ticks``: ``total`` calls each after a warm-up, in 5
    rounds that take every tick in turn; the median round of each.

    CPU time of this thread, not wall time, so other processes on the machine do not count."""
    for tick in ticks:
        for _ in range(10):
            tick()
    rounds: list[list[float]] = [[] for _ in ticks]
    chunk = max(1, total // 5)
    for _ in range(5):
        for tick, per in zip(ticks, rounds, strict=True):
            t = time.thread_time()
            for _ in range(chunk):
                tick()
            per.append((time.thread_time() - t) / chunk)
    return [sorted(per)[len(per) // 2] for per in rounds]


def noisy_line(samples: int, level_dbfs: float = -60.0) -> np.ndarray:
    """White noise at ``level_dbfs`` (RMS, full-scale sine 0 dBFS), the same for every call."""
    rms = 32767 / np.sqrt(2) * 10 ** (level_dbfs / 20)
    noise = np.random.default_rng(7).normal(0.0, rms, samples)
    line = np.clip(np.round(noise), -32768, 32767).astype(np.int16)
    line.flags.writeable = False
    return line


def vector_tick(n: int, audio: np.ndarray, line: np.ndarray) -> Callable[[], np.ndarray]:
    """The same with every call's offsets in numpy arrays: one gather per source buffer (here one
    for the line, one for the prompt) instead of a slice per call; what a tick that touches a
    call in Python only at its next event (item or chunk end, deadline, key) would cost."""
    det = DtmfDetector()
    channels = np.array([det.add_channel() for _ in range(n)], dtype=np.intp)
    inbound = sliding_window_view(line, SAMPLES_PER_FRAME)
    outbound = sliding_window_view(audio, SAMPLES_PER_FRAME)
    offsets = np.zeros(n, dtype=np.intp)  # in step here; per call in general

    def tick() -> np.ndarray:
        det.process(channels, inbound[offsets])
        out = outbound[offsets]
        offsets[:] += SAMPLES_PER_FRAME
        return out

    return tick


def profile_ticks(engine: MediaEngine, ticks: int, per_tick: float, n: int) -> list[list[Any]]:
    """Top functions by own time under cProfile, rescaled to the unprofiled tick time:
    [function, µs per call per tick, share %]."""
    for _ in range(10):  # past every call's first frame (its prompt starting), as timed
        engine.tick()
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


def run(spec: dict[str, Any]) -> dict[str, Any]:
    sizes: list[int] = spec.get("sizes", [1000])
    ticks: int = spec.get("ticks", 250)
    seconds = (ticks * 3 + 200) * FRAME_SECONDS + 5
    audio = _prompt_audio(seconds)
    silent = np.zeros(len(audio), dtype=np.int16)
    silent.flags.writeable = False
    lines = {"silent": silent, "noisy": noisy_line(len(audio))}
    rows = []
    for n in sizes:
        row: dict[str, Any] = {"n": n}
        for kind, line in lines.items():
            engine, floor = cpu_per_tick(
                build_engine(n, audio, line).tick, vector_tick(n, audio, line), total=ticks
            )
            row[kind] = {
                "engine_ms": engine * 1e3,
                "engine_us_per_call": engine / n * 1e6,
                "engine_core_pct": 100 * engine / FRAME_SECONDS,
                "floor_ms": floor * 1e3,
                "floor_us_per_call": floor / n * 1e6,
                "ratio": engine / floor,
            }
        (idle,) = cpu_per_tick(build_engine(n, audio, silent, idle=True).tick, total=ticks)
        row["idle_us_per_call"] = idle / n * 1e6
        if spec.get("profile_n") == n:
            per_tick = row["silent"]["engine_ms"] / 1e3
            engine = build_engine(n, audio, silent)
            row["profile"] = profile_ticks(engine, ticks, per_tick, n)
        rows.append(row)
    return {"scenario": "engine", "ticks": ticks, "rows": rows}
