"""Sessions under pressure: detached ones hold no slots, a resume takes over a frozen socket."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from relaykit import RelayServer
from tests.helpers import PROJECT, TOKEN, WAIT, RawClient

pytestmark = pytest.mark.asyncio


async def _resume(server: RelayServer, sessionid: str, ws=None) -> tuple[RawClient, dict]:
    """Log in with ``sessionid``, set up and subscribe; the client and the connect result."""
    client = RawClient(ws if ws is not None else await connect(server.url))
    auth = {"project": PROJECT, "token": TOKEN}
    reply = await client.call("blade.connect", {"authentication": auth, "sessionid": sessionid})
    assert "result" in reply, reply
    setup = await client.call(
        "blade.execute", {"protocol": "signalwire", "method": "setup", "params": {}}
    )
    client.protocol = setup["result"]["result"]["protocol"]
    await client.call(
        "blade.subscription",
        {"command": "add", "protocol": client.protocol, "channels": ["notifications"]},
    )
    return client, reply["result"]


async def _until(condition, what: str) -> None:
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_detached_sessions_hold_no_slots_and_the_oldest_goes_beyond_their_cap():
    """Five logins dropped in turn: new clients still get in; only the newest two wait."""
    async with RelayServer(
        credentials={PROJECT: TOKEN},
        max_sessions_per_project=2,
        max_detached_sessions_per_project=2,
    ) as server:
        dropped = []
        for _ in range(5):
            client = RawClient(await connect(server.url))
            reply = await client.handshake()
            assert "result" in reply, reply  # detached sessions do not fill the cap
            sessionid = reply["result"]["sessionid"]
            dropped.append(sessionid)
            await client.ws.close()
            await _until(
                lambda s=sessionid: s not in server.sessions or not server.sessions[s].attached,
                "the server saw the drop",
            )
        assert set(server.sessions) == set(dropped[-2:])
        live = [RawClient(await connect(server.url)) for _ in range(3)]
        assert "result" in await live[0].handshake()
        assert "result" in await live[1].handshake()
        refused = await live[2].handshake()
        assert "max_sessions_per_project" in refused["error"]["message"]
        await live[0].ws.close()
        await _until(lambda: sum(s.attached for s in server.sessions.values()) == 1, "the drop")
        _, result = await _resume(server, dropped[-1])
        assert result["session_restored"] is True
        await live[1].ws.close()
        await _until(lambda: sum(s.attached for s in server.sessions.values()) == 1, "the drop")
        _, result = await _resume(server, dropped[0])
        assert result["session_restored"] is False  # it ended to make room


async def test_a_resume_takes_over_a_frozen_connection_and_gets_the_prompts_result():
    """The IVR's socket is open but silent; a resume from a new socket gets the result."""
    async with RelayServer(credentials={PROJECT: TOKEN}) as server:
        frozen = RawClient(await connect(server.url))
        sessionid = (await frozen.handshake())["result"]["sessionid"]
        await frozen.execute("signalwire.receive", {"contexts": ["office"]})
        dial = asyncio.create_task(server.dial_in(context="office"))
        offer = await frozen.event("calling.call.receive")
        caller = await dial
        ref = {"call_id": offer["call_id"], "node_id": offer["node_id"]}
        await frozen.execute("calling.answer", ref)
        prompt = {
            **ref,
            "control_id": "pin",
            "play": [{"type": "silence", "params": {"duration": 0.2}}],
            "collect": {"digits": {"max": 2, "digit_timeout": 5}, "initial_timeout": 10},
        }
        assert (await frozen.execute("calling.play_and_collect", prompt))["result"]["result"][
            "code"
        ] == "200"
        # From here the frozen client reads nothing; its twin resumes the session.
        resumed, result = await _resume(server, sessionid)
        assert result["session_restored"] is True
        await caller.wait_listening(WAIT)
        await caller.press("42")
        while True:
            collect = await resumed.event("calling.call.collect")
            if collect.get("final", True):
                break
        assert collect["result"]["params"]["digits"] == "42"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = await frozen.recv()
                if frame.get("method") == "blade.broadcast":
                    inner = frame["params"]["params"]
                    assert inner["event_type"] != "calling.call.collect", "sent to the stale socket"
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert "resumed on another connection" in closed.value.rcvd.reason


async def test_events_the_frozen_socket_never_wrote_are_replayed_once_in_order():
    """Events stuck in a stale socket's outbox go out on the new connection, each once."""
    events, pad = 120, "x" * 64_000  # ~7.7 MB: far more than the stale socket's buffers
    async with RelayServer(credentials={PROJECT: TOKEN}, max_outbox_bytes=64 << 20) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
        sock.connect(("127.0.0.1", server.port))
        stale_ws = await connect(server.url, sock=sock, max_queue=1, max_size=None)
        stale = RawClient(stale_ws)
        sessionid = (await stale.handshake())["result"]["sessionid"]
        session = server.sessions[sessionid]
        call_id = str(uuid.uuid4())
        for n in range(events):
            session.broadcast("calling.call.state", {"call_id": call_id, "n": n, "pad": pad})
        written = -1
        while written != events - len(session.unwritten):  # until the writer is stuck
            written = events - len(session.unwritten)
            await asyncio.sleep(0.2)
        assert session.unwritten, "the stale socket took everything: nothing to replay"

        resumed, result = await _resume(server, sessionid)
        assert result["session_restored"] is True
        replayed: list[int] = []
        while not replayed or replayed[-1] != events - 1:
            replayed.append((await resumed.event("calling.call.state"))["n"])
        assert replayed == list(range(replayed[0], events)), "in order, each once"

        seen_by_stale: list[int] = []
        with pytest.raises(ConnectionClosed):
            while True:
                frame = await stale.recv()
                if frame.get("method") == "blade.broadcast":
                    seen_by_stale.append(frame["params"]["params"]["params"]["n"])
        assert seen_by_stale == list(range(len(seen_by_stale)))
        assert replayed[0] <= len(seen_by_stale), "an event reached neither socket"
        sock.close()


async def test_the_registry_still_takes_a_plain_address_and_send_callable():
    """connect(params, address, send): logged in by the same rules, events handed to send."""
    from relaykit.protocol import blade

    async with RelayServer(credentials={PROJECT: TOKEN}) as server:
        sent: list[str] = []
        params = blade.ConnectParams.parse({"authentication": {"project": PROJECT, "token": TOKEN}})
        session, restored = await server.session_registry.connect(params, "10.0.0.9", sent.append)
        assert not restored and session.attached
        assert server.logins.unauthenticated == 0
        session.new_protocol()
        session.subscribed = True
        session.broadcast("calling.call.state", {"call_id": "c"})
        assert len(sent) == 1 and not session.unwritten
        server.session_registry.detach(session, sent.append)
        assert not session.attached
