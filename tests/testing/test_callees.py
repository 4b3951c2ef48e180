"""Virtual callees: how each number takes a call, what a test gets back, and what a failing
expectation says; the timeline of a connected call."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from relaykit import Call, Client, Consumer
from relaykit.calls.log import component_spans
from relaykit.testing import Callee, ExpectationError, render_timeline
from tests.helpers import RawClient

pytestmark = [pytest.mark.asyncio, pytest.mark.relaykit(fast=True)]

AGENT, BUSY, DECLINE, SILENT, BROKEN, UNKNOWN = (
    "+15551110000",
    "+15552220000",
    "+15553330000",
    "+15554440000",
    "+15555550000",
    "+15556660000",
)


async def client_of(server) -> Client:
    client = Client(server.project, server.token, server.url)
    await client.connect()
    return client


async def test_each_behaviour_ends_the_call_its_way_on_the_loop_clock(relay_server):
    """answer after its ringing time; busy and error at once; decline after ringing; ring
    until the device timeout (noAnswer); a number nobody listed fails with error."""
    callees = relay_server.callees(
        {
            AGENT: Callee("answer", ring=2.0),
            BUSY: "busy",
            DECLINE: Callee("decline", ring=1.0),
            SILENT: "ring",
            BROKEN: "error",
        }
    )
    client = await client_of(relay_server)
    try:
        calling = client.calling
        loop = asyncio.get_running_loop()
        results = {}
        for number, timeout in (
            (AGENT, None),
            (BUSY, None),
            (DECLINE, None),
            (SILENT, 4),
            (BROKEN, None),
            (UNKNOWN, None),
        ):
            start = loop.time()
            result = await calling.dial(from_number="+1555", to_number=number, timeout=timeout)
            if not result.successful:
                await result.call.wait_for_ended()
            results[number] = (result.successful, result.call.end_reason, loop.time() - start)
    finally:
        await client.disconnect()
    assert results[AGENT][:2] == (True, None) and 2.0 <= results[AGENT][2] < 3.0
    assert results[BUSY][:2] == (False, "busy") and results[BUSY][2] < 1.0
    assert results[DECLINE][:2] == (False, "decline") and 1.0 <= results[DECLINE][2] < 2.0
    assert results[SILENT][:2] == (False, "noAnswer") and 4.0 <= results[SILENT][2] < 5.0
    assert results[BROKEN][:2] == (False, "error")
    assert results[UNKNOWN][:2] == (False, "error")
    assert [d.to_number for d in callees.dialled] == [AGENT, BUSY, DECLINE, SILENT, BROKEN, UNKNOWN]
    (answered,) = callees.answered
    assert answered.state == "answered"


async def test_an_answer_due_after_the_device_timeout_never_comes(relay_server):
    relay_server.callees({AGENT: Callee("answer", ring=5.0)})
    client = await client_of(relay_server)
    try:
        result = await client.calling.dial(from_number="+1", to_number=AGENT, timeout=2)
    finally:
        await client.disconnect()
    assert not result.successful and result.call.end_reason == "noAnswer"


async def test_expect_answered_hands_out_each_leg_once_and_explains_a_miss(relay_server):
    callees = relay_server.callees({AGENT: Callee("answer", ring=0.1), BUSY: "busy"})
    client = await client_of(relay_server)
    try:
        first = await client.calling.dial(from_number="+1", to_number=AGENT)
        second = await client.calling.dial(from_number="+1", to_number=AGENT)
        await client.calling.dial(from_number="+1", to_number=BUSY)
        legs = [await callees.expect_answered(AGENT), await callees.expect_answered()]
        assert [leg.call_id for leg in legs] == [first.call.id, second.call.id]
        with pytest.raises(ExpectationError) as info:
            await callees.expect_answered(BUSY, timeout=1)
    finally:
        await client.disconnect()
    message = str(info.value)
    assert message.startswith(f"expect_answered(): a call to {BUSY} was not answered within 1 s")
    assert f"+1 → {BUSY}: ended (busy)" in message
    assert f"+1 → {AGENT}: answered" in message


async def test_a_callee_is_checked_when_written():
    with pytest.raises(ValueError, match="unknown callee behaviour 'pickup'"):
        Callee("pickup")
    with pytest.raises(ValueError, match="ring must be"):
        Callee("answer", ring=-1)


async def test_calling_dial_on_the_wire_rings_phone_groups_and_names_the_winner(relay_server):
    """calling.dial with phone devices: the busy group fails, the next group's answering
    device wins; calling.call.dial says dialing, then answered with the winning call."""
    callees = relay_server.callees({AGENT: Callee("answer", ring=0.5), BUSY: "busy"})
    async with websockets.connect(relay_server.url) as ws:
        client = RawClient(ws)
        await client.handshake(relay_server.project, relay_server.token)
        phone = [{"type": "phone", "params": {"to_number": n}} for n in (BUSY, AGENT)]
        reply = await client.execute(
            "calling.dial", {"tag": "t1", "devices": [[phone[0]], [phone[1]]]}
        )
        assert reply["result"]["result"]["code"] == "200"
        dialing = await client.event("calling.call.dial")
        answered = await client.event("calling.call.dial")
        bad = await client.execute(
            "calling.begin", {"tag": "t2", "device": {"type": "phone", "params": {}}}
        )
    assert (dialing["dial_state"], answered["dial_state"]) == ("dialing", "answered")
    agent = await callees.expect_answered(AGENT)
    assert answered["call"] == {
        "call_id": agent.call_id,
        "node_id": relay_server.nodeid,
        "tag": "t1",
        "device": {"type": "phone", "params": {"from_number": "", "to_number": AGENT}},
        "dial_winner": True,
    }
    inner = bad["result"]["result"]
    assert inner["code"] == "400" and inner["message"].startswith("device.params.to_number")


class Transfer(Consumer):
    contexts = ("office",)

    async def on_incoming_call(self, call: Call) -> None:
        await call.answer()
        await call.connect(
            [{"to_number": BUSY}, {"to_number": AGENT}], [{"type": "ringtone", "name": "us"}]
        )


async def test_a_connected_call_s_timeline_shows_the_ringing_and_the_bridge(
    relay_server, relay_ivr, tmp_path
):
    callees = relay_server.callees({AGENT: Callee("answer", ring=2.0), BUSY: "busy"})
    await relay_ivr(Transfer)
    caller = await relay_server.dial_in(context="office")
    agent = await callees.expect_answered(AGENT)
    await caller.say("Hello there.")
    await agent.hangup()
    await caller.hangup()
    spans = [(s.kind, s.label) for s in component_spans(caller.events)]
    assert spans == [
        ("connect", f"ringing {BUSY} then {AGENT}"),
        ("bridge", f"bridged to {AGENT}: disconnected (hangup)"),
    ]
    ringing, bridge = component_spans(caller.events)
    assert ringing.end == bridge.start and 2.0 <= bridge.start < 2.5
    assert [(s.kind, s.label) for s in component_spans(agent.events)] == [
        ("bridge", "bridged to +15551230000: disconnected (hangup)")
    ]
    png = render_timeline(caller.event_log(), caller.recording(), tmp_path / "call.png")
    assert png.stat().st_size > 20_000
