"""Running a cluster: draining a node (``relaykit drain``) and restarting the bus."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import pytest
import pytest_asyncio

from relaykit import Call
from relaykit.errors import RelayTimeoutError
from relaykit.testing.remote import RemoteCaller
from tests.cluster.nodes import EVENTUALLY, PROJECT, TOKEN, eventually
from tests.cluster.test_multi_node import OFFICE, Ivr, Running

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def consumers():
    running = Running()
    yield running
    await running.stop()


async def prompt_then_hang_up(call: Call) -> Any:
    await call.answer()
    result = await call.prompt_tts("digits", "Your PIN", digits_max=3, initial_timeout=300)
    await call.hangup()
    return result


async def test_a_drained_node_takes_no_new_calls_and_leaves_after_its_last(
    nats, start_nodes, consumers
):
    """``relaykit drain n2``: n2's consumer gets no more offers, calls born on n2 are refused,
    the call n2 holds goes on to its end, and then n2 leaves the cluster by itself."""
    n1, n2 = await start_nodes("n1", "n2")
    here = consumers.start(Ivr(n1.url, prompt_then_hang_up))
    there = consumers.start(Ivr(n2.url, prompt_then_hang_up))
    for node in (n1, n2):
        await eventually(lambda n=node: n.takes(OFFICE), f"{node.node_id} takes offers")
    async with RemoteCaller(n2.url, PROJECT, TOKEN) as held:
        await held.dial("office", timeout=10)
        await held.wait_listening(timeout=10)

        drain = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "relaykit", "drain", "n2",
            "--cluster", nats.url, "--no-wait",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(drain.communicate(), EVENTUALLY)
        assert drain.returncode == 0, out.decode()
        status = await n2.astatus()
        assert status["draining"] and status["offers"] == []

        async with RemoteCaller(n2.url, PROJECT, TOKEN) as refused:
            with pytest.raises(RelayTimeoutError, match="draining"):
                await refused.dial("office", timeout=10)
        taken_before = len(here.calls)
        for _ in range(3):
            async with RemoteCaller(n1.url, PROJECT, TOKEN) as caller:
                await caller.dial("office", timeout=10)
                await caller.wait_listening(timeout=10)
                await caller.press("111")
                await caller.expect_hangup(timeout=20)
        assert len(here.calls) == taken_before + 3  # none went to the drained node's consumer
        assert n2.running  # still finishing its call

        await held.press("427")
        assert await held.expect_hangup(timeout=20) == "hangup"
    assert await n2.wait(EVENTUALLY) == 0, n2.log[-3000:]
    assert "Drained" in n2.log
    await eventually(lambda: _gone(n1, "n2"), "n1 sees n2 gone")
    assert len(here.calls) + len(there.calls) == 4


async def _beats_after(node, peer: str, beat: int) -> bool:
    status = await node.astatus()
    return status["bus"] and status["peers"].get(peer, {}).get("beat", 0) > beat


async def _gone(node, peer: str) -> bool:
    return not (await node.astatus())["peers"].get(peer, {}).get("up", True)


async def test_calls_go_on_while_the_bus_is_down_and_the_nodes_come_back(
    nats, start_nodes, consumers
):
    """nats-server stops: a call and its consumer on one node carry on (the local path needs
    no bus). It starts again: the nodes reconnect and a call across nodes works again."""
    n1, n2 = await start_nodes("n1", "n2")
    ivr = consumers.start(Ivr(n1.url, prompt_then_hang_up))
    await eventually(lambda: n1.takes(OFFICE), "n1 takes offers of office")
    async with RemoteCaller(n1.url, PROJECT, TOKEN) as caller:
        await caller.dial("office", timeout=10)
        await caller.wait_listening(timeout=10)
        beat = (await n2.astatus())["peers"]["n1"]["beat"]
        await nats.stop(signal.SIGTERM)
        await caller.press("427")
        assert (await ivr.outcome()).result == "427"
        assert await caller.expect_hangup(timeout=20) == "hangup"

    await nats.start_again()
    # n1's heartbeats reach n2 again: n1 is back, its subscriptions (sent before) too
    await eventually(lambda: _beats_after(n2, "n1", beat + 1), "n2 hears n1 again")
    assert (await n1.astatus())["bus"]
    async with RemoteCaller(n2.url, PROJECT, TOKEN) as caller:
        await caller.dial("office", timeout=10)
        await caller.wait_listening(timeout=10)
        await caller.press("999")
        result = await ivr.outcome()
    assert result.result == "999" and ivr.calls[-1].node_id == "n2"
