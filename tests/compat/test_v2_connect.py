"""signalwire 2.1.1, unchanged: dial, connect, connect_async and disconnect, against a virtual
caller and virtual callees."""

from __future__ import annotations

import pytest

from relaykit.testing import Callee
from tests.helpers import WAIT

pytestmark = [pytest.mark.compat, pytest.mark.asyncio]

AGENT = "+15551110000"
BUSY = "+15552220000"
NOBODY = "+15553330000"


async def test_connect_bridges_the_caller_to_the_agent_until_the_agent_leaves(server, wire, v2_app):
    """Blocking connect(): BUSY fails, AGENT answers; the result's call is the agent's leg
    (a Call the SDK made from its state events); keys cross the bridge both ways; when the
    agent hangs up, connect.disconnected fires and the caller is still the app's."""
    callees = server.callees({AGENT: Callee("answer", ring=1.0), BUSY: "busy"})
    app = await v2_app("connect.py", "connect", AGENT, BUSY)
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", from_number="+15550001111", timeout=WAIT)
    caller.listen_for_digits()
    connected = await app.wait_event("connected", timeout=WAIT)
    agent = await callees.expect_answered(AGENT)
    assert (connected["cls"], connected["successful"], connected["event_name"]) == (
        "ConnectResult",
        True,
        "connected",
    )
    assert connected["peer"] == {
        "call_id": agent.call_id,
        "context": None,
        "from_number": "+15550001111",
        "to_number": AGENT,
        "state": "answered",
    }
    assert connected["call_peer"]["call_id"] == agent.call_id
    assert connected["event_payload"]["peer"]["call_id"] == agent.call_id
    assert any(h.kind == "ringtone" for h in caller.heard)
    agent.listen_for_digits()
    await caller.press("31")
    await agent.press("9")
    await caller.silence(0.3)
    assert (agent.heard_digits(), caller.heard_digits()) == ("31", "9")
    await agent.hangup()
    disconnected = await app.wait_event("disconnected", timeout=WAIT)
    assert disconnected["peer"] == agent.call_id and disconnected["call_peer"] is None
    await caller.expect_prompt("the agent has left", timeout=WAIT)
    await caller.expect_hangup(timeout=WAIT)
    (request,) = wire.executes("calling.connect", call_id=caller.call_id)
    assert request.execute_params["devices"] == [
        [{"type": "phone", "params": {"from_number": "+15550001111", "to_number": BUSY}}],
        [{"type": "phone", "params": {"from_number": "+15550001111", "to_number": AGENT}}],
    ]
    assert request.execute_params["ringback"] == [{"type": "ringtone", "params": {"name": "us"}}]
    states = [f.event["connect_state"] for f in wire.events("calling.call.connect")]
    assert states == ["connecting", "connected", "connected", "disconnected", "disconnected"]
    assert wire.response_to(request).seq < wire.events("calling.call.connect")[0].seq
    legs = [f.event for f in wire.events("calling.call.state") if "peer" in f.event]
    assert {e["peer"]["call_id"] for e in legs} == {caller.call_id}
    # the ringback plays no calling.call.play events: only the app's own plays do
    plays = {f.execute_params["control_id"] for f in wire.executes("calling.play")}
    assert {f.event["control_id"] for f in wire.events("calling.call.play")} == plays
    wire.assert_conformant()


async def test_connect_async_rings_in_parallel(server, wire, v2_app):
    """connect_async(): the action is connecting at once, then completes connected with the
    one number that answered; the other, still ringing, is cancelled. The caller hanging up
    ends the agent's leg too."""
    callees = server.callees({AGENT: Callee("answer", ring=1.0), NOBODY: "ring"})
    app = await v2_app("connect.py", "connect_async", NOBODY, AGENT)
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    connecting = await app.wait_event("connecting", timeout=WAIT)
    assert connecting["state"] in ("", "connecting") and connecting["completed"] is False
    connected = await app.wait_event("connected", timeout=WAIT)
    assert (connected["state"], connected["successful"]) == ("connected", True)
    assert connected["peer"]["to_number"] == AGENT
    agent = await callees.expect_answered(AGENT)
    assert [(d.to_number, d.end_reason) for d in callees.dialled] == [
        (NOBODY, "cancel"),
        (AGENT, None),
    ]
    await caller.hangup()
    ended = await app.wait_event("ended", timeout=WAIT)
    assert ended["peer_state"] == "ended" and agent.end_reason == "hangup"
    assert ended["result_call"] is None  # v2 reads the call's peer, gone once disconnected
    wire.assert_conformant()


async def test_disconnect_leaves_both_calls_to_the_app(server, wire, v2_app):
    callees = server.callees({AGENT: Callee("answer", ring=0.3)})
    app = await v2_app("connect.py", "disconnect", AGENT)
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    await app.wait_event("connected", timeout=WAIT)
    agent = await callees.expect_answered(AGENT)
    await app.go()
    unbridged = await app.wait_event("unbridged", timeout=WAIT)
    assert (unbridged["cls"], unbridged["successful"], unbridged["event_name"]) == (
        "DisconnectResult",
        True,
        "disconnected",
    )
    assert (unbridged["call_state"], unbridged["agent_state"]) == ("answered", "answered")
    await caller.expect_prompt("thank you for waiting", timeout=WAIT)
    await agent.expect_prompt("the caller is on hold", timeout=WAIT)
    assert await agent.expect_hangup(timeout=WAIT) == "hangup"
    await caller.expect_hangup(timeout=WAIT)
    (request,) = wire.executes("calling.disconnect", call_id=caller.call_id)
    assert set(request.execute_params) == {"node_id", "call_id"}
    wire.assert_conformant()


async def test_a_connect_nobody_answers_fails_and_the_app_goes_on(server, wire, v2_app):
    server.callees({BUSY: "busy", NOBODY: "ring"})
    app = await v2_app("connect.py", "failed", BUSY, NOBODY)
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    connected = await app.wait_event("connected", timeout=WAIT)
    assert (connected["successful"], connected["event_name"], connected["peer"]) == (
        False,
        "failed",
        None,
    )
    assert connected["event_payload"]["failed_reason"] == "noAnswer"
    await caller.expect_prompt("nobody is available", timeout=WAIT)
    await caller.expect_hangup(timeout=WAIT)
    wire.assert_conformant()


async def test_a_connect_to_no_device_fails_at_once_with_the_reason_logged(server, wire, v2_app):
    app = await v2_app("connect.py", "empty")
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    connected = await app.wait_event("connected", timeout=WAIT)
    assert connected["successful"] is False
    log = await app.wait_event("log")
    assert "devices: must be a non-empty list of device lists" in log["message"]
    await caller.expect_hangup(timeout=WAIT)
    wire.assert_conformant()


async def test_calling_dial_reaches_a_callee_and_a_busy_number_fails(server, wire, v2_app):
    """Calling.dial(): successful once the callee answers, which hears the app's play; then
    new_call().dial() to a busy number: unsuccessful, call.busy."""
    callees = server.callees({AGENT: Callee("answer", ring=0.5), BUSY: "busy"})
    app = await v2_app("connect.py", "dial", AGENT, BUSY)
    await app.wait_event("ready")
    await app.go()
    dialed = await app.wait_event("dialed", timeout=WAIT)
    agent = await callees.expect_answered(AGENT)
    assert (dialed["cls"], dialed["successful"], dialed["event_name"]) == (
        "DialResult",
        True,
        "answered",
    )
    assert dialed["call"]["call_id"] == agent.call_id and dialed["call"]["to_number"] == AGENT
    await agent.expect_prompt("reminder of your appointment", timeout=WAIT)
    hung_up = await app.wait_event("hung_up", timeout=WAIT)
    assert (hung_up["successful"], hung_up["reason"]) == (True, "hangup")
    busy = await app.wait_event("busy", timeout=WAIT)
    assert (busy["successful"], busy["busy"], busy["state"]) == (False, True, "ended")
    begins = wire.executes("calling.begin")
    assert [b.execute_params["device"] for b in begins] == [
        {"type": "phone", "params": {"from_number": "+15550009999", "to_number": AGENT}},
        {"type": "phone", "params": {"from_number": "+15550009999", "to_number": BUSY}},
    ]
    wire.assert_conformant()
