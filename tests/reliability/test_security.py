"""Authentication, isolation between projects, and per-client limits."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from relaykit import RelayServer
from tests.helpers import RawClient

pytestmark = pytest.mark.asyncio

A, B = "project-a", "project-b"
CREDENTIALS = {A: "token-a", B: "token-b"}


async def _client(server: RelayServer, project: str) -> RawClient:
    client = RawClient(await connect(server.url))
    reply = await client.handshake(project, CREDENTIALS[project])
    assert "result" in reply
    return client


async def _offered(server, client, project, context="office"):
    await client.execute("signalwire.receive", {"contexts": [context]})
    dial = asyncio.create_task(server.dial_in(context=context, project=project))
    offer = await client.event("calling.call.receive")
    return await dial, {"call_id": offer["call_id"], "node_id": offer["node_id"]}


async def test_failed_logins_do_not_lock_out_a_good_client_from_the_same_address(caplog):
    """After many wrong tokens, the right token still gets in; no token appears in the logs."""
    caplog.set_level(logging.DEBUG)
    async with RelayServer(credentials=CREDENTIALS) as server:
        server.session_registry.throttle.maximum = 0.05
        for _ in range(8):
            bad = RawClient(await connect(server.url))
            reply = await bad.handshake(A, "guess-123")
            assert "authentication failed" in reply["error"]["message"]
            with pytest.raises(ConnectionClosed):
                await bad.recv()
        assert (
            server.session_registry.throttle.failures(
                "127.0.0.1", now=asyncio.get_running_loop().time()
            )
            == 8
        )
        good = await _client(server, A)
        assert good.protocol
    assert "guess-123" not in caplog.text and "token-a" not in caplog.text


async def test_another_projects_call_is_not_found_exactly_like_a_missing_one():
    """B naming A's call_id gets the same 404 as for a call that never existed."""
    async with RelayServer(credentials=CREDENTIALS) as server:
        a, b = await _client(server, A), await _client(server, B)
        caller, ref = await _offered(server, a, A)
        for method, extra in [
            ("calling.answer", {}),
            (
                "calling.play",
                {"control_id": "x", "play": [{"type": "silence", "params": {"duration": 1}}]},
            ),
            ("calling.end", {"reason": "hangup"}),
        ]:
            stolen = await b.execute(method, {**ref, **extra})
            missing = await b.execute(method, {**ref, "call_id": "no-such-call", **extra})
            inner, other = stolen["result"]["result"], missing["result"]["result"]
            assert inner["code"] == other["code"] == "404"
            assert inner["message"].replace(ref["call_id"], "ID") == other["message"].replace(
                "no-such-call", "ID"
            )
        assert caller.state == "created", "B's commands did nothing to A's call"


async def test_same_context_name_in_two_projects_routes_calls_only_within_each_project():
    """A's calls reach only A's consumer of "office", B's only B's; no event crosses over."""
    async with RelayServer(credentials=CREDENTIALS) as server:
        a, b = await _client(server, A), await _client(server, B)
        _, ref_a = await _offered(server, a, A)
        _, ref_b = await _offered(server, b, B)
        assert ref_a["call_id"] != ref_b["call_id"]
        await a.execute("calling.answer", ref_a)
        await b.execute("calling.answer", ref_b)
        assert (await a.event("calling.call.state"))["call_id"] == ref_a["call_id"]
        assert (await b.event("calling.call.state"))["call_id"] == ref_b["call_id"]
        await a.call("blade.ping", {})
        await b.call("blade.ping", {})
        for client, own in ((a, ref_a), (b, ref_b)):
            for frame in client.events:
                assert frame["params"]["params"]["params"]["call_id"] == own["call_id"]


async def test_contexts_route_only_to_sessions_that_asked_for_them():
    """A consumer of "sales" is never offered an "office" call."""
    async with RelayServer(credentials=CREDENTIALS) as server:
        sales = await _client(server, A)
        await sales.execute("signalwire.receive", {"contexts": ["sales"]})
        office = await _client(server, A)
        await office.execute("signalwire.receive", {"contexts": ["office"]})
        await asyncio.sleep(0.15)  # contexts settle (see CONTEXT_SETTLE_SECONDS)
        for _ in range(3):
            await server.dial_in(context="office", project=A)
        for _ in range(3):
            await office.event("calling.call.receive")
        await sales.call("blade.ping", {})
        assert not sales.events


async def test_request_floods_are_refused_with_a_clear_error_and_every_id_answered():
    """Beyond the burst, requests get "too many requests"; each still gets one reply."""
    async with RelayServer(
        credentials=CREDENTIALS, max_request_rate=5, max_request_burst=10
    ) as server:
        client = await _client(server, A)
        for i in range(40):
            await client.send(
                {"jsonrpc": "2.0", "id": f"r{i}", "method": "blade.ping", "params": {}}
            )
        replies = [await client.recv() for _ in range(40)]
        assert sorted(r["id"] for r in replies) == sorted(f"r{i}" for i in range(40))
        refused = [r for r in replies if "error" in r]
        assert refused and all("too many requests" in r["error"]["message"] for r in refused)


async def test_components_per_call_are_capped():
    """The 3rd concurrent play on a call with a cap of 2 is refused naming the limit."""
    async with RelayServer(credentials=CREDENTIALS, max_components_per_call=2) as server:
        client = await _client(server, A)
        _, ref = await _offered(server, client, A)
        play = {"play": [{"type": "silence", "params": {"duration": 5}}]}
        codes = []
        for n in range(3):
            reply = await client.execute("calling.play", {**ref, "control_id": f"c{n}", **play})
            codes.append(reply["result"]["result"]["code"])
        assert codes == ["200", "200", "429"]
        assert "limit" in reply["result"]["result"]["message"]


async def test_sessions_per_project_are_capped():
    """A project at its session cap gets an error on blade.connect; others still connect."""
    async with RelayServer(credentials=CREDENTIALS, max_sessions_per_project=2) as server:
        await _client(server, A)
        await _client(server, A)
        third = RawClient(await connect(server.url))
        reply = await third.handshake(A, CREDENTIALS[A])
        assert "limit" in reply["error"]["message"]
        assert (await _client(server, B)).protocol


async def test_oversized_frames_close_the_connection_and_the_server_keeps_serving():
    """A frame over max_message_size closes that socket (1009); new clients are served."""
    async with RelayServer(credentials=CREDENTIALS, max_message_size=4096) as server:
        client = await _client(server, A)
        await client.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": "big",
                    "method": "blade.ping",
                    "params": {"pad": "x" * 10_000},
                }
            )
        )
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.rcvd.code == 1009
        assert (await _client(server, A)).protocol


async def test_a_client_that_stops_reading_is_disconnected_not_buffered_forever():
    """With a small outbox, a client that never reads its events is closed (1008)."""
    async with RelayServer(credentials=CREDENTIALS, max_outbox=5) as server:
        client = await _client(server, A)
        session = next(iter(server.sessions.values()))
        for n in range(50):  # more events than the outbox holds, faster than they drain
            session.broadcast("calling.call.state", {"call_id": str(n)})
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await client.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
