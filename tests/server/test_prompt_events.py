"""What a prompt sends on the wire: terminal events only unless partials were asked for,
play events with the prompt's control_id, and media errors that leave the call alive."""

from __future__ import annotations

import asyncio
import socket

import pytest

from relaykit import Call
from tests.helpers import outcome

pytestmark = pytest.mark.asyncio


async def _answered(server, client):
    await client.execute("signalwire.receive", {"contexts": ["office"]})
    dial = asyncio.create_task(server.dial_in(context="office"))
    offer = await client.event("calling.call.receive")
    caller = await dial
    ref = {"call_id": offer["call_id"], "node_id": offer["node_id"]}
    await client.execute("calling.answer", ref)
    await client.event("calling.call.state")
    return caller, ref


async def _collect_events_until_terminal(client):
    events = []
    while True:
        params = await client.event("calling.call.collect")
        events.append(params)
        if params.get("final") is not False:
            return events


async def test_without_partial_results_only_the_terminal_collect_event_is_sent(server, raw_client):
    """v2 treats every collect event as the end, so none is sent unasked (§8.2.1)."""
    client = await raw_client()
    await client.handshake()
    caller, ref = await _answered(server, client)
    await client.execute(
        "calling.play_and_collect",
        {
            **ref,
            "control_id": "p1",
            "play": [{"type": "silence", "params": {"duration": 0.2}}],
            "collect": {"digits": {"max": 3}, "speech": {"hints": ["sales"]}},
        },
    )
    await caller.press("123")
    events = await _collect_events_until_terminal(client)
    assert len(events) == 1
    (final,) = events
    assert final["result"] == {
        "type": "digit",
        "params": {"digits": "123", "terminator": ""},
        "reason": "max_digits",
    }
    assert final["control_id"] == "p1"


async def test_partials_and_start_of_input_arrive_in_order_before_the_final(server, raw_client):
    """Asked for, start_of_input comes once, then one partial per key, then the final."""
    client = await raw_client()
    await client.handshake()
    caller, ref = await _answered(server, client)
    await client.execute(
        "calling.play_and_collect",
        {
            **ref,
            "control_id": "p2",
            "play": [{"type": "silence", "params": {"duration": 0.2}}],
            "collect": {"digits": {"max": 3}, "partial_results": True, "send_start_of_input": True},
        },
    )
    await caller.press("123")
    events = await _collect_events_until_terminal(client)
    kinds = [(e["result"]["type"], e["final"], e["state"]) for e in events]
    assert kinds == [
        ("start_of_input", False, "collecting"),
        ("digit", False, "collecting"),
        ("digit", False, "collecting"),
        ("digit", False, "collecting"),
        ("digit", True, "finished"),
    ]
    assert [e["result"]["params"]["digits"] for e in events[1:]] == ["1", "12", "123", "123"]


async def test_prompt_media_sends_play_events_with_the_prompts_control_id(server, raw_client):
    """calling.call.play playing then finished carry the prompt's control_id (§6.2)."""
    client = await raw_client()
    await client.handshake()
    _caller, ref = await _answered(server, client)
    await client.execute(
        "calling.play_and_collect",
        {
            **ref,
            "control_id": "p3",
            "play": [{"type": "silence", "params": {"duration": 0.1}}],
            "collect": {"digits": {"max": 1}, "initial_timeout": 0.1},
        },
    )
    playing = await client.event("calling.call.play")
    finished = await client.event("calling.call.play")
    assert (playing["control_id"], playing["state"]) == ("p3", "playing")
    assert (finished["control_id"], finished["state"]) == ("p3", "finished")
    (final,) = await _collect_events_until_terminal(client)
    assert final["result"]["type"] == "no_input"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("kind", ["unreachable", "undecodable"])
async def test_media_errors_end_the_prompt_with_error_and_the_call_survives(
    server, run_ivr, tmp_path, kind
):
    """A bad audio URL gives play error and collect error with a message; the call goes on."""
    if kind == "unreachable":
        url = f"http://127.0.0.1:{_closed_port()}/prompt.wav"
    else:
        bad = tmp_path / "prompt.wav"
        bad.write_bytes(b"this is not audio at all" * 100)
        url = bad.as_uri()
    play_states: list[str] = []

    async def ivr(call: Call):
        call.on("play.stateChange", lambda p: play_states.append(p["state"]))
        await call.answer()
        result = await call.prompt_audio("digits", url, digits_max=1)
        after = await call.prompt_tts("digits", "Still here", digits_max=1, initial_timeout=0.2)
        return result, after, call.state

    outcomes = await run_ivr(ivr)
    await server.dial_in(context="office")
    result, after, state = await outcome(outcomes)
    assert (result.prompt_type, result.reason, result.successful) == ("error", "error", False)
    message = result.event.payload["params"]["message"]
    assert "prompt.wav" in message
    assert "error" in play_states
    assert after.prompt_type == "no_input" and state == "answered"
