"""The server on the wire: handshake (§2), pings (§3.3, §4.1) and bad input, with a raw client."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed

from relaykit import Call
from tests.helpers import WAIT, outcome

pytestmark = pytest.mark.asyncio


async def test_handshake_follows_the_v2_sdk_frames(raw_client):
    """blade.connect, setup and subscription answer with the §2 shapes."""
    client = await raw_client()
    reply = await client.handshake()
    result = reply["result"]
    assert result["session_restored"] is False
    assert result["sessionid"] and result["nodeid"]
    assert result["authorization"]["project"] == "test-project"
    assert result["authorization"]["signature"]
    assert client.protocol.startswith("signalwire_")
    assert client.protocol.split("_")[1] == result["authorization"]["signature"]
    receive = await client.execute("signalwire.receive", {"contexts": ["office"]})
    assert receive["result"]["result"]["code"] == "200"
    assert receive["result"]["requester_nodeid"] and receive["result"]["responder_nodeid"]


async def test_wrong_token_gets_an_error_with_a_message_and_the_socket_closes(raw_client):
    """A refused login is a JSON-RPC error carrying message, then the server closes."""
    client = await raw_client()
    reply = await client.handshake(token="wrong")
    assert reply["error"]["message"]
    assert isinstance(reply["error"]["code"], int)
    with pytest.raises(ConnectionClosed):
        await client.recv()


async def test_requests_before_connect_are_refused(raw_client):
    """Anything before blade.connect is an authentication error."""
    client = await raw_client()
    reply = await client.call("blade.execute", {"protocol": "x", "method": "setup", "params": {}})
    assert "blade.connect" in reply["error"]["message"]


async def test_ping_is_answered_with_its_timestamp(raw_client):
    """blade.ping gets a result echoing the timestamp; an empty ping gets an empty result."""
    client = await raw_client()
    await client.handshake()
    assert (await client.call("blade.ping", {"timestamp": 12.5}))["result"] == {"timestamp": 12.5}
    assert (await client.call("blade.ping", {}))["result"] == {}


async def test_malformed_json_gets_a_parse_error_and_the_connection_carries_on(raw_client):
    """Invalid JSON → -32700 with a message; the same socket still works."""
    client = await raw_client()
    await client.handshake()
    await client.send("{not json")
    reply = await client.recv()
    assert reply["error"]["code"] == -32700 and reply["error"]["message"]
    assert reply["id"] is None
    assert "result" in await client.call("blade.ping", {})


async def test_unknown_methods_are_refused_by_name(raw_client):
    """An unknown blade method and an unknown RELAY method both get -32601 naming them."""
    client = await raw_client()
    await client.handshake()
    reply = await client.call("blade.frobnicate", {})
    assert reply["error"]["code"] == -32601 and "blade.frobnicate" in reply["error"]["message"]
    reply = await client.execute("calling.frobnicate", {})
    assert reply["error"]["code"] == -32601 and "calling.frobnicate" in reply["error"]["message"]


async def test_execute_with_a_foreign_protocol_is_refused(raw_client):
    """blade.execute must carry the protocol that setup returned."""
    client = await raw_client()
    await client.handshake()
    reply = await client.call(
        "blade.execute",
        {"protocol": "signalwire_other", "method": "signalwire.receive", "params": {}},
    )
    assert "params.protocol" in reply["error"]["message"]


async def _answered_call(server, client):
    await client.execute("signalwire.receive", {"contexts": ["office"]})
    caller_task = asyncio.create_task(server.dial_in(context="office"))
    offer = await client.event("calling.call.receive")
    caller = await caller_task
    ref = {"call_id": offer["call_id"], "node_id": offer["node_id"]}
    answer = await client.execute("calling.answer", ref)
    assert answer["result"]["result"]["code"] == "200"
    return caller, ref


BAD_COMMANDS = [
    # (method, params beyond call/node, field named in the message)
    ("calling.play_and_collect.volume", {"control_id": "x", "volume": 41}, "volume"),
    ("calling.play_and_collect.volume", {"control_id": "x", "volume": "loud"}, "volume"),
    (
        "calling.play",
        {"control_id": "c1", "play": [{"type": "video", "params": {}}]},
        "play[0].type",
    ),
    ("calling.play", {"control_id": "c2", "play": []}, "play"),
    (
        "calling.play",
        {"control_id": "c3", "play": [{"type": "tts", "params": {}}]},
        "play[0].params.text",
    ),
    (
        "calling.play",
        {"control_id": "c4", "play": [{"type": "ringtone", "params": {"name": "atlantis"}}]},
        "play[0].params.name",
    ),
    (
        "calling.play_and_collect",
        {
            "control_id": "c5",
            "play": [{"type": "silence", "params": {"duration": 1}}],
            "collect": {"digits": {"max": 0}},
        },
        "collect.digits.max",
    ),
    (
        "calling.play_and_collect",
        {
            "control_id": "c6",
            "play": [{"type": "silence", "params": {"duration": 1}}],
            "collect": {},
        },
        "collect",
    ),
    (
        "calling.play_and_collect",
        {
            "control_id": "c7",
            "play": [{"type": "silence", "params": {"duration": 1}}],
            "collect": {"digits": {}},
            "volume": -41,
        },
        "volume",
    ),
]


@pytest.mark.parametrize(("method", "params", "field"), BAD_COMMANDS)
async def test_invalid_commands_get_an_error_naming_the_field(
    server, raw_client, method, params, field
):
    """A bad parameter gets a non-200 code whose message names it; the call carries on."""
    client = await raw_client()
    await client.handshake()
    caller, ref = await _answered_call(server, client)
    reply = await client.execute(method, {**ref, **params})
    inner = reply["result"]["result"]
    assert inner["code"] != "200"
    assert inner["message"].startswith(field + ":"), inner["message"]
    assert not caller.ended
    ok = await client.execute(
        "calling.play",
        {**ref, "control_id": "good", "play": [{"type": "silence", "params": {"duration": 0.1}}]},
    )
    assert ok["result"]["result"]["code"] == "200"


async def test_commands_on_an_unknown_call_get_404_not_found(raw_client):
    """An unknown call_id is "404" with a message, for every calling command."""
    client = await raw_client()
    await client.handshake()
    for method, extra in [
        ("calling.answer", {}),
        ("calling.end", {"reason": "hangup"}),
        ("calling.play_and_collect.stop", {"control_id": "x"}),
    ]:
        reply = await client.execute(method, {"call_id": "nope", "node_id": "n", **extra})
        inner = reply["result"]["result"]
        assert inner["code"] == "404" and "not found" in inner["message"]


async def test_exactly_one_response_per_request_id(server, raw_client):
    """Every request id is answered once, even when the request failed."""
    client = await raw_client()
    await client.handshake()
    for payload in [
        {"jsonrpc": "2.0", "id": "a", "method": "blade.ping", "params": {}},
        {"jsonrpc": "2.0", "id": "b", "method": "blade.nothing", "params": {}},
        {"jsonrpc": "2.0", "id": "c", "method": "blade.execute", "params": {"protocol": 5}},
        {"jsonrpc": "2.0", "id": "d", "method": "blade.ping", "params": []},
    ]:
        await client.send(payload)
    await client.send({"jsonrpc": "2.0", "id": "end", "method": "blade.ping", "params": {}})
    seen = []
    while True:
        frame = await client.recv()
        seen.append(frame["id"])
        if frame["id"] == "end":
            break
    assert sorted(seen) == ["a", "b", "c", "d", "end"]


async def test_garbage_on_one_connection_does_not_disturb_another_call(server, run_ivr, raw_client):
    """While one client sends junk, another IVR's prompt completes normally."""

    async def ivr(call: Call):
        await call.answer()
        return await call.prompt_tts("digits", "Enter two digits", digits_max=2)

    outcomes = await run_ivr(ivr)
    noisy = await raw_client()
    await noisy.handshake()
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    junk = ["{", "[]", json.dumps({"jsonrpc": "2.0", "id": 1, "method": 7}), "null", "\x00" * 100]
    for frame in junk * 20:
        await noisy.send(frame)
    await caller.press("12")
    assert (await outcome(outcomes)).result == "12"
    assert "result" in await noisy.call("blade.ping", {})


async def test_server_sends_its_own_ping(server, raw_client):
    """The server pings its clients (§3.3) and accepts their answers."""
    server.ping_interval = 0.2
    client = await raw_client()
    await client.handshake()
    frame = await asyncio.wait_for(_next_request(client, "blade.ping"), WAIT)
    await client.send({"jsonrpc": "2.0", "id": frame["id"], "result": {}})
    assert "result" in await client.call("blade.ping", {})


async def _next_request(client, method):
    while True:
        frame = await client.recv()
        if frame.get("method") == method:
            return frame
