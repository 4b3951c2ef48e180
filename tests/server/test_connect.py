"""calling.connect end to end: relaykit's SDK bridges a virtual caller to virtual callees.

The IVR connects an inbound call to phone numbers the test kit answers (or not); the two far
ends then talk through the server's media engine, on real audio: keys pressed on one side are
decoded from what the other side hears, and a spoken sentence is recognised there.
"""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect

from relaykit import Call, RelayServer
from relaykit.testing import Callee
from relaykit.testing.expect import audio_says
from tests.helpers import WAIT, RawClient, outcome

pytestmark = pytest.mark.asyncio

AGENT = "+15551110000"
BUSY = "+15552220000"
NOBODY = "+15553330000"
SECOND = "+15554440000"
RINGBACK = [{"type": "ringtone", "name": "us"}]


async def until(predicate, what: str) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while not predicate():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def nothing_left(server: RelayServer) -> bool:
    """No call, no media and no running task are left on the server."""
    return not server.calls and len(server.engine) == 0


async def test_the_caller_talks_to_the_first_number_that_answers(server, run_ivr):
    """Serial devices: the busy number fails, the agent answers after ringing (the caller
    hears the ringback meanwhile); then keys and speech cross the bridge both ways."""
    callees = server.callees({AGENT: Callee("answer", ring=1.5), BUSY: "busy"})

    async def ivr(call: Call):
        await call.answer()
        result = await call.connect([{"to_number": BUSY}, {"to_number": AGENT}], RINGBACK)
        return result

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office", from_number="+15550001111")
    caller.listen_for_digits()
    result = await outcome(outcomes)
    assert result.successful and result.reason is None
    peer = result.call
    assert peer is not None and peer.to_number == AGENT and peer.from_number == "+15550001111"
    assert peer.answered and peer.direction == "outbound"
    agent = await callees.expect_answered(AGENT)
    assert agent.call_id == peer.id
    assert [(d.to_number, d.end_reason) for d in callees.dialled] == [(BUSY, "busy"), (AGENT, None)]
    ringback = [h for h in caller.heard if h.kind == "ringtone"]
    assert ringback and ringback[0].label == "us"
    agent.listen_for_digits()
    await caller.press("42")
    await agent.press("7#")
    await caller.say("I have a question about my order.")
    await caller.silence(0.3)
    assert agent.heard_digits() == "42"
    assert caller.heard_digits() == "7#"
    heard_by_agent = agent.recording()[:, 1]
    sentence = "I have a question about my order"
    assert audio_says(server.recognizer, heard_by_agent, sentence) is not None
    texts = [e.text for e in caller.transcript if e.actor == "ivr"]
    assert f"connects the call to {BUSY} then {AGENT}" in texts
    assert f"connected to {AGENT}" in texts


async def test_a_short_ringback_repeats_until_a_leg_answers(server, run_ivr):
    """A half-second ringtone plays again and again while the agent's phone rings, and stops
    when the agent answers."""
    callees = server.callees({AGENT: Callee("answer", ring=2.0)})

    async def ivr(call: Call):
        await call.answer()
        return await call.connect(
            [{"to_number": AGENT}], [{"type": "ringtone", "name": "us", "duration": 0.5}]
        )

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    result = await outcome(outcomes)
    await callees.expect_answered()
    assert result.successful
    rings = [h for h in caller.heard if h.kind == "ringtone"]
    connected = next(e.at for e in caller.transcript if e.text.startswith("connected to"))
    assert len(rings) >= 3
    assert all(h.end is not None and h.end <= connected for h in rings)


async def test_parallel_devices_ring_together_and_the_others_are_cancelled(server, run_ivr):
    """connect_async with one group: the action runs, then completes with the first to answer;
    one still ringing is cancelled, a decline ends."""
    callees = server.callees(
        {AGENT: Callee("answer", ring=1.0), NOBODY: "ring", SECOND: Callee("decline", 0.2)}
    )

    async def ivr(call: Call):
        await call.answer()
        devices = [[{"to_number": NOBODY}, {"to_number": SECOND}, {"to_number": AGENT}]]
        action = await call.connect_async(devices)
        started = (action.completed, action.result.successful)
        return started, await action.wait(), action.state

    outcomes = await run_ivr(ivr)
    await server.dial_in(context="office")
    started, result, state = await outcome(outcomes)
    assert started == (False, False) and state == "connected"
    assert result.successful and result.call.to_number == AGENT
    outcomes_by_number = {d.to_number: (d.state, d.end_reason) for d in callees.dialled}
    assert outcomes_by_number == {
        NOBODY: ("ended", "cancel"),
        SECOND: ("ended", "decline"),
        AGENT: ("answered", None),
    }


async def test_nobody_answering_fails_the_connect_and_the_caller_stays(server, run_ivr):
    """Busy, then no answer within the device timeout: failed with the last reason; the
    ringback stops and the IVR goes on with the caller."""
    server.callees({BUSY: "busy", NOBODY: "ring"})

    async def ivr(call: Call):
        await call.answer()
        result = await call.connect(
            [{"to_number": BUSY}, {"to_number": NOBODY, "timeout": 2}], RINGBACK
        )
        await call.play_tts("Nobody is available. Goodbye.")
        await call.hangup()
        return result

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.expect_prompt("nobody is available", timeout=10)
    result = await outcome(outcomes)
    assert not result.successful and result.call is None
    assert (result.reason, result.event.name) == ("noAnswer", "failed")
    ringback = [h for h in caller.heard if h.kind == "ringtone"]
    assert ringback and all(h.end is not None for h in ringback)
    assert ringback[-1].end <= caller.heard[-1].start
    await caller.expect_hangup()
    await until(lambda: nothing_left(server), "every call to end")


async def test_the_agent_hanging_up_leaves_the_caller_with_the_ivr(server, run_ivr):
    """The peer hangs up: connect.disconnected on the A leg, which stays up."""
    callees = server.callees({AGENT: Callee("answer", ring=0.2)})

    async def ivr(call: Call):
        await call.answer()
        left = asyncio.get_running_loop().create_future()
        call.on("connect.disconnected", lambda params: left.set_result(params))
        result = await call.connect([{"to_number": AGENT}])
        params = await left
        await call.play_tts("The agent has left the call.")
        return result, params

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    agent = await callees.expect_answered()
    await agent.hangup()
    await caller.expect_prompt("the agent has left")
    result, params = await outcome(outcomes)
    assert params["peer"]["call_id"] == agent.call_id
    assert result.call.id == agent.call_id and result.call.ended
    assert caller.state == "answered" and agent.end_reason == "hangup"
    await caller.hangup()
    await until(lambda: nothing_left(server), "every call to end")


async def test_the_caller_hanging_up_ends_the_agents_leg_too(server, run_ivr):
    callees = server.callees({AGENT: Callee("answer", ring=0.2)})

    async def ivr(call: Call):
        await call.answer()
        result = await call.connect([{"to_number": AGENT}])
        await call.wait_for_ended()
        return result

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    agent = await callees.expect_answered()
    await caller.hangup()
    result = await outcome(outcomes)
    assert result.successful
    assert await agent.expect_hangup() == "hangup"
    await until(lambda: nothing_left(server), "every call to end")


async def test_a_hang_up_while_the_devices_ring_cancels_them_and_leaks_nothing(server, run_ivr):
    callees = server.callees({NOBODY: "ring", SECOND: "ring"})

    async def ivr(call: Call):
        await call.answer()
        return await call.connect([[{"to_number": NOBODY}, {"to_number": SECOND}]], RINGBACK)

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await until(
        lambda: [d.state for d in callees.dialled] == ["ringing", "ringing"], "both to ring"
    )
    await caller.hangup()
    result = await outcome(outcomes)
    assert not result.successful
    await until(lambda: nothing_left(server), "every call to end")
    assert [(d.state, d.end_reason) for d in callees.dialled] == [("ended", "cancel")] * 2


async def test_disconnect_unbridges_and_each_leg_goes_its_own_way(server, run_ivr):
    """After disconnect() both calls stay up, hear each other no more, and the IVR plays to
    each of them separately (the peer is a Call of the SDK)."""
    callees = server.callees({AGENT: Callee("answer", ring=0.2)})
    go = asyncio.Event()

    async def ivr(call: Call):
        await call.answer()
        result = await call.connect([{"to_number": AGENT}])
        await go.wait()
        unbridged = await call.disconnect()
        agent_leg = result.call
        await asyncio.gather(
            call.play_tts("Thank you for waiting."),
            agent_leg.play_tts("The caller is on hold."),
        )
        await agent_leg.hangup()
        await call.hangup()
        return unbridged, agent_leg

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    agent = await callees.expect_answered()
    agent.listen_for_digits()
    await caller.press("1")
    go.set()
    await caller.expect_prompt("thank you for waiting")
    await agent.expect_prompt("the caller is on hold")
    await caller.press("2")
    unbridged, agent_leg = await outcome(outcomes)
    assert unbridged.successful and unbridged.event.name == "disconnected"
    assert agent.heard_digits() == "1"  # the 2 came after the disconnect
    assert agent_leg.ended and agent.end_reason == "hangup"
    await until(lambda: nothing_left(server), "every call to end")


async def test_bad_connects_complete_unsuccessfully_with_the_reason(server, run_ivr):
    """No device, a device type nobody calls, and a second connect while one runs: each gets
    an error result naming the problem; the call is fine afterwards."""
    results: dict[str, object] = {}

    async def ivr(call: Call):
        await call.answer()
        results["empty"] = await call.connect([])
        results["no_dialer"] = await call.connect([{"to_number": AGENT}])
        server.callees({AGENT: "ring"})
        first = await call.connect_async([{"to_number": AGENT}])
        results["twice"] = await call.connect([{"to_number": AGENT}])
        results["cancelled"] = await call.disconnect()
        results["first"] = await first.wait(WAIT)
        results["not_connected"] = await call.disconnect()
        await call.hangup()

    outcomes = await run_ivr(ivr)
    await server.dial_in(context="office")
    await outcome(outcomes)

    def message(name: str) -> str:
        result = results[name]
        assert not result.successful, name
        return result.event.payload.get("message", "")

    assert message("empty").startswith("devices: must be a non-empty list")
    assert message("no_dialer").startswith("devices[0][0].type: outbound calls need")
    assert "already connecting" in message("twice")
    assert results["cancelled"].event.name == "failed"
    assert (results["first"].event.name, results["first"].reason) == ("failed", "cancel")
    assert "not connected" in message("not_connected")
    await until(lambda: nothing_left(server), "every call to end")


async def test_dial_from_the_sdk_reaches_a_virtual_callee(server):
    """Calling.dial: answered (successful) and the callee hears what the IVR plays; busy is
    unsuccessful with busy set; new_call() then dial() is the same."""
    from relaykit import Client

    callees = server.callees({AGENT: Callee("answer", ring=0.5), BUSY: "busy"})
    client = Client("test-project", "test-token", server.url)
    await client.connect()
    try:
        answered = await client.calling.dial(from_number="+15550002222", to_number=AGENT)
        assert answered.successful and answered.call.answered
        assert answered.call.id in server.calls and answered.call.direction == "outbound"
        agent = await callees.expect_answered(AGENT)
        await answered.call.play_tts("This is a reminder of your appointment.")
        await agent.expect_prompt("reminder of your appointment")
        await answered.call.hangup()
        busy_call = client.calling.new_call(from_number="+15550002222", to_number=BUSY)
        busy = await busy_call.dial()
        assert not busy.successful and busy.call is busy_call
        assert (busy_call.state, busy_call.busy, busy_call.end_reason) == ("ended", True, "busy")
    finally:
        await client.disconnect()
    await until(lambda: nothing_left(server), "every call to end")


async def test_the_consumer_going_away_mid_connect_ends_every_leg():
    """On the wire: the reply comes before ``connecting``, the ringing legs' states name the
    caller as ``peer``; when the consumer's connection drops (no resume window), the caller
    and every ringing leg end and nothing is left."""
    async with RelayServer(credentials={"test-project": "test-token"}, resume_grace=0) as server:
        callees = server.callees({NOBODY: "ring", SECOND: "ring"})
        ws = await connect(server.url)
        client = RawClient(ws)
        await client.handshake()
        await client.execute("signalwire.receive", {"contexts": ["office"]})
        await asyncio.sleep(0.2)  # the context becomes routable
        caller = await server.dial_in(context="office")
        offer = await client.event("calling.call.receive")
        ref = {"call_id": offer["call_id"], "node_id": offer["node_id"]}
        phones = [{"type": "phone", "params": {"to_number": n}} for n in (NOBODY, SECOND)]
        reply = await client.execute("calling.connect", {**ref, "devices": [phones]})
        assert reply["result"]["result"] == {"code": "200", "message": "Connecting"}
        assert not [e for e in client.events if "connect" in e["params"]["params"]["event_type"]]
        connecting = await client.event("calling.call.connect")
        assert connecting == {"connect_state": "connecting", **ref}
        legs = []
        while len(legs) < 4:  # each leg: created, ringing
            legs.append(await client.event("calling.call.state"))
        assert {e["peer"]["call_id"] for e in legs} == {caller.call_id}
        assert sorted((e["device"]["params"]["to_number"], e["call_state"]) for e in legs) == [
            (NOBODY, "created"),
            (NOBODY, "ringing"),
            (SECOND, "created"),
            (SECOND, "ringing"),
        ]
        await ws.close()
        await until(lambda: nothing_left(server), "every call to end")
        assert caller.end_reason == "hangup"
        assert [d.end_reason for d in callees.dialled] == ["cancel", "cancel"]
