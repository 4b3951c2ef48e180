"""relaykit benchmarks: how far the server, the media engine and the SDK are from their limits.

Run ``python -m benchmarks`` (full, several minutes) or ``python -m benchmarks --quick`` (under a
minute, what CI runs). See ``benchmarks/README.md`` and ``benchmarks/RESULTS.md``.

OpenBLAS threads stall numpy on a busy 2-core machine, so every benchmark process runs with
``OPENBLAS_NUM_THREADS=1``, set here before anything imports numpy (child processes inherit it).
"""

import os

OPENBLAS_SETTING = "OPENBLAS_NUM_THREADS=1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
