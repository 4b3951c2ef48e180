"""Several relaykit nodes on one NATS bus, each a real process on loopback (issue 16, §5).

Consumers (IVRs on our SDK) connect to one node while the calls are born on another, so every
command and event crosses the bus. Nodes are killed with SIGKILL, as in a crash.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from relaykit import Call, Consumer
from relaykit.errors import RelayError, RelayTimeoutError
from relaykit.testing.remote import RemoteCaller
from tests.cluster.nodes import (
    EVENTUALLY,
    OTHER_PROJECT,
    OTHER_TOKEN,
    PROJECT,
    TOKEN,
    Node,
    eventually,
)
from tests.helpers import RawClient

pytestmark = pytest.mark.asyncio

PIN = "Please enter your PIN"
OFFICE = f"{PROJECT}/office"


class Ivr(Consumer):
    """An IVR whose calls run ``handler``; outcomes (or exceptions) go to a queue."""

    def __init__(self, url: str, handler: Any, *, project: str = PROJECT, token: str = TOKEN):
        super().__init__(
            project=project, token=token, url=url, contexts=["office"], max_backoff=1.0
        )
        self.handler = handler
        self.outcomes: asyncio.Queue[Any] = asyncio.Queue()
        self.calls: list[Call] = []

    async def on_incoming_call(self, call: Call) -> None:
        self.calls.append(call)
        try:
            self.outcomes.put_nowait(await self.handler(call))
        except Exception as exc:  # surfaced to the test through the queue
            self.outcomes.put_nowait(exc)

    async def outcome(self) -> Any:
        result = await asyncio.wait_for(self.outcomes.get(), EVENTUALLY)
        if isinstance(result, BaseException):
            raise result
        return result


class Running:
    """Consumers started by a test, stopped at its end."""

    def __init__(self) -> None:
        self.tasks: list[tuple[Ivr, asyncio.Task[None]]] = []

    def start(self, ivr: Ivr) -> Ivr:
        self.tasks.append((ivr, asyncio.create_task(ivr.serve())))
        return ivr

    async def stop(self) -> None:
        for ivr, task in self.tasks:
            await ivr.stop()
            await asyncio.wait_for(task, EVENTUALLY)


@pytest_asyncio.fixture
async def consumers():
    running = Running()
    yield running
    await running.stop()


async def pin_prompt(call: Call) -> Any:
    await call.answer()
    return await call.prompt_tts("digits", PIN, digits_max=3)


def events_seen(call: Call) -> dict[str, list[Any]]:
    """Every RELAY event the SDK hands this call, by kind (registered before anything runs)."""
    seen: dict[str, list[Any]] = {"state": [], "play": [], "collect": []}
    call.on("stateChange", lambda p: seen["state"].append(p["call_state"]))
    call.on("play.stateChange", lambda p: seen["play"].append(p["state"]))
    call.on("prompt", lambda p: seen["collect"].append(p))
    return seen


# -- 1. a prompt across nodes -----------------------------------------------------------------
async def test_a_prompt_runs_on_the_calls_node_for_a_consumer_on_another(start_nodes, consumers):
    """Consumer on n1, call born on n2: offer, answer, PIN prompt, digits, result. The call's
    events carry node_id n2, and every command the IVR sent crossed the bus to n2."""
    n1, n2 = await start_nodes("n1", "n2")
    seen: list[dict[str, list[Any]]] = []

    async def ivr_handler(call: Call) -> Any:
        seen.append(events_seen(call))
        return await pin_prompt(call)

    ivr = consumers.start(Ivr(n1.url, ivr_handler))
    await eventually(lambda: n1.takes(OFFICE), "n1 takes offers of office")

    async with RemoteCaller(n2.url, PROJECT, TOKEN) as caller:
        call_id = await caller.dial("office", timeout=10)
        await caller.wait_answered(timeout=10)
        await caller.wait_listening(timeout=10)
        await caller.press("427")
        result = await ivr.outcome()

    assert result.successful
    assert (result.prompt_type, result.result) == ("digit", "427")
    call = ivr.calls[0]
    assert (call.id, call.node_id) == (call_id, "n2")
    assert [c["node_id"] for c in seen[0]["collect"]] == ["n2"]
    status_n1, status_n2 = await n1.astatus(), await n2.astatus()
    assert (status_n1["calls"], status_n1["sessions"]) == (0, 1)  # the session is on n1 ...
    assert status_n2["sessions"] == 0  # ... and n2, where the call ran, never had one


# -- 2. each offer to exactly one consumer ------------------------------------------------------
async def test_each_offer_reaches_exactly_one_consumer_across_nodes(start_nodes, consumers):
    """Consumers of one context on n1 and n2; 50 calls from all three nodes are each offered
    exactly once, and both consumers get some."""
    n1, n2, n3 = await start_nodes("n1", "n2", "n3")

    async def hang_up(call: Call) -> str:
        await call.hangup()
        return str(call.id)

    first = consumers.start(Ivr(n1.url, hang_up))
    second = consumers.start(Ivr(n2.url, hang_up))
    for node in (n1, n2):
        await eventually(lambda n=node: n.takes(OFFICE), f"{node.node_id} takes offers")

    calls = 50
    births = [n1, n2, n3]
    gate = asyncio.Semaphore(8)

    async def one_call(i: int) -> str:
        async with gate, RemoteCaller(births[i % 3].url, PROJECT, TOKEN) as caller:
            call_id = await caller.dial("office", timeout=20)
            await caller.expect_hangup(timeout=20)
            return call_id

    placed = await asyncio.gather(*(one_call(i) for i in range(calls)))
    offered = [c.id for c in first.calls] + [c.id for c in second.calls]
    assert sorted(offered) == sorted(placed)  # every call once, none twice
    assert len(set(offered)) == calls
    assert first.calls and second.calls


async def test_a_call_with_no_consumer_anywhere_is_refused_at_once(start_nodes):
    """No consumer of the context on any node: the call is refused without waiting out the
    offer timeout (NATS answers "no responders")."""
    (n1,) = await start_nodes("n1")
    async with RemoteCaller(n1.url, PROJECT, TOKEN) as caller:
        started = time.monotonic()
        with pytest.raises(RelayTimeoutError, match="no consumer"):
            await caller.dial("nobody-here", timeout=60)
        assert time.monotonic() - started < 30  # far from the 60 s it was allowed to wait


# -- 3. the call's node dies ------------------------------------------------------------------
async def test_when_the_calls_node_dies_the_consumer_sees_the_call_end(start_nodes, consumers):
    """SIGKILL n2 mid-prompt: the consumer on n1 gets ``ended`` with end_reason error, the
    blocked prompt returns unsuccessfully, and later commands fail at once."""
    n1, n2 = await start_nodes("n1", "n2")
    seen: list[dict[str, list[Any]]] = []

    async def ivr_handler(call: Call) -> Any:
        seen.append(events_seen(call))
        await call.answer()
        result = await call.prompt_tts("digits", PIN, digits_max=3, initial_timeout=300)
        return call, result

    ivr = consumers.start(Ivr(n1.url, ivr_handler))
    await eventually(lambda: n1.takes(OFFICE), "n1 takes offers of office")
    caller = RemoteCaller(n2.url, PROJECT, TOKEN)
    await caller.connect()
    call_id = await caller.dial("office", timeout=10)
    await caller.wait_listening(timeout=10)

    await n2.kill()
    with pytest.raises(RelayError):
        await caller.press("1")  # the caller's own line to n2 is gone with it
    call, result = await ivr.outcome()

    assert not result.successful
    assert call.state == "ended" and call.end_reason == "error"
    assert seen[0]["state"] == ["answered", "ending", "ended"]
    assert not (await call.play_tts("anyone there?")).successful
    # on the wire too: a command for a call of a gone node is answered "not found" at once
    async with connect(n1.url) as ws:
        raw = RawClient(ws)
        await raw.handshake(PROJECT, TOKEN)
        reply = await raw.execute(
            "calling.play",
            {
                "node_id": "n2",
                "call_id": call_id,
                "control_id": str(uuid.uuid4()),
                "play": [{"type": "silence", "params": {"duration": 1}}],
            },
        )
    assert reply["result"]["result"]["code"] == "404"
    await eventually(lambda: _down(n1, "n2"), "n1 sees n2 down")


async def _down(node: Node, peer: str) -> bool:
    return not (await node.astatus())["peers"].get(peer, {}).get("up", True)


# -- 4. the session's node dies ---------------------------------------------------------------
async def test_a_consumer_whose_node_dies_resumes_on_another_with_the_missed_events(
    start_nodes, consumers, balancer, nats
):
    """The consumer reaches n1 through a balancer; its call runs on n2. SIGKILL n1, the
    balancer sends it to n3, it resumes its session there and gets the prompt's result (made
    while it was away) exactly once, and no event twice."""
    import nats as nats_client

    n1, n2, n3 = await start_nodes("n1", "n2", "n3")
    front = await balancer(n1.url)
    seen: list[dict[str, list[Any]]] = []

    async def ivr_handler(call: Call) -> Any:
        seen.append(events_seen(call))
        await call.answer()
        result = await call.prompt_tts("digits", PIN, digits_max=3, initial_timeout=300)
        await call.hangup()
        return result

    ivr = consumers.start(Ivr(front.url, ivr_handler))
    await eventually(lambda: n1.takes(OFFICE), "n1 takes offers of office")
    async with RemoteCaller(n2.url, PROJECT, TOKEN) as caller:
        call_id = await caller.dial("office", timeout=10)
        await caller.wait_listening(timeout=10)
        assert ivr.client is not None
        session_id = ivr.client.session_id
        assert session_id

        # n1 records what it gave the session; wait until the record covers what the SDK has
        bus = await nats_client.connect(nats.url)
        kv = await bus.jetstream().key_value("rk_sessions")

        async def recorded() -> bool:
            record = json.loads((await kv.get(session_id)).value)
            have = 1 + sum(len(v) for v in seen[0].values())  # + calling.call.receive
            return record["delivered"].get(call_id) == have

        await eventually(recorded, "n1 recorded the events it delivered")
        before = {k: list(v) for k, v in seen[0].items()}
        await bus.close()

        await n1.kill()
        front.point(n3.url)
        await caller.press("427")
        result = await ivr.outcome()
        assert await caller.expect_hangup(timeout=20) == "hangup"  # a command via n3 to n2

    assert result.successful and result.result == "427"
    assert ivr.client.session_id == session_id  # the same session, restored on n3
    after = seen[0]
    assert after["state"] == [*before["state"], "ending", "ended"]
    assert [c.get("result", {}).get("type") for c in after["collect"]] == ["digit"]
    assert after["play"][: len(before["play"])] == before["play"]
    status = await n3.astatus()
    assert status["sessions"] == 1


# -- 5. projects stay apart -------------------------------------------------------------------
async def test_another_projects_command_for_a_call_on_another_node_is_refused(
    start_nodes, consumers
):
    """A project-B client on n3 aims a command at a project-A call on n2: "not found", and
    the call goes on for its own consumer."""
    n1, n2, n3 = await start_nodes("n1", "n2", "n3")

    async def ivr_handler(call: Call) -> Any:
        await call.answer()
        return await call.prompt_tts("digits", PIN, digits_max=3, initial_timeout=300)

    ivr = consumers.start(Ivr(n1.url, ivr_handler))
    await eventually(lambda: n1.takes(OFFICE), "n1 takes offers of office")
    async with RemoteCaller(n2.url, PROJECT, TOKEN) as caller:
        call_id = await caller.dial("office", timeout=10)
        await caller.wait_listening(timeout=10)
        async with connect(n3.url) as ws:
            intruder = RawClient(ws)
            await intruder.handshake(OTHER_PROJECT, OTHER_TOKEN)
            for method, params in (
                ("calling.end", {"reason": "hangup"}),
                ("calling.play_and_collect.stop", {"control_id": str(uuid.uuid4())}),
            ):
                reply = await intruder.execute(
                    method, {"node_id": "n2", "call_id": call_id, **params}
                )
                assert reply["result"]["result"]["code"] == "404", reply
            assert intruder.events == []  # and it heard nothing of the call
        await caller.press("427")
        result = await ivr.outcome()
    assert result.successful and result.result == "427"


async def test_a_consumer_that_drops_from_a_live_node_resumes_on_another(
    start_nodes, consumers, balancer
):
    """The consumer's connection to n1 drops (n1 stays up) and it comes back through n3. n1
    hands the session over with what it had queued, its own call now reports to n3 over the
    bus, and both calls' prompts complete exactly once."""
    n1, n2, n3 = await start_nodes("n1", "n2", "n3")
    front = await balancer(n1.url)
    seen: dict[str, dict[str, list[Any]]] = {}

    async def ivr_handler(call: Call) -> Any:
        seen[str(call.id)] = events_seen(call)
        await call.answer()
        result = await call.prompt_tts("digits", PIN, digits_max=3, initial_timeout=300)
        await call.hangup()
        return call.node_id, result.result

    ivr = consumers.start(Ivr(front.url, ivr_handler))
    await eventually(lambda: n1.takes(OFFICE), "n1 takes offers of office")
    async with (
        RemoteCaller(n1.url, PROJECT, TOKEN) as on_n1,
        RemoteCaller(n2.url, PROJECT, TOKEN) as on_n2,
    ):
        for caller in (on_n1, on_n2):
            await caller.dial("office", timeout=10)
            await caller.wait_listening(timeout=10)
        assert ivr.client is not None
        session_id = ivr.client.session_id

        front.point(n3.url)
        front.cut()
        await on_n1.press("111")  # while the consumer is away, or just back: either way once
        await on_n2.press("222")
        results = sorted([await ivr.outcome(), await ivr.outcome()])
        for caller in (on_n1, on_n2):
            assert await caller.expect_hangup(timeout=20) == "hangup"

    assert results == [("n1", "111"), ("n2", "222")]
    assert ivr.client.session_id == session_id
    for events in seen.values():
        assert events["state"] == ["answered", "ending", "ended"]
        assert len(events["collect"]) == 1
    assert (await n3.astatus())["sessions"] == 1
    assert (await n1.astatus())["sessions"] == 0


async def test_calls_of_a_consumer_that_never_comes_back_end_after_the_grace(
    start_nodes, consumers
):
    """The consumer's node dies and the consumer does not return: the call on n2 waits the
    resume grace for it, then hangs up (the caller hears it)."""
    n1 = (await start_nodes("n1"))[0]
    n2 = (await start_nodes("n2", resume_grace=1.0))[0]
    ivr = consumers.start(Ivr(n1.url, pin_prompt))
    await eventually(lambda: n1.takes(OFFICE), "n1 takes offers of office")
    async with RemoteCaller(n2.url, PROJECT, TOKEN) as caller:
        await caller.dial("office", timeout=10)
        await caller.wait_listening(timeout=10)
        await n1.kill()
        assert await caller.expect_hangup(timeout=EVENTUALLY) == "hangup"
    assert ivr.calls[0].node_id == "n2"


async def test_a_node_taken_for_dead_that_comes_back_ends_the_calls_declared_ended(
    start_nodes, consumers
):
    """n2 freezes (SIGSTOP) past the 3 s its peers wait: n1 tells the consumer its call
    ended. n2 resumes (SIGCONT): it is heard again and ends that call too, so no side keeps a
    call the other has given up (the caller hears the hang-up)."""
    n1, n2 = await start_nodes("n1", "n2")

    async def ivr_handler(call: Call) -> Any:
        await call.answer()
        result = await call.prompt_tts("digits", PIN, digits_max=3, initial_timeout=300)
        return call, result

    ivr = consumers.start(Ivr(n1.url, ivr_handler))
    await eventually(lambda: n1.takes(OFFICE), "n1 takes offers of office")
    async with RemoteCaller(n2.url, PROJECT, TOKEN) as caller:
        await caller.dial("office", timeout=10)
        await caller.wait_listening(timeout=10)
        n2.send_signal(signal.SIGSTOP)
        try:
            call, result = await ivr.outcome()
            assert call.end_reason == "error" and not result.successful
        finally:
            n2.send_signal(signal.SIGCONT)
        assert await caller.expect_hangup(timeout=EVENTUALLY) == "error"
    await eventually(lambda: n1.sees("n2"), "n1 hears n2 again")
