"""The media engine alone, without sockets: cost per call per tick, against a bare numpy sketch.

Every call is in the state that dominates a load run: a prompt's TTS playing out, the caller's
line carrying audio (so the call is in the DTMF batch every tick), no keys. The *sketch* does
the physical minimum for the same calls: slice each call's inbound frame, stack them, run the
same batch DTMF detector, slice each call's outbound frame. The difference between the two is
the engine's own Python overhead per call and per tick. The *vectorised sketch* keeps the
offsets in numpy arrays and gathers all frames at once: what is left is the DTMF detector.
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


def cpu_per_tick(tick: Callable[[], object], ticks: int) -> float:
    """CPU seconds per call of ``tick`` (median of 5 runs of ``ticks // 5``, after a warm-up).

    CPU time of this thread, not wall time, so other processes on the machine do not count."""
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


def sketch_tick(n: int, audio: np.ndarray, line: np.ndarray) -> Callable[[], None]:
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

    return tick


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
    line = np.zeros(len(audio), dtype=np.int16)
    line.flags.writeable = False
    rows = []
    for n in sizes:
        tick = cpu_per_tick(build_engine(n, audio, line).tick, ticks)
        sketch = cpu_per_tick(sketch_tick(n, audio, line), ticks)
        vector = cpu_per_tick(vector_tick(n, audio, line), ticks)
        idle = cpu_per_tick(build_engine(n, audio, line, idle=True).tick, ticks)
        row: dict[str, Any] = {
            "n": n,
            "engine_ms": tick * 1e3,
            "engine_core_pct": 100 * tick / FRAME_SECONDS,
            "engine_us_per_call": tick / n * 1e6,
            "sketch_ms": sketch * 1e3,
            "sketch_core_pct": 100 * sketch / FRAME_SECONDS,
            "vector_ms": vector * 1e3,
            "vector_us_per_call": vector / n * 1e6,
            "idle_us_per_call": idle / n * 1e6,
        }
        if spec.get("profile_n") == n:
            row["profile"] = profile_ticks(build_engine(n, audio, line), ticks // 2, tick, n)
        rows.append(row)
    return {"scenario": "engine", "ticks": ticks, "rows": rows}
