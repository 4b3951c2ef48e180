"""What every benchmark shares: process and machine figures, percentiles, the consumer apps.

Everything here reads ``/proc`` directly (no psutil): CPU seconds of a process from
``/proc/<pid>/stat``, peak and current RSS from ``/proc/<pid>/status``, machine-wide CPU from
``/proc/stat``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.compat.v2 import ensure_venv, installed_python

APPS = Path(__file__).parent / "apps"
PROJECT = "bench-project"
TOKEN = "bench-token"
_TICK = os.sysconf("SC_CLK_TCK")


# -- numbers --------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method); None for no values."""
    if not values:
        return None
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


# -- processes ------------------------------------------------------------------------------------
def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (all its threads); this process by default."""
    if pid is None:
        return time.process_time()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def helpers(exclude: set[int]) -> list[int]:
    """This process's live descendants (process pools), minus ``exclude`` and theirs."""
    skip = set(exclude)
    for pid in exclude:
        skip.update(descendants(pid))
    return [pid for pid in descendants(os.getpid()) if pid not in skip]


def tree_cpu_seconds(exclude: set[int]) -> float:
    """CPU seconds of this process and its :func:`helpers`."""
    total = time.process_time()
    for pid in helpers(exclude):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += cpu_seconds(pid)
    return total


def tree_peak_rss_kib(exclude: set[int]) -> int:
    """Peak RSS of this process plus those of its :func:`helpers` (an upper bound of the
    peak of the sum)."""
    total = status_kib("VmHWM")
    for pid in helpers(exclude):
        with contextlib.suppress(OSError, ValueError):
            total += status_kib("VmHWM", pid)
    return total


def status_kib(key: str, pid: int | str = "self") -> int:
    """A ``kB`` line of /proc/<pid>/status: VmHWM (peak RSS), VmRSS, ..."""
    return proc_field(f"/proc/{pid}/status", key)


def proc_field(path: str, key: str) -> int:
    """The number after ``key:`` in a /proc file of such lines (status, meminfo); 0 if absent."""
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class SystemCpu:
    """CPU use of the whole machine between two samples, and the share of other processes."""

    def __init__(self) -> None:
        self.busy0, self.total0 = self._sample()

    @staticmethod
    def _sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        total = sum(values[:8])  # guest time is already counted in user
        return total - idle, total

    def cores_busy(self) -> float:
        """Cores' worth of CPU used by everything since construction (0 to os.cpu_count())."""
        busy1, total1 = self._sample()
        total = total1 - self.total0
        if total <= 0:
            return 0.0
        return (busy1 - self.busy0) / total * (os.cpu_count() or 1)


def loadavg() -> tuple[float, float, float]:
    with open("/proc/loadavg") as f:
        a, b, c = f.read().split()[:3]
    return float(a), float(b), float(c)


def top_processes(exclude: set[int], limit: int = 3) -> list[str]:
    """The busiest other processes right now (by ``ps``), for the load note."""
    try:
        out = subprocess.run(
            ["ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu", "--no-headers"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3 or int(parts[0]) in exclude or float(parts[1]) < 1.0:
            continue
        found.append(f"{parts[2]} {parts[1]}%")
        if len(found) >= limit:
            break
    return found


def machine() -> dict[str, Any]:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = proc_field("/proc/meminfo", "MemTotal")
    import numpy

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


class Burner:
    """Other load, made on purpose: a process that keeps ``share`` of one core busy (in 20 ms
    periods: busy for ``share`` of each, asleep for the rest) until :meth:`stop`."""

    _CODE = (
        "import sys, time\n"
        "share = float(sys.argv[1])\n"
        "while True:\n"
        "    start = time.perf_counter()\n"
        "    while time.perf_counter() - start < 0.020 * share:\n"
        "        pass\n"
        "    time.sleep(0.020 * (1 - share))\n"
    )

    def __init__(self, share: float) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self.share = share
        self._proc = subprocess.Popen([sys.executable, "-c", self._CODE, str(share)])
        self.pid = self._proc.pid

    def stop(self) -> None:
        self._proc.kill()
        self._proc.wait()


# -- the peer: signalwire 2.1.1 in the compat suite's venv (one builder for both) ---------------
peer_python = installed_python
ensure_peer_python = ensure_venv


# -- consumer apps --------------------------------------------------------------------------------
class App:
    """A consumer app in its own process; it talks JSON lines on stdout, takes commands on stdin."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._changed = asyncio.Event()
        self._eof = False
        self._readers = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    async def start(
        cls,
        script: str,
        *,
        url: str,
        context: str,
        mode: str,
        options: Mapping[str, Any] | None = None,
        python: str | Path = sys.executable,
        experiment: str | None = None,
    ) -> App:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(
            {
                "BENCH_URL": url,
                "BENCH_PROJECT": PROJECT,
                "BENCH_TOKEN": TOKEN,
                "BENCH_CONTEXT": context,
                "BENCH_MODE": mode,
                "BENCH_OPTIONS": json.dumps(dict(options or {})),
                "OPENBLAS_NUM_THREADS": "1",
                "PYTHONUNBUFFERED": "1",
                "LOG_LEVEL": "WARNING",  # the v2 SDK's own log level
                "BENCH_EXPERIMENT": experiment or "",  # SDK-side experiments (relaykit app)
            }
        )
        proc = await asyncio.create_subprocess_exec(
            str(python),
            str(APPS / script),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(APPS),
            env=env,
            limit=1 << 26,  # one summary line may hold a few MB of per-call results
        )
        return cls(script, proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "stdout", "line": line.decode(errors="replace").rstrip()}
            self.events.append(event if isinstance(event, dict) else {"event": "stdout"})
            self._notify()
        self._eof = True
        self._notify()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr.append(line.decode(errors="replace").rstrip("\n"))
            del self.stderr[:-200]

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_event(self, name: str, timeout: float = 30.0, after: int = 0) -> dict[str, Any]:
        """The first event called ``name`` at index ``after`` or later."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for event in self.events[after:]:
                if event.get("event") == name:
                    return event
            if self._eof:
                raise RuntimeError(f"{self.name} exited before {name!r}:\n{self.describe()}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"{self.name} sent no {name!r} in {timeout:g}s\n{self.describe()}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def command(self, line: str, reply: str, timeout: float = 60.0) -> dict[str, Any]:
        """Write ``line`` to the app's stdin and return its next ``reply`` event."""
        assert self.proc.stdin is not None
        mark = len(self.events)
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.wait_event(reply, timeout, after=mark)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def peak_rss_kib(self) -> int:
        return status_kib("VmHWM", self.proc.pid)

    def rss_kib(self) -> int:
        return status_kib("VmRSS", self.proc.pid)

    def describe(self) -> str:
        events = "\n".join(json.dumps(e)[:300] for e in self.events[-10:])
        return f"--- {self.name} events ---\n{events}\n--- stderr ---\n" + "\n".join(
            self.stderr[-40:]
        )

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 5)
        for task in self._readers:
            task.cancel()
        if self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
