"""Per-project media budgets, and the worker threads that synthesise and decode fairly.

Every project gets the same :class:`MediaLimits`:

- **bytes**: samples of synthesised speech and decoded audio held by the project's running
  plays and prompts. An array shared by several items (a cached prompt) counts once. Silence
  and ringtones are made on demand and cost nothing. Charged when an item is loaded, given
  back when the playback releases it.
- **CPU**: seconds of worker CPU (speech synthesis, audio decoding), as a token bucket:
  ``cpu_burst`` seconds, refilled at ``cpu_per_second``. Work measured by the thread's own
  CPU clock.
- **concurrency**: at most ``fetches`` URL downloads and ``cpu_jobs`` synthesis/decoding jobs
  of a project at once; the rest wait in the project's own queue, so one project's slow URLs
  or long texts never hold up another project's media.

Going over a budget fails that media item with a :class:`BudgetExceeded` error that names
the limit and the ``RelayServer`` option that sets it.
"""

from __future__ import annotations

__all__ = ["BudgetExceeded", "FairWorkers", "MediaBudgets", "MediaLimits", "ProjectBudget"]

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from ..errors import MediaError

_T = TypeVar("_T")
_MB = 2**20


class BudgetExceeded(MediaError):
    """A project went over one of its media budgets."""


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """The media budget of every project (``RelayServer`` options in brackets).

    Args:
        max_bytes: loaded samples a project's plays and prompts may hold (``media_bytes``).
        cpu_burst: CPU seconds of synthesis and decoding a project may spend at once
            (``media_cpu_burst``).
        cpu_per_second: CPU seconds per second that refill it (``media_cpu_per_second``).
        fetches: URL downloads of one project at once (``media_fetches``).
        cpu_jobs: synthesis/decoding jobs of one project at once.
    """

    max_bytes: int = 64 * _MB
    cpu_burst: float = 20.0
    cpu_per_second: float = 0.5
    fetches: int = 4
    cpu_jobs: int = 1

    def __post_init__(self) -> None:
        if self.max_bytes < 0 or self.cpu_burst <= 0 or self.cpu_per_second < 0:
            raise ValueError("media budgets must be positive")
        if self.fetches < 1 or self.cpu_jobs < 1:
            raise ValueError("media concurrency limits must be at least 1")


@dataclass(eq=False, slots=True)
class ProjectBudget:
    """One project's ledger: bytes held, CPU tokens, and its download slots."""

    project: str
    limits: MediaLimits
    fetch_slots: asyncio.Semaphore
    cpu_tokens: float = 0.0
    cpu_stamp: float = 0.0
    cpu_spent: float = 0.0  # in all, for benchmarks and tests
    bytes_held: int = 0
    _held: dict[int, list[Any]] = field(default_factory=dict)  # id → [array, item count]

    # -- bytes --------------------------------------------------------------------------------
    def charge(self, samples: np.ndarray) -> Callable[[], None]:
        """Hold ``samples`` for one more item; returns the function that gives it back.

        Raises BudgetExceeded when the project would hold more than its limit.
        """
        key = id(samples)
        entry = self._held.get(key)
        if entry is None:
            size = samples.nbytes
            if self.bytes_held + size > self.limits.max_bytes:
                raise BudgetExceeded(
                    f"media budget exceeded: this project's plays and prompts hold "
                    f"{self.bytes_held / _MB:.1f} MB of audio and this item needs "
                    f"{size / _MB:.1f} MB more; the limit is {self.limits.max_bytes / _MB:g} MB "
                    "(RelayServer media_bytes)"
                )
            entry = self._held[key] = [samples, 0]
            self.bytes_held += size
        entry[1] += 1
        given_back = False

        def give_back() -> None:
            nonlocal given_back
            if given_back:
                return
            given_back = True
            entry[1] -= 1
            if entry[1] == 0 and self._held.get(key) is entry:
                del self._held[key]
                self.bytes_held -= entry[0].nbytes

        return give_back

    @property
    def bytes_left(self) -> int:
        return max(0, self.limits.max_bytes - self.bytes_held)

    # -- CPU ----------------------------------------------------------------------------------
    def check_cpu(self, now: float) -> None:
        """Raise BudgetExceeded when the project's CPU tokens are used up."""
        self._refill(now)
        if self.cpu_tokens <= 0:
            limits = self.limits
            raise BudgetExceeded(
                f"media CPU budget exceeded: this project used its {limits.cpu_burst:g} CPU "
                f"seconds of speech synthesis and audio decoding, refilled at "
                f"{limits.cpu_per_second:g} per second (RelayServer media_cpu_burst, "
                "media_cpu_per_second); try again later"
            )

    def spend_cpu(self, seconds: float, now: float) -> None:
        self._refill(now)
        self.cpu_tokens -= seconds
        self.cpu_spent += seconds

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.cpu_stamp)
        self.cpu_stamp = now
        self.cpu_tokens = min(
            self.limits.cpu_burst, self.cpu_tokens + elapsed * self.limits.cpu_per_second
        )


class MediaBudgets:
    """The ledgers of every project, created on first use."""

    def __init__(self, limits: MediaLimits | None = None) -> None:
        self.limits = limits if limits is not None else MediaLimits()
        self._projects: dict[str, ProjectBudget] = {}

    def __getitem__(self, project: str) -> ProjectBudget:
        budget = self._projects.get(project)
        if budget is None:
            budget = self._projects[project] = ProjectBudget(
                project,
                self.limits,
                asyncio.Semaphore(self.limits.fetches),
                cpu_tokens=self.limits.cpu_burst,
                cpu_stamp=time.monotonic(),
            )
        return budget

    def get(self, project: str) -> ProjectBudget | None:
        return self._projects.get(project)


@dataclass(eq=False, slots=True)
class _Job:
    fn: Callable[[], Any]
    future: asyncio.Future[Any]
    spent: Callable[[float], None] | None


class FairWorkers:
    """A few worker threads shared round-robin by projects.

    Each project queues its jobs in order; a free thread takes the next job of the next
    project (in turn) that runs fewer than ``per_project`` jobs. So a project that queues a
    hundred long syntheses delays another project's job by at most the one job it is running.
    ``run`` hands the CPU seconds the job's thread spent on it to ``spent``, whether the job
    returned or raised.
    """

    def __init__(self, threads: int = 2, per_project: int = 1) -> None:
        if threads < 1 or per_project < 1:
            raise ValueError("threads and per_project must be at least 1")
        self.threads = threads
        self.per_project = per_project
        self._executor: ThreadPoolExecutor | None = None
        self._queues: dict[str, deque[_Job]] = {}
        self._running: dict[str, int] = {}
        self._turns: deque[str] = deque()  # projects with queued jobs, in turn
        self._busy = 0

    async def run(
        self, project: str, fn: Callable[[], _T], spent: Callable[[float], None] | None = None
    ) -> _T:
        loop = asyncio.get_running_loop()
        job = _Job(fn, loop.create_future(), spent)
        queue = self._queues.setdefault(project, deque())
        queue.append(job)
        if project not in self._turns:
            self._turns.append(project)
        self._pump(loop)
        result: _T = await job.future
        return result

    def queued(self, project: str) -> int:
        return len(self._queues.get(project, ()))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._busy < self.threads:
            job, project = self._next()
            if job is None:
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.threads, thread_name_prefix="relaykit-media"
                )
            self._busy += 1
            self._running[project] = self._running.get(project, 0) + 1
            done = self._executor.submit(_timed, job.fn)
            done.add_done_callback(functools.partial(self._thread_done, loop, job, project))

    def _thread_done(
        self,
        loop: asyncio.AbstractEventLoop,
        job: _Job,
        project: str,
        done: Future[tuple[Any, BaseException | None, float]],
    ) -> None:
        """In the worker thread: hand the outcome to the loop (unless it has closed)."""
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._finished, loop, job, project, done)

    def _next(self) -> tuple[_Job | None, str]:
        for _ in range(len(self._turns)):
            project = self._turns.popleft()
            queue = self._queues.get(project)
            while queue and queue[0].future.done():  # cancelled while it waited
                queue.popleft()
            if not queue:
                self._queues.pop(project, None)
                continue
            self._turns.append(project)
            if self._running.get(project, 0) >= self.per_project:
                continue
            return queue.popleft(), project
        return None, ""

    def _finished(
        self,
        loop: asyncio.AbstractEventLoop,
        job: _Job,
        project: str,
        done: Future[tuple[Any, BaseException | None, float]],
    ) -> None:
        self._busy -= 1
        left = self._running.get(project, 1) - 1
        if left:
            self._running[project] = left
        else:
            self._running.pop(project, None)
        if done.cancelled():  # the executor was shut down
            job.future.cancel()
        else:
            result, error, cpu = done.result()
            if job.spent is not None:
                job.spent(cpu)
            if not job.future.done():  # else its waiter was cancelled meanwhile
                if error is not None:
                    job.future.set_exception(error)
                else:
                    job.future.set_result(result)
        self._pump(loop)


def _timed(fn: Callable[[], _T]) -> tuple[_T | None, BaseException | None, float]:
    """Run ``fn`` in a worker thread: (result, exception, CPU seconds of this thread)."""
    start = time.thread_time()
    try:
        return fn(), None, time.thread_time() - start
    except Exception as exc:
        return None, exc, time.thread_time() - start
