"""Hostile input: whatever a client sends, it gets a documented answer and the server serves on."""

from __future__ import annotations

import asyncio
import json

from fuzzing.fuzz_server import fuzz
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from relaykit import RelayServer
from tests.helpers import PROJECT, TOKEN, RawClient

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "jsonrpc",
                    "id",
                    "method",
                    "params",
                    "protocol",
                    "call_id",
                    "control_id",
                    "play",
                    "collect",
                    "volume",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)
methods = st.sampled_from(
    ["blade.connect", "blade.execute", "blade.subscription", "blade.ping", "calling.play", "nope"]
)


@st.composite
def frames(draw) -> str:
    """Mostly request-shaped JSON with random parts; sometimes anything at all."""
    if draw(st.booleans()):
        return json.dumps(draw(json_values))
    message = {
        "jsonrpc": "2.0",
        "id": draw(st.text(min_size=1, max_size=8)),
        "method": draw(methods),
        "params": draw(json_values),
    }
    return json.dumps(message)


async def _exchange(batch: list[str]) -> None:
    async with RelayServer(credentials={PROJECT: TOKEN}) as server:
        client = RawClient(await connect(server.url))
        await client.handshake()
        try:
            for frame in batch:
                await client.send(frame)
            reply = await client.call("blade.ping", {})
            assert "result" in reply, reply
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.reason, "closed without a reason"
        other = RawClient(await connect(server.url))
        assert "result" in await other.handshake()
        await other.ws.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), min_size=1, max_size=25))
def test_arbitrary_frames_get_answers_and_the_server_keeps_serving(batch):
    """Random frames never break the connection silently nor the server for others."""
    asyncio.run(_exchange(batch))


def test_a_fuzz_run_of_ten_thousand_messages_leaves_the_server_healthy():
    """10,000 mutated frames: no internal error, one reply per request, a prompt still works."""
    report = asyncio.run(fuzz(messages=10_000, seed=7))
    assert report.sent == 10_000
    assert report.internal_errors == 0
    assert report.duplicate_replies == 0
    assert report.unanswered == 0
    assert report.healthy
