"""Soak: a minute of calls with random faults; nothing leaks, every prompt ends exactly once.

Length: ``RELAYKIT_SOAK_SECONDS`` (default 60).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections import Counter

import pytest

from relaykit import Call, CallEndedError, Consumer, RelayServer
from relaykit.protocol.calling import is_terminal_collect
from tests.helpers import PROJECT, TOKEN

pytestmark = pytest.mark.asyncio

SOAK_SECONDS = float(os.environ.get("RELAYKIT_SOAK_SECONDS", "60"))
CONCURRENT_CALLS = 12


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class FaultyIvr(Consumer):
    """Prompts again and again; sometimes stops a prompt early."""

    contexts = ("office",)

    def __init__(self, rng: random.Random, **options) -> None:
        super().__init__(**options)
        self.rng = rng
        self.actions = []
        self.terminal_events: Counter[str] = Counter()

    async def on_incoming_call(self, call: Call) -> None:
        def count(params: dict) -> None:
            if is_terminal_collect(params):
                self.terminal_events[params["control_id"]] += 1

        call.on("prompt", count)
        # a dropped socket can take the answer request with it ("connection closed"): as an
        # IVR must, answer again once the session is back, while the call still rings
        for _ in range(3):
            if (await call.answer()).successful or call.answered:  # (only the reply was lost)
                break
            if call.ended:
                return
        else:
            return
        while call.state == "answered":
            action = await call.prompt_tts_async(
                "digits", "Enter two digits", digits_max=2, initial_timeout=0.8
            )
            self.actions.append(action)
            if self.rng.random() < 0.2:
                await asyncio.sleep(self.rng.uniform(0, 0.6))
                await action.stop()
            await action.wait(30)


async def _caller(server: RelayServer, rng: random.Random) -> None:
    caller = await server.dial_in(context="office", timeout=30)
    with contextlib.suppress(CallEndedError):
        await caller.wait_answered(30)
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.6:
                await caller.press(rng.choice(["12", "9", "345"]))
            else:
                await caller.silence(rng.uniform(0.1, 1.2))
    await caller.hangup()


async def test_a_minute_of_calls_with_random_faults_leaks_nothing():
    """Hang-ups, stops and dropped sockets: one terminal result per prompt, no leaks."""
    rng = random.Random(20261126)
    fds_before = _open_fds()
    tasks_before = len(asyncio.all_tasks())
    async with RelayServer(
        credentials={PROJECT: TOKEN}, record_calls=False, resume_grace=5.0
    ) as server:
        ivr = FaultyIvr(rng, project=PROJECT, token=TOKEN, url=server.url)
        ivr_task = asyncio.create_task(ivr.serve())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SOAK_SECONDS
        running: set[asyncio.Task] = set()
        drops = 0
        calls = 0
        while loop.time() < deadline:
            while len(running) < CONCURRENT_CALLS:
                task = asyncio.create_task(_caller(server, rng))
                running.add(task)
                task.add_done_callback(running.discard)
                calls += 1
            await asyncio.sleep(0.25)
            if rng.random() < 0.02 and ivr.client is not None and ivr.client._ws is not None:
                drops += 1
                await ivr.client._ws.close()  # the network blips; the session must resume
        await asyncio.wait_for(asyncio.gather(*running), 60)
        for action in ivr.actions:
            await action.wait(30)
        await ivr.stop()
        await asyncio.wait_for(ivr_task, 30)

        assert calls > 50 and drops >= 0
        assert ivr.actions, "prompts ran"
        assert all(a.completed for a in ivr.actions)
        counts = [ivr.terminal_events[a.control_id] for a in ivr.actions]
        # Each prompt got exactly one terminal event, unless its call ended first (then none
        # was needed: the ended state completes it).
        assert max(counts) == 1, Counter(counts)
        assert not server.calls, "every call ended"
        assert len(server.engine) == 0, "no media left running"
    await asyncio.sleep(0.2)
    assert len(asyncio.all_tasks()) <= tasks_before + 1, asyncio.all_tasks()
    assert _open_fds() <= fds_before + 2
