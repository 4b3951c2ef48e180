"""What a bridge (``calling.connect``) costs the media engine per tick.

``python -m benchmarks.bridge [--pairs 50,250] [--ticks 500]``: N pairs of calls, both far ends
talking (audio on every inbound line), timed three ways on the same engine build:

* *apart*: the 2N calls, no bridge (what the calls cost anyway);
* *bridged*: each pair bridged both ways (a :class:`~relaykit.media.bridge.BridgedAudio` in
  each call's table adds the other leg's inbound frame to its outbound);
* *bridged + play*: the same with a prompt playing to one leg of each pair as well (the mix).

CPU time of the engine's tick (``time.thread_time``), median of five runs; printed per call
per tick, and as the ratio to *apart*: the share of a tick a bridge adds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

import benchmarks
from relaykit.media.bridge import BridgedAudio
from relaykit.media.engine import MediaEngine
from relaykit.media.frames import SAMPLE_RATE
from relaykit.media.playback import MediaItem


def _voice(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (4000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def build(pairs: int, ticks: int, *, bridged: bool, play: bool) -> MediaEngine:
    engine = MediaEngine()
    line = _voice(ticks * 0.02 * 3 + 5, 300.0)  # long enough for every run of the tick
    prompt = _voice(ticks * 0.02 * 3 + 5, 900.0)
    for i in range(pairs):
        a = engine.add_call(f"a{i}", record=False)
        b = engine.add_call(f"b{i}", record=False)
        a.push_inbound(line)
        b.push_inbound(line)
        if bridged:
            engine.start_component(a.call_id, BridgedAudio("bridge", b))
            engine.start_component(b.call_id, BridgedAudio("bridge", a))
        if play:
            engine.start_play(a.call_id, "play", [MediaItem("tts", "prompt", samples=prompt)])
    return engine


def cpu_per_tick(tick: Callable[[], object], ticks: int) -> float:
    for _ in range(10):
        tick()
    per: list[float] = []
    chunk = max(1, ticks // 5)
    for _ in range(5):
        start = time.thread_time()
        for _ in range(chunk):
            tick()
        per.append((time.thread_time() - start) / chunk)
    return sorted(per)[len(per) // 2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="50,250", help="pairs of calls, comma-separated")
    parser.add_argument("--ticks", type=int, default=500)
    args = parser.parse_args(argv)
    print("# What a bridge costs the media engine\n")
    print(f"{benchmarks.OPENBLAS_SETTING}; CPU µs per call per tick, median of 5 runs\n")
    print("| pairs | apart | bridged | bridged + play | bridged / apart |")
    print("|---:|---:|---:|---:|---:|")
    for pairs in (int(p) for p in args.pairs.split(",")):
        calls = 2 * pairs
        apart, bridged, mixed = (
            cpu_per_tick(build(pairs, args.ticks, bridged=b, play=p).tick, args.ticks) / calls
            for b, p in ((False, False), (True, False), (True, True))
        )
        print(
            f"| {pairs} | {apart * 1e6:.1f} | {bridged * 1e6:.1f} | {mixed * 1e6:.1f} "
            f"| {bridged / apart:.2f} |"
        )


if __name__ == "__main__":
    main()
