"""signalwire 2.1.1, unchanged: handshake, an inbound PIN call, and the server's own pings."""

from __future__ import annotations

import pytest

from tests.compat.wire import C2S, S2C
from tests.helpers import PROJECT, TOKEN, WAIT

pytestmark = [pytest.mark.compat, pytest.mark.asyncio]

PIN_PROMPT = "Please enter your PIN, then press pound"


async def test_handshake_frames_and_replies(server, wire, v2_app):
    """connect, setup, subscription, ping, receive (§0.1.1); every reply has what v2 reads."""
    app = await v2_app("pin_ivr.py")
    ready = await app.wait_event("ready")
    await wire.wait_execute("signalwire.receive")

    sent = [f for f in wire.frames if f.direction == C2S]
    assert [(f.method, f.execute_method) for f in sent[:5]] == [
        ("blade.connect", None),
        ("blade.execute", "setup"),
        ("blade.subscription", None),
        ("blade.ping", None),
        ("blade.execute", "signalwire.receive"),
    ]
    connect, setup, subscription, ping, receive = sent[:5]
    assert connect.params == {
        "version": {"major": 2, "minor": 3, "revision": 0},
        "authentication": {"project": PROJECT, "token": TOKEN},
        "agent": "Python SDK/2.1.1",
    }
    connected = wire.response_to(connect).msg["result"]
    assert isinstance(connected["sessionid"], str)
    assert isinstance(connected["authorization"]["signature"], str)

    assert setup.params == {"protocol": "signalwire", "method": "setup", "params": {}}
    protocol = wire.response_to(setup).msg["result"]["result"]["protocol"]
    assert protocol.startswith("signalwire_")
    assert ready["protocol"] == protocol

    assert subscription.params == {
        "command": "add",
        "protocol": protocol,
        "channels": ["notifications"],
    }
    subscribed = wire.response_to(subscription).msg["result"]
    assert subscribed["subscribe_channels"] == ["notifications"]

    assert ping.params == {}
    assert "result" in wire.response_to(ping).msg

    assert receive.params == {
        "protocol": protocol,
        "method": "signalwire.receive",
        "params": {"contexts": ["office"]},
    }
    assert wire.response_to(receive).relay_code == "200"
    assert ready["contexts"] == ["office"]
    assert len(wire.connections) == 1
    wire.assert_conformant()


async def test_pin_ivr_gets_digits_and_terminator_plays_and_hangs_up(server, wire, v2_app):
    """prompt_tts digits with a terminator: 427# gives 427 and '#'; play_tts; hangup."""
    app = await v2_app("pin_ivr.py")
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    call = await app.wait_event("call")
    assert call["call_id"] == caller.call_id
    assert (call["context"], call["from_number"], call["to_number"]) == (
        "office",
        "+15551230000",
        "+15559870000",
    )
    assert await app.wait_event("answered") | {"t": 0} == {
        "event": "answered",
        "t": 0,
        "successful": True,
        "state": "answered",
    }
    prompt = await wire.wait_prompt_playing(caller.call_id)
    await caller.press("427#")

    result = await app.wait_event("result")
    assert result["successful"] is True
    assert (result["prompt_type"], result["result"], result["terminator"]) == ("digit", "427", "#")
    assert result["confidence"] is None
    assert result["event_name"] == "digit"
    assert result["event_payload"]["params"] == {"digits": "427", "terminator": "#"}
    played = await app.wait_event("played")
    assert (played["successful"], played["state"]) == (True, "finished")
    hangup = await app.wait_event("hangup")
    assert (hangup["successful"], hangup["reason"], hangup["state"]) == (True, "hangup", "ended")
    await caller.wait_for_state("ended")

    assert [(h.kind, h.label) for h in caller.heard] == [
        ("tts", PIN_PROMPT),
        ("tts", "You entered 4 2 7"),
    ]
    params = prompt.execute_params
    assert params == {
        "node_id": params["node_id"],
        "call_id": caller.call_id,
        "control_id": params["control_id"],
        "play": [{"type": "tts", "params": {"text": PIN_PROMPT}}],
        "collect": {"digits": {"max": 10, "terminators": "#"}},
    }
    (collect,) = wire.events("calling.call.collect", control_id=params["control_id"])
    assert collect.event["result"]["params"] == {"digits": "427", "terminator": "#"}
    (end,) = wire.executes("calling.end", call_id=caller.call_id)
    assert end.execute_params == {
        "node_id": params["node_id"],
        "call_id": caller.call_id,
        "reason": "hangup",
    }
    states = [f.event["call_state"] for f in wire.events("calling.call.state")]
    assert states == ["answered", "ending", "ended"]
    wire.assert_conformant()


async def test_server_pings_are_ignored_by_v2_and_do_no_harm(server, wire, v2_app):
    """v2 never answers the server's blade.ping (§3.3); the server keeps the session anyway."""
    server.ping_interval = 0.2
    app = await v2_app("pin_ivr.py")
    await app.wait_event("ready")
    pings = await wire.wait_count(lambda f: f.direction == S2C and f.method == "blade.ping", 4)
    server_pings = {f.id for f in pings}
    assert not [f for f in wire.frames if f.direction == C2S and f.id in server_pings]

    caller = await server.dial_in(context="office", timeout=WAIT)
    await wire.wait_prompt_playing(caller.call_id)
    await caller.press("9#")
    result = await app.wait_event("result")
    assert (result["result"], result["terminator"]) == ("9", "#")
    assert len(wire.connections) == 1 and wire.connections[0].closed_at is None
    wire.assert_conformant()
