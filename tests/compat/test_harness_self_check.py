"""The conformance harness itself: the wire checker catches what it claims to, the proxy is
transparent, and a failed venv install surfaces pip's output. No signalwire needed here."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.compat import v2
from tests.compat.wire import C2S, S2C, ProxiedConnection, WireRecorder
from tests.helpers import PROJECT, TOKEN, RawClient

pytestmark = pytest.mark.compat

PROTO = "signalwire_abc_123"


def _recorder(frames: list[tuple[str, dict[str, Any]]]) -> WireRecorder:
    """A recorder holding ``frames`` on one closed connection, as if the proxy had seen them."""
    recorder = WireRecorder("ws://unused")
    conn = ProxiedConnection(0, time.monotonic() - 10)
    recorder.connections.append(conn)
    for direction, msg in frames:
        recorder._record(conn, direction, json.dumps(msg))
    for frame in recorder.frames:
        frame.t -= 5.0  # long before the close: nothing counts as still in flight
    conn.closed_at = time.monotonic()
    return recorder


def _req(rid: str, method: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return C2S, {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


def _execute(rid: str, method: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return _req(rid, "blade.execute", {"protocol": PROTO, "method": method, "params": params})


def _ok(rid: str, inner: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    result: dict[str, Any] = {"result": inner} if inner is not None else {}
    return S2C, {"jsonrpc": "2.0", "id": rid, "result": result}


def _event(event_type: str, params: dict[str, Any], protocol: str = PROTO):
    return S2C, {
        "jsonrpc": "2.0",
        "id": "b",
        "method": "blade.broadcast",
        "params": {
            "protocol": protocol,
            "event": "queuing.relay.events",
            "params": {"event_type": event_type, "params": params},
        },
    }


SETUP = [
    _execute("s", "setup", {}),
    _ok("s", {"protocol": PROTO}),
]
CTL = {"call_id": "c", "node_id": "n", "control_id": "k"}


def test_a_clean_exchange_has_no_violations():
    recorder = _recorder(
        [
            *SETUP,
            _req("p", "blade.ping", {}),
            _ok("p"),
            _execute("x", "calling.play_and_collect.stop", CTL),
            _ok("x", {"code": "200", "message": "Stopped"}),
            _event("calling.call.collect", {**CTL, "result": {"type": "no_input"}}),
        ]
    )
    assert recorder.violations() == []


@pytest.mark.parametrize(
    ("frames", "complaint"),
    [
        ([_req("p", "blade.ping", {})], "no response to"),
        ([_req("p", "blade.ping", {}), _ok("p"), _ok("p")], "2 responses to request p"),
        ([_ok("zz")], "a response to no pending request"),
        (
            [
                _req("p", "blade.ping", {}),
                (S2C, {"jsonrpc": "2.0", "id": "p", "error": {"code": -32000}}),
            ],
            "without integer code and string message",
        ),
        (
            [_execute("x", "calling.answer", CTL), _ok("x", {"code": 200, "message": "ok"})],
            "not a string",
        ),
        (
            [_execute("x", "calling.answer", CTL), _ok("x", {"code": "404"})],
            "without message",
        ),
        (
            [
                _execute("x", "calling.play_and_collect.stop", CTL),
                _ok("x", {"code": "200", "message": "Stopped"}),
            ],
            "no calling.call.collect followed",
        ),
        (
            [_event("calling.call.collect", {**CTL, "result": {"type": "digit", "params": {}}})],
            "without digits and terminator",
        ),
        (
            [
                _event(
                    "calling.call.collect",
                    {**CTL, "result": {"type": "speech", "params": {"text": "hi"}}},
                )
            ],
            "without text and confidence",
        ),
        (
            [
                _event(
                    "calling.call.collect",
                    {**CTL, "final": False, "result": {"type": "digit", "params": {}}},
                )
            ],
            "a non-final collect",
        ),
        (
            [
                _event("calling.call.collect", {**CTL, "result": {"type": "no_input"}}),
                _event("calling.call.collect", {**CTL, "result": {"type": "no_input"}}),
            ],
            "a second collect event",
        ),
        ([_event("calling.call.state", {"call_id": "c", "call_state": "x"}, "other")], "protocol"),
        ([_event("calling.call.state", {"call_id": "c", "call_state": "ending"})], "never ended"),
        ([_event("calling.call.play", {**CTL, "state": "paused"})], "play state"),
    ],
)
def test_each_broken_rule_is_reported(frames, complaint):
    problems = _recorder([*SETUP, *frames]).violations()
    assert any(complaint in p for p in problems), problems


@pytest.mark.asyncio
async def test_the_proxy_forwards_both_ways_unchanged_and_records(server):
    async with WireRecorder(server.url) as recorder:
        async with connect(recorder.url) as ws:
            client = RawClient(ws)
            reply = await client.handshake(PROJECT, TOKEN)
            assert "result" in reply
            await client.call("blade.ping", {})
        frames = await recorder.wait_count(lambda f: True, 8)
        assert [f.direction for f in frames[:2]] == [C2S, S2C]
        assert frames[0].method == "blade.connect"
        assert frames[1].id == frames[0].id and frames[1].is_response
        recorder.assert_conformant()


def test_a_failed_install_reports_the_command_output():
    with pytest.raises(v2.VenvError) as failed:
        v2._run(
            [sys.executable, "-c", "import sys; print('no such version'); sys.exit(3)"],
            "pip install",
        )
    message = str(failed.value)
    assert "exit 3" in message and "no such version" in message
