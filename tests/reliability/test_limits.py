"""Memory is bounded per byte: outboxes, echoes of client input, contexts; and pings stay JSON."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from relaykit import Call, RelayServer
from relaykit.server.outbox import Outbox
from tests.helpers import PROJECT, TOKEN, WAIT, RawClient

pytestmark = pytest.mark.asyncio


def _strict(frame: str | bytes) -> dict:
    """Parse as RFC 8259 JSON: NaN and Infinity are not JSON."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(frame, parse_constant=refuse)


async def _logged_in(server: RelayServer, **options) -> RawClient:
    client = RawClient(await connect(server.url, **options))
    assert "result" in await client.handshake()
    return client


async def _closed(ws) -> ConnectionClosed:
    """Read (and drop) frames until the server closes; the close it sent."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    return closed.value


# -- what waits for a client is capped in bytes ----------------------------------------------------
async def test_outbox_takes_frames_within_its_byte_cap_and_overflows_beyond():
    """Frames beyond max_bytes overflow (once); a lone frame larger than the cap still goes."""
    written: list[str] = []
    gate = asyncio.Event()
    overflows: list[int] = []

    async def write(texts: list[str]) -> None:
        await gate.wait()
        written.extend(texts)

    outbox = Outbox(write, max_frames=100, max_bytes=10, on_overflow=lambda: overflows.append(1))
    assert outbox.send("x" * 50)  # nothing waits: taken although larger than the cap
    assert not outbox.send("y")  # something waits and the cap is passed
    assert overflows == [1] and outbox.closed
    assert not outbox.send("z")
    gate.set()
    await outbox.drain(WAIT)
    assert written == ["x" * 50]
    assert overflows == [1]


async def test_outbox_reports_frames_written_in_order_and_never_after_abort():
    """``written`` runs once the socket took the frame; aborted frames are never reported."""
    reported: list[str] = []
    release = asyncio.Event()

    async def write(texts: list[str]) -> None:
        if "b" in texts:
            await release.wait()

    outbox = Outbox(write, max_frames=10, max_bytes=1000, on_overflow=lambda: None)
    outbox.send("a", lambda: reported.append("a"))
    for _ in range(20):
        await asyncio.sleep(0)
    for text in "bc":  # queued together: one batch
        outbox.send(text, lambda t=text: reported.append(t))
    for _ in range(20):
        await asyncio.sleep(0)
    assert reported == ["a"]  # "b" and "c" are being written
    assert outbox.waiting == (2, 2)
    outbox.abort()
    release.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert reported == ["a"]


async def test_a_client_that_never_reads_is_closed_once_its_events_pass_the_byte_cap():
    """Fewer frames than max_outbox, more bytes than max_outbox_bytes: close 1008."""
    async with RelayServer(
        credentials={PROJECT: TOKEN}, max_outbox=10_000, max_outbox_bytes=200_000
    ) as server:
        client = await _logged_in(server)
        session = next(iter(server.sessions.values()))
        for n in range(50):  # 50 frames of ~20 kB, queued before any is written
            session.broadcast("calling.call.state", {"call_id": str(n), "pad": "x" * 20_000})
        closed = await _closed(client.ws)
        assert closed.rcvd is not None and closed.rcvd.code == 1008
        assert "too slow" in closed.rcvd.reason


async def test_caller_endpoint_outbox_is_capped_in_bytes(run_ivr, server):
    """A /caller client that asks for recordings and never reads is closed (1008)."""
    server_url = server.url
    await run_ivr(lambda call: _answer_and_wait(call))
    server._routes["/caller"].max_outbox_bytes = 1_000_000
    ws = await connect(f"{server_url}/caller", max_queue=1, max_size=None)

    async def ask(request_id: int, method: str, params: dict) -> dict:
        await ws.send(json.dumps({"id": request_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            if reply.get("id") == request_id:
                return reply

    assert "result" in await ask(0, "auth", {"project": PROJECT, "token": TOKEN})
    assert "result" in await ask(1, "dial", {"context": "office"})
    assert "result" in await ask(2, "wait_answered", {})
    assert "result" in await ask(3, "silence", {"seconds": 3})
    for n in range(100):  # ~250 kB each: far more than the socket's buffers and the cap
        await ws.send(json.dumps({"id": 10 + n, "method": "recording", "params": {}}))
    closed = await _closed(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 1008


async def _answer_and_wait(call: Call) -> None:
    await call.answer()
    await call.wait_for_ended()


# -- what a client sends comes back bounded ------------------------------------------------------
async def test_error_replies_echo_no_more_than_a_bounded_prefix_of_client_input():
    """Huge ids are not echoed (reply on id null); huge method names are cut in messages."""
    async with RelayServer(credentials={PROJECT: TOKEN}) as server:
        raw = await connect(server.url)
        await raw.send(
            json.dumps({"jsonrpc": "2.0", "id": "i" * 50_000, "method": "blade.ping", "params": 1})
        )
        frame = await asyncio.wait_for(raw.recv(), WAIT)
        reply = json.loads(frame)
        assert reply["id"] is None and "id" in reply["error"]["message"]
        assert len(frame) < 1000
        await raw.close()

        client = await _logged_in(server)
        execute = {"protocol": client.protocol, "method": "x" * 900_000, "params": {}}
        for method, params in (("m" * 900_000, {}), ("blade.execute", execute)):
            await client.send({"jsonrpc": "2.0", "id": "r", "method": method, "params": params})
            text = await asyncio.wait_for(client.ws.recv(), WAIT)
            assert len(text) < 1000, text[:200]
            assert "unknown method" in json.loads(text)["error"]["message"]

        ref = {"call_id": "c" * 500_000, "node_id": "n"}
        reply = await client.execute("calling.answer", ref)
        inner = reply["result"]["result"]
        assert inner["code"] == "404" and inner["message"].endswith("not found")
        assert len(inner["message"]) < 1000


async def test_contexts_per_session_are_capped_and_names_bounded():
    """Beyond max_contexts_per_session: 429 naming the limit; a 200-character name: 400."""
    async with RelayServer(credentials={PROJECT: TOKEN}, max_contexts_per_session=3) as server:
        client = await _logged_in(server)
        ok = await client.execute("signalwire.receive", {"contexts": ["a", "b"]})
        assert ok["result"]["result"]["code"] == "200"
        again = await client.execute("signalwire.receive", {"contexts": ["a", "b", "c"]})
        assert again["result"]["result"]["code"] == "200"  # a and b are not counted twice
        over = await client.execute("signalwire.receive", {"contexts": ["d"]})
        assert over["result"]["result"]["code"] == "429"
        assert "max_contexts_per_session" in over["result"]["result"]["message"]
        long = await client.execute("signalwire.receive", {"contexts": ["x" * 200]})
        assert long["result"]["result"]["code"] == "400"
        assert "contexts" in long["result"]["result"]["message"]
        assert set(server.sessions[next(iter(server.sessions))].contexts) == {"a", "b", "c"}


# -- blade.ping ------------------------------------------------------------------------------------
async def test_ping_echoes_only_finite_numbers_and_every_reply_is_valid_json():
    """NaN, Infinity, 1e999 and non-numbers are refused; a number is echoed."""
    async with RelayServer(credentials={PROJECT: TOKEN}) as server:
        client = await _logged_in(server)
        for n, timestamp in enumerate(["NaN", "Infinity", "-Infinity", "1e999", '"soon"', "12.5"]):
            params = '{"timestamp":' + timestamp + "}"
            await client.send(
                f'{{"jsonrpc":"2.0","id":"p{n}","method":"blade.ping","params":{params}}}'
            )
            reply = _strict(await asyncio.wait_for(client.ws.recv(), WAIT))
            if timestamp == "12.5":
                assert reply["result"] == {"timestamp": 12.5}
            else:
                assert "error" in reply, reply
