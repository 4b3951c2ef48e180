"""``python -m benchmarks.media_attacks --quick`` runs every attack and prints its table.

Only that it runs is checked (exit 0, or 3 for a missed goal), never its figures: those are
timings and memory of a machine that may be busy with other work.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_media_attack_benchmark_runs_every_phase() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.media_attacks", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode in (0, 3), f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-4000:]}"
    for phase in ("| baseline |", "| starvation |", "| memory |"):
        assert phase in done.stdout
