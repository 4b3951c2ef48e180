"""What importing relaykit costs: ``python -m benchmarks.imports [--runs N]``.

Each case runs in a fresh interpreter and times its statement with ``time.perf_counter``
(names of ``relaykit`` load on first use through ``importlib``, which ``-X importtime`` does not
report); ``import relaykit`` is also read from ``-X importtime``. Figures are medians of the
runs, after a first run that leaves the bytecode cached (as an installed wheel has it), with
``PYTHONDONTWRITEBYTECODE`` unset. The pytest plugin is measured beyond what pytest and
pytest-asyncio cost anyway (pytest loads them before any plugin). ``relaykit --help`` is the
wall time of the whole command, with an empty interpreter's start-up measured in the same run
as the baseline.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

TARGET_IMPORT_MS = 150.0  # relaykit and the SDK's names, for an SDK-only user

CASES = {
    "import relaykit": ("", "import relaykit"),
    "SDK names (Consumer, Call)": ("", "from relaykit import Call, Consumer"),
    "the server (RelayServer)": ("", "from relaykit import RelayServer"),
    "pytest plugin, beyond pytest": (
        "import pytest, pytest_asyncio",
        "import relaykit.pytest_plugin",
    ),
}

# bytecode cached, as in an installed package
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

_TIMED = """
import sys, time
{preload}
start = time.perf_counter()
{code}
print(time.perf_counter() - start, 'numpy' in sys.modules)
"""


def _timed(preload: str, code: str) -> tuple[float, bool]:
    out = subprocess.run(
        [sys.executable, "-c", _TIMED.format(preload=preload, code=code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=_ENV,
    )
    seconds, numpy = out.stdout.split()
    return float(seconds), numpy == "True"


def _importtime_ms(module: str) -> float:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=_ENV,
    )
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)$", line)
        if match and match[2] == module:
            return int(match[1]) / 1000
    raise RuntimeError(f"-X importtime did not report {module}")


def _wall(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, capture_output=True, check=True, timeout=120, env=_ENV)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description="What importing relaykit costs.")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"{'case':<32} {'median ms':>10} {'numpy loaded':>13}")
    results = {}
    for name, (preload, code) in CASES.items():
        _timed(preload, code)  # caches the bytecode
        runs = [_timed(preload, code) for _ in range(args.runs)]
        results[name] = statistics.median(seconds for seconds, _ in runs) * 1000
        print(f"{name:<32} {results[name]:>10.1f} {'yes' if runs[0][1] else 'no':>13}")
    importtime = statistics.median(_importtime_ms("relaykit") for _ in range(args.runs))
    print(f"{'import relaykit (-X importtime)':<32} {importtime:>10.1f}")
    _wall([sys.executable, "-m", "relaykit", "--help"])
    empty = statistics.median(_wall([sys.executable, "-c", "pass"]) for _ in range(args.runs))
    help_ = statistics.median(
        _wall([sys.executable, "-m", "relaykit", "--help"]) for _ in range(args.runs)
    )
    print(
        f"{'relaykit --help (whole command)':<32} {help_ * 1000:>10.1f}  "
        f"(an empty interpreter: {empty * 1000:.1f} ms)"
    )
    sdk = results["import relaykit"] + results["SDK names (Consumer, Call)"]
    verdict = "pass" if sdk <= TARGET_IMPORT_MS else "FAIL"
    print(
        f"target: relaykit and the SDK's names <= {TARGET_IMPORT_MS:g} ms: {sdk:.0f} ms, {verdict}"
    )


if __name__ == "__main__":
    main()
