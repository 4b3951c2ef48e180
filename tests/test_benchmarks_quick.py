"""The benchmarks run: ``python -m benchmarks --quick`` exits 0 and prints every table.

Only that it runs is checked, never its figures: timings belong in the benchmark, and this
machine may be busy with other work.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HEADINGS = (
    "# relaykit benchmarks (quick)",
    "## Media engine alone",
    "## Media concurrency: digit prompts",
    "## Speech concurrency: speech prompts",
    "## Latency",
    "## SDK throughput vs the peer",
    "## Memory per idle call",
    "## Goals",
)


def test_quick_benchmark_runs_and_prints_its_tables() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-4000:]}"
    for heading in HEADINGS:
        assert heading in done.stdout, f"{heading!r} missing from:\n{done.stdout}"
    assert "| N " in done.stdout  # the concurrency tables have their header rows
    assert "OPENBLAS_NUM_THREADS=1" in done.stdout


def test_amd_benchmark_runs_and_prints_its_table() -> None:
    """``python -m benchmarks.amd --voices 1`` (the AMD accuracy set, one voice) runs."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.amd", "--voices", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-4000:]}"
    assert "# Answering-machine detection (AMD) accuracy" in done.stdout
    for row in ("| machine |", "| person |", "| silence |", "Overall:"):
        assert row in done.stdout


def test_bridge_benchmark_runs_and_prints_its_table() -> None:
    """``python -m benchmarks.bridge`` (what a connect's bridge costs the engine) runs."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bridge", "--pairs", "5", "--ticks", "50"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-4000:]}"
    assert "# What a bridge costs the media engine" in done.stdout
    assert "| 5 |" in done.stdout
