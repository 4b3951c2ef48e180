"""Faults: dropped consumers resume their session, graceful stop, timeouts, nothing left waiting."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from websockets.asyncio.server import serve

from relaykit import (
    Call,
    Client,
    Consumer,
    RelayConnectionError,
    RelayServer,
    RelayTimeoutError,
)
from tests.helpers import PROJECT, TOKEN, WAIT, outcome

pytestmark = pytest.mark.asyncio


class PromptingIvr(Consumer):
    """Answers and runs one digit prompt; results go to a queue."""

    contexts = ("office",)

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.outcomes: asyncio.Queue = asyncio.Queue()
        self.prompt_started = asyncio.Event()

    async def on_incoming_call(self, call: Call) -> None:
        await call.answer()
        action = await call.prompt_tts_async("digits", "Enter four digits", digits_max=4)
        self.prompt_started.set()
        await action.wait()
        self.outcomes.put_nowait(action.result)


async def _start(consumer: Consumer) -> asyncio.Task:
    task = asyncio.create_task(consumer.serve())
    for _ in range(200):
        if consumer.client is not None and consumer.client.connected:
            break
        await asyncio.sleep(0.02)
    return task


async def test_a_consumer_that_drops_mid_prompt_resumes_and_gets_the_result(server):
    """Socket lost mid-prompt: the SDK reconnects with its sessionid and the prompt completes."""
    ivr = PromptingIvr(project=PROJECT, token=TOKEN, url=server.url)
    task = await _start(ivr)
    try:
        caller = await server.dial_in(context="office")
        await asyncio.wait_for(ivr.prompt_started.wait(), WAIT)
        session_before = ivr.client.session_id
        await ivr.client._ws.close()  # the network drops
        await caller.press("1234")  # keys pressed while the IVR is away
        result = await outcome(ivr.outcomes)
        assert (result.successful, result.result) == (True, "1234")
        assert ivr.client.session_id == session_before
        assert caller.state == "answered", "the call survived the drop"
    finally:
        await ivr.stop()
        await asyncio.wait_for(task, WAIT)


async def test_events_missed_while_away_arrive_in_order(raw_client, server):
    """A resumed raw client gets every queued event, oldest first, after it subscribes."""
    first = await raw_client()
    hello = await first.handshake()
    await first.execute("signalwire.receive", {"contexts": ["office"]})
    dial = asyncio.create_task(server.dial_in(context="office"))
    offer = await first.event("calling.call.receive")
    caller = await dial
    ref = {"call_id": offer["call_id"], "node_id": offer["node_id"]}
    await first.execute("calling.answer", ref)
    await first.event("calling.call.state")
    await first.execute(
        "calling.play_and_collect",
        {
            **ref,
            "control_id": "p",
            "play": [{"type": "silence", "params": {"duration": 0.1}}],
            "collect": {"digits": {"max": 2}, "partial_results": True},
        },
    )
    await first.ws.close()
    await caller.press("12")  # partial, partial, final: all while the client is away

    second = await raw_client()
    sessionid = hello["result"]["sessionid"]
    reply = await second.call(
        "blade.connect",
        {
            "authentication": {"project": PROJECT, "token": TOKEN},
            "sessionid": sessionid,
        },
    )
    assert reply["result"]["session_restored"] is True
    setup = await second.call(
        "blade.execute", {"protocol": "signalwire", "method": "setup", "params": {}}
    )
    second.protocol = setup["result"]["result"]["protocol"]
    assert second.protocol == first.protocol
    await second.call(
        "blade.subscription",
        {
            "command": "add",
            "protocol": second.protocol,
            "channels": ["notifications"],
        },
    )
    collected = []
    while True:
        event = await second.event("calling.call.collect")
        collected.append(event)
        if event["final"]:
            break
    assert [e["result"]["params"]["digits"] for e in collected] == ["1", "12", "12"]


async def test_after_the_grace_window_the_sessions_calls_end_cleanly():
    """A consumer that never comes back: its calls end (caller sees ended) after the grace."""
    async with RelayServer(credentials={PROJECT: TOKEN}, resume_grace=0.3) as server:
        ivr = PromptingIvr(project=PROJECT, token=TOKEN, url=server.url, reconnect=False)
        task = await _start(ivr)
        try:
            caller = await server.dial_in(context="office")
            await asyncio.wait_for(ivr.prompt_started.wait(), WAIT)
            await ivr.client._ws.close()
            await caller.wait_for_state("ended", WAIT)
            assert not server.calls and not server.sessions
            assert len(server.engine) == 0
        finally:
            await ivr.stop()
            await asyncio.wait_for(task, WAIT)


async def test_graceful_stop_ends_calls_and_tells_clients(raw_client):
    """stop(): every call gets ending/ended, then blade.disconnect, then the socket closes."""
    server = await RelayServer(credentials={PROJECT: TOKEN}).start()
    ivr = PromptingIvr(project=PROJECT, token=TOKEN, url=server.url, reconnect=False)
    task = await _start(ivr)
    try:
        caller = await server.dial_in(context="office")
        await asyncio.wait_for(ivr.prompt_started.wait(), WAIT)
        await server.stop()
        result = await outcome(ivr.outcomes)
        assert not result.successful and result.reason == "hangup"
        assert caller.state == "ended"
    finally:
        await ivr.stop()
        await asyncio.wait_for(task, WAIT)


async def test_graceful_stop_sends_blade_disconnect_last():
    """A raw client sees the call end before blade.disconnect, and then the close."""
    server = await RelayServer(credentials={PROJECT: TOKEN}).start()
    from websockets.asyncio.client import connect

    from tests.helpers import RawClient

    ws = await connect(server.url)
    client = RawClient(ws)
    await client.handshake()
    await client.execute("signalwire.receive", {"contexts": ["office"]})
    dial = asyncio.create_task(server.dial_in(context="office"))
    await client.event("calling.call.receive")
    await dial
    await server.stop()
    methods = []
    async for frame in ws:
        msg = json.loads(frame)
        methods.append(
            (
                msg.get("method") == "blade.broadcast"
                and msg["params"]["params"]["params"].get("call_state")
            )
            or msg.get("method")
        )
    assert methods[-3:] == ["ending", "ended", "blade.disconnect"]


async def test_requests_time_out_when_the_server_never_answers():
    """A server that accepts but never replies gives RelayTimeoutError, not a hang."""

    async def mute(ws):
        async for _ in ws:
            pass

    async with serve(mute, "127.0.0.1", 0) as silent:
        port = next(iter(silent.sockets)).getsockname()[1]
        client = Client(
            PROJECT, TOKEN, f"ws://127.0.0.1:{port}", request_timeout=0.3, reconnect=False
        )
        with pytest.raises((RelayTimeoutError, RelayConnectionError)):
            await client.connect(timeout=WAIT)
        await client.disconnect()


async def test_pending_requests_fail_when_the_connection_drops(server):
    """An execute in flight when the socket dies raises RelayConnectionError."""
    client = Client(PROJECT, TOKEN, server.url, reconnect=False)
    await client.connect()
    ws = client._ws
    request = asyncio.create_task(client.request("blade.ping", {}))
    await ws.close()
    with contextlib.suppress(RelayConnectionError):  # the drop may win the race
        await asyncio.wait_for(request, WAIT)
    await client.disconnect()
