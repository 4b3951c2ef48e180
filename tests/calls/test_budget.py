"""Per-project media budgets: bytes counted once per array, CPU tokens, fair worker threads."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from relaykit.calls.budget import BudgetExceeded, FairWorkers, MediaBudgets, MediaLimits

_MB = 2**20


def test_an_array_shared_by_items_counts_once_and_comes_back_with_the_last() -> None:
    budget = MediaBudgets(MediaLimits(max_bytes=3 * _MB))["p"]
    prompt = np.zeros(_MB // 2, np.int16)  # 1 MB
    backs = [budget.charge(prompt) for _ in range(5)]
    assert budget.bytes_held == _MB
    other = budget.charge(np.zeros(_MB // 2, np.int16))
    with pytest.raises(BudgetExceeded, match="media_bytes"):
        budget.charge(np.zeros(_MB, np.int16))  # 2 MB more than the 1 MB left
    for back in backs[:4]:
        back()
    assert budget.bytes_held == 2 * _MB
    backs[4]()
    backs[4]()  # giving back twice changes nothing
    other()
    assert budget.bytes_held == 0


def test_cpu_tokens_run_out_and_refill() -> None:
    budget = MediaBudgets(MediaLimits(cpu_burst=2.0, cpu_per_second=0.5))["p"]
    start = budget.cpu_stamp
    budget.check_cpu(start)
    budget.spend_cpu(2.5, start)
    with pytest.raises(BudgetExceeded, match="media CPU budget exceeded"):
        budget.check_cpu(start + 0.5)  # refilled 0.25: still below zero
    budget.check_cpu(start + 2.0)  # refilled 1.0: 0.5 left
    assert budget.cpu_spent == 2.5


def test_projects_are_budgeted_separately() -> None:
    budgets = MediaBudgets(MediaLimits(max_bytes=_MB))
    budgets["a"].charge(np.zeros(_MB // 2, np.int16))
    budgets["b"].charge(np.zeros(_MB // 2, np.int16))
    assert budgets["a"].bytes_held == budgets["b"].bytes_held == _MB


@pytest.mark.asyncio
async def test_one_projects_queue_of_long_jobs_delays_another_project_by_one_job_at_most() -> None:
    """A queues 10 jobs (each blocked until released); B's single job, queued after, runs on
    the free thread at once, while A's first job still runs and the rest of A's wait."""
    workers = FairWorkers(threads=2, per_project=1)
    gate = threading.Event()
    ran: list[str] = []

    def slow(n: int) -> int:
        gate.wait(10)
        ran.append(f"a{n}")
        return n

    def quick() -> str:
        ran.append("b")
        return "b"

    try:
        a_jobs = [asyncio.create_task(workers.run("a", lambda n=n: slow(n))) for n in range(10)]
        await asyncio.sleep(0)
        b_job = workers.run("b", quick)
        assert await asyncio.wait_for(b_job, 5) == "b"
        assert ran == ["b"]
        assert workers.queued("a") == 9
        gate.set()
        assert await asyncio.wait_for(asyncio.gather(*a_jobs), 5) == list(range(10))
        assert ran == ["b"] + [f"a{n}" for n in range(10)]  # each project's jobs in order
    finally:
        gate.set()
        workers.close()


@pytest.mark.asyncio
async def test_a_jobs_cpu_time_is_reported_even_when_it_raises() -> None:
    workers = FairWorkers()
    spent: list[float] = []

    def busy_then_fail() -> None:
        sum(i * i for i in range(200_000))
        raise ValueError("bad audio")

    try:
        with pytest.raises(ValueError, match="bad audio"):
            await workers.run("p", busy_then_fail, spent.append)
    finally:
        workers.close()
    assert len(spent) == 1 and spent[0] > 0
