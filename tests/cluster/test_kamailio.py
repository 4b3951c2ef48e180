"""SIP phones reach the cluster through Kamailio (the shipped deploy/kamailio config): SIPp
calls are spread over the nodes; a node's death ends its callers' dialogs with a BYE and new
calls go to the nodes still up."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from relaykit import Call
from tests.cluster.nodes import LOOPBACK, PROJECT, Kamailio, eventually, free_udp_port
from tests.cluster.test_multi_node import OFFICE, Ivr, Running
from tests.sip.peers import run_sipp

pytestmark = pytest.mark.asyncio

HANGS_UP = Path(__file__).resolve().parents[2] / "deploy" / "sipp" / "uac_through_proxy.xml"


@pytest_asyncio.fixture
async def consumers():
    running = Running()
    yield running
    await running.stop()


@pytest_asyncio.fixture
async def sip_cluster(start_nodes, tmp_path):
    """n1 holds the IVR's session (no SIP); n2 and n3 answer SIP behind Kamailio."""
    rpc_port = free_udp_port()
    (n1,) = await start_nodes("n1")
    n2, n3 = await start_nodes(
        "n2", "n3", sip=True, routes=(f"*={PROJECT}/office",), kamailio_rpc=f"{LOOPBACK}:{rpc_port}"
    )
    kamailio = Kamailio(tmp_path, [n2.sip_port, n3.sip_port], rpc_port)
    await kamailio.start()
    try:
        await eventually(
            lambda: _active(kamailio, {n2.sip_port, n3.sip_port}), "Kamailio probes both nodes"
        )
        yield n1, n2, n3, kamailio
    finally:
        await kamailio.stop(signal.SIGTERM)


async def _active(kamailio: Kamailio, ports: set[int]) -> bool:
    return await kamailio.active_nodes() == ports


async def test_sip_calls_through_kamailio_are_spread_over_the_nodes(
    sip_cluster, consumers, tmp_path
):
    """Six SIPp calls to Kamailio: each is answered by the IVR (whose session is on n1) and
    hung up from there, the BYE reaching SIPp back through Kamailio; both SIP nodes get some."""
    n1, _n2, _n3, kamailio = sip_cluster

    async def answer_and_hang_up(call: Call) -> str:
        await call.answer()
        await call.play_silence(0.2)
        await call.hangup()
        return str(call.node_id)

    ivr = consumers.start(Ivr(n1.url, answer_and_hang_up))
    await eventually(lambda: n1.takes(OFFICE), "n1 takes offers of office")
    run = await run_sipp(
        HANGS_UP, kamailio.sip_port, tmp_path / "sipp", calls=6, rate=3, limit=3, timeout=60
    )
    assert run.returncode == 0, run.explain()
    owners = [await ivr.outcome() for _ in range(6)]
    assert sorted(set(owners)) == ["n2", "n3"]


async def test_a_dead_nodes_callers_hear_a_bye_and_new_calls_go_elsewhere(
    sip_cluster, consumers, tmp_path
):
    """The node that answered a SIPp call is SIGKILLed mid-prompt: Kamailio, asked by a node
    still up, sends SIPp a BYE; the IVR sees the call end; the next calls all succeed on the
    other node."""
    n1, n2, n3, kamailio = sip_cluster
    answered: asyncio.Queue[Call] = asyncio.Queue()

    async def handler(call: Call) -> Any:
        await call.answer()
        if answered.empty() and not ivr.calls[1:]:
            answered.put_nowait(call)
            return await call.prompt_tts("digits", "Your PIN", digits_max=4, initial_timeout=300)
        await call.play_silence(0.2)
        await call.hangup()
        return call.node_id

    ivr = consumers.start(Ivr(n1.url, handler))
    await eventually(lambda: n1.takes(OFFICE), "n1 takes offers of office")
    first = asyncio.create_task(
        run_sipp(HANGS_UP, kamailio.sip_port, tmp_path / "sipp-1", calls=1, timeout=60)
    )
    call = await asyncio.wait_for(answered.get(), 30)
    owner, survivor = (n2, n3) if call.node_id == "n2" else (n3, n2)
    await eventually(lambda: _in_dialog(kamailio), "Kamailio holds the dialog")

    await owner.kill()
    run = await first
    assert run.returncode == 0, run.explain()  # SIPp got its BYE (through Kamailio)
    prompt = await ivr.outcome()
    assert not prompt.successful and call.end_reason == "error"

    await eventually(
        lambda: _active(kamailio, {survivor.sip_port}), "Kamailio stops sending to the dead node"
    )
    run = await run_sipp(
        HANGS_UP, kamailio.sip_port, tmp_path / "sipp-2", calls=5, rate=5, limit=2, timeout=60
    )
    assert run.returncode == 0, run.explain()
    assert [await ivr.outcome() for _ in range(5)] == [survivor.node_id] * 5


async def _in_dialog(kamailio: Kamailio) -> bool:
    stats = await kamailio.rpc("dlg.stats_active")
    return bool(stats) and int(stats.get("ongoing", 0)) >= 1
