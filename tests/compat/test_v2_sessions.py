"""Sessions under signalwire 2.1.1: contexts, a refused login, a server restart."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from relaykit import RelayServer
from relaykit.errors import RelayTimeoutError
from relaykit.testing.caller import VirtualCaller
from tests.compat.wire import C2S, S2C
from tests.helpers import PROJECT, TOKEN, WAIT

pytestmark = [pytest.mark.compat, pytest.mark.asyncio]

V2_RECONNECT_DELAY = 5.0  # the SDK sleeps this long after every close before it reconnects


async def prompt_heard(caller: VirtualCaller, timeout: float = WAIT) -> None:
    """Wait until the IVR's first media item is playing to the caller."""
    deadline = time.monotonic() + timeout
    while not caller.heard:
        assert time.monotonic() < deadline, f"nothing played: {caller.transcript}"
        await asyncio.sleep(0.02)


async def test_two_consumers_on_different_contexts_get_only_their_calls(server, wire, v2_app):
    sales = await v2_app("pin_ivr.py", contexts=("sales",))
    support = await v2_app("pin_ivr.py", contexts=("support",))
    await sales.wait_event("ready")
    await support.wait_event("ready")

    callers = {
        "sales": [await server.dial_in(context="sales", timeout=WAIT) for _ in range(2)],
        "support": [await server.dial_in(context="support", timeout=WAIT)],
    }
    everyone = [c for group in callers.values() for c in group]
    for caller in everyone:
        await wire.wait_prompt_playing(caller.call_id)
    await asyncio.gather(*(c.press("5#") for c in everyone))
    with pytest.raises(RelayTimeoutError):
        await server.dial_in(context="billing", timeout=0.3)

    for app, context in ((sales, "sales"), (support, "support")):
        wanted = {c.call_id for c in callers[context]}
        results = [await app.wait_event("result") for _ in wanted]
        assert {r["call_id"] for r in results} == wanted
        assert all((r["result"], r["terminator"]) == ("5", "#") for r in results)
        calls = app.all("call")
        assert {c["call_id"] for c in calls} == wanted
        assert {c["context"] for c in calls} == {context}

    # On the wire: each connection carried only its own calls' events.
    by_context = {}
    for receive in wire.executes("signalwire.receive"):
        (context,) = receive.execute_params["contexts"]
        by_context[context] = receive.conn
    for context, conn in by_context.items():
        seen = {f.event.get("call_id") for f in wire.events(conn=conn)}
        assert seen == {c.call_id for c in callers[context]}
    for app in (sales, support):
        messages = [e["message"] for e in app.all("log")]
        assert not [m for m in messages if "Unknown call" in m or "mismatch" in m], messages
    wire.assert_conformant()


async def test_wrong_token_is_refused_and_the_retry_loop_is_harmless(server, wire, v2_app):
    """v2 retries a refused login every 5 s for ever (§0.1.4); the server shrugs it off."""
    intruder = await v2_app("client_ivr.py", token="not-the-token")
    refused = await intruder.wait_event(
        "log", message=lambda m: m.startswith("Client setup error:")
    )
    first_attempt = wire.connections[0].opened_at
    assert refused["message"].removeprefix("Client setup error:").strip(), "the error's message"

    # Meanwhile a v2 Client with the right token connects (directly) and takes a call.
    good = await v2_app("client_ivr.py", host=server.url)
    await good.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    await prompt_heard(caller)
    await caller.press("3")
    result = await good.wait_event("result")
    assert (result["successful"], result["result"]) == (True, "3")

    window = 6.5  # v2 tries at 0 s and 5 s; anything more would be a retry storm
    await asyncio.sleep(max(0.0, first_attempt + window - time.monotonic()))
    attempts = [c for c in wire.connections if c.opened_at <= first_attempt + window]
    assert len(attempts) == 2, [c.opened_at - first_attempt for c in attempts]
    starts = [c.opened_at for c in attempts]
    assert all(b - a >= V2_RECONNECT_DELAY - 0.5 for a, b in itertools.pairwise(starts))
    for conn in attempts[:2]:
        request, answer = conn.frames[0], conn.frames[1]
        assert (request.direction, request.method) == (C2S, "blade.connect")
        assert answer.direction == S2C and answer.id == request.id
        error = answer.msg["error"]
        assert isinstance(error["code"], int) and isinstance(error["message"], str)
        assert len(conn.frames) == 2, "nothing but the refusal on a refused connection"
        assert conn.closed_at is not None and conn.closed_at - conn.opened_at < 1.0
    assert intruder.alive, "v2 keeps retrying; it must not have crashed"
    assert not intruder.all("ready")
    assert len(intruder.all("socket_open")) >= 2
    assert [s.project for s in server.sessions.values()] == [PROJECT], "no session leaked"
    wire.assert_conformant()


async def test_server_restart_mid_session_v2_reconnects_and_a_new_call_works(server, v2_app):
    """Stop the server, start another on the same port: v2 reconnects 5 s later, calls work."""
    app = await v2_app("pin_ivr.py", host=server.url)
    first = await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    await prompt_heard(caller)
    await caller.press("427#")
    assert (await app.wait_event("result"))["result"] == "427"
    await app.wait_event("hangup")

    port = server.port
    await server.stop()
    stopped_at = time.monotonic()
    restarted = RelayServer(port=port, credentials={PROJECT: TOKEN})
    await restarted.start()
    try:
        second = await app.wait_event("ready", timeout=WAIT)
        assert second["protocol"] != first["protocol"], "v2 sets up a new protocol"
        delay = second["t"] - stopped_at
        assert V2_RECONNECT_DELAY - 0.5 <= delay <= V2_RECONNECT_DELAY + 3, delay
        caller = await restarted.dial_in(context="office", timeout=WAIT)
        await prompt_heard(caller)
        await caller.press("99#")
        result = await app.wait_event("result")
        assert (result["successful"], result["result"], result["terminator"]) == (True, "99", "#")
        assert (await app.wait_event("hangup"))["successful"] is True
        assert len(restarted.sessions) == 1
        assert not [e for e in app.all("log") if e["level"] in ("ERROR", "CRITICAL")]
    finally:
        await restarted.stop()
