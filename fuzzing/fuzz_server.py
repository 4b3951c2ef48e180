"""Fuzz the RELAY server with hostile frames while a real call runs beside them.

    python -m fuzzing.fuzz_server --messages 10000 --seed 1

Invariant: every frame gets a documented answer (a JSON-RPC error or result, at most one per
request id) or the connection is closed with a reason; the server never answers "internal
server error", and afterwards it still completes a digit prompt for a well-behaved client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from relaykit import Call, Consumer, RelayServer

PROJECT, TOKEN = "fuzz-project", "fuzz-token"  # the fuzzers' project
HEALTH, HEALTH_TOKEN = "health-project", "health-token"  # a well-behaved IVR beside them

_METHODS = [
    "blade.connect",
    "blade.execute",
    "blade.subscription",
    "blade.ping",
    "blade.broadcast",
    "blade.disconnect",
    "blade.nope",
    "",
    "calling.answer",
]
_EXECUTE_METHODS = [
    "setup",
    "signalwire.receive",
    "calling.answer",
    "calling.end",
    "calling.play",
    "calling.play.stop",
    "calling.play.volume",
    "calling.play_and_collect",
    "calling.play_and_collect.stop",
    "calling.play_and_collect.volume",
    "calling.frobnicate",
]
_ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    10**400,
    -(10**30),
    float("1e308"),
    "",
    "x" * 5000,
    "\u202e\u0000\ud7ff",
    [],
    {},
    [[[[[]]]]],
    {"a": {"b": {"c": {}}}},
    "NaN",
    "200",
    -41,
    41,
]


@dataclass
class Report:
    sent: int = 0
    replies: int = 0
    errors: int = 0
    internal_errors: int = 0
    duplicate_replies: int = 0  # two replies to one request id
    unanswered: int = 0  # requests (a method and a unique id) that got no reply
    closes: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    healthy: bool = False


def _valid_messages(protocol: str, call_id: str) -> list[dict[str, Any]]:
    ref = {"call_id": call_id, "node_id": "n"}
    silence = [{"type": "silence", "params": {"duration": 0.1}}]
    return [
        {"method": "blade.ping", "params": {}},
        {
            "method": "blade.execute",
            "params": {
                "protocol": protocol,
                "method": "calling.play",
                "params": {**ref, "control_id": "c", "play": silence},
            },
        },
        {
            "method": "blade.execute",
            "params": {
                "protocol": protocol,
                "method": "calling.play_and_collect",
                "params": {
                    **ref,
                    "control_id": "p",
                    "play": silence,
                    "collect": {"digits": {"max": 2}},
                    "volume": 3,
                },
            },
        },
        {
            "method": "blade.execute",
            "params": {
                "protocol": protocol,
                "method": "calling.play_and_collect.volume",
                "params": {**ref, "control_id": "p", "volume": -6},
            },
        },
        {
            "method": "blade.subscription",
            "params": {"command": "add", "protocol": protocol, "channels": ["notifications"]},
        },
    ]


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict) and value and rng.random() < 0.8:
        value = dict(value)
        key = rng.choice(list(value))
        action = rng.random()
        if action < 0.3:
            del value[key]
        elif action < 0.6:
            value[key] = rng.choice(_ODD_VALUES)
        else:
            value[key] = _mutate(rng, value[key], depth + 1)
        if rng.random() < 0.1:
            value[rng.choice(["extra", "id", "jsonrpc", "method"])] = rng.choice(_ODD_VALUES)
        return value
    if isinstance(value, list) and value and rng.random() < 0.7:
        value = list(value)
        i = rng.randrange(len(value))
        value[i] = _mutate(rng, value[i], depth + 1)
        return value
    return rng.choice(_ODD_VALUES) if rng.random() < 0.5 else value


def _frame(rng: random.Random, templates: list[dict[str, Any]], n: int) -> str | bytes:
    roll = rng.random()
    if roll < 0.04:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if roll < 0.08:
        return rng.choice(["{", "[]", "null", '"x"', '{"jsonrpc":', "\x00" * 10, ""])
    if roll < 0.10:
        return "[" * 5000 + "]" * 5000
    if roll < 0.12:
        return json.dumps(
            {"jsonrpc": "2.0", "id": n, "method": "blade.ping", "params": {"nested": _deep(200)}}
        )
    message = _mutate(rng, rng.choice(templates))
    envelope: dict[str, Any] = {"jsonrpc": "2.0", "id": f"f{n}"}
    if isinstance(message, dict):
        envelope.update(message)
    else:
        envelope["params"] = message
    if rng.random() < 0.05:
        envelope["id"] = rng.choice(_ODD_VALUES)
    if rng.random() < 0.05:
        envelope["method"] = rng.choice(_METHODS)
    if rng.random() < 0.05 and isinstance(envelope.get("params"), dict):
        envelope["params"]["method"] = rng.choice(_EXECUTE_METHODS)
    return json.dumps(envelope, allow_nan=True)


def _expects_reply(frame: str | bytes) -> bool:
    """A frame that is a request with its own unique id ("f<n>") must get exactly one reply."""
    if isinstance(frame, bytes):
        return False
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError):
        return False
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("id"), str)
        and obj["id"].startswith("f")
        and "method" in obj
    )


def _deep(levels: int) -> Any:
    value: Any = {}
    for _ in range(levels):
        value = {"a": value}
    return value


async def _handshake(ws) -> str:
    async def call(method: str, params: dict[str, Any]) -> dict[str, Any]:
        await ws.send(
            json.dumps({"jsonrpc": "2.0", "id": method, "method": method, "params": params})
        )
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("id") == method:
                return reply

    await call("blade.connect", {"authentication": {"project": PROJECT, "token": TOKEN}})
    setup = await call("blade.execute", {"protocol": "signalwire", "method": "setup", "params": {}})
    return setup["result"]["result"]["protocol"]


async def _fuzz_connection(
    server: RelayServer, rng: random.Random, count: int, index: int, report: Report
) -> None:
    """One hostile client of the fuzz project, with a call of its own to aim at."""
    async with connect(server.url, max_size=None) as ws:
        protocol = await _handshake(ws)
        context = f"fuzz{index}"
        for request_id, method, params in (
            (
                "rx",
                "blade.execute",
                {
                    "protocol": protocol,
                    "method": "signalwire.receive",
                    "params": {"contexts": [context]},
                },
            ),
            (
                "sub",
                "blade.subscription",
                {"command": "add", "protocol": protocol, "channels": ["notifications"]},
            ),
        ):
            await ws.send(
                json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            )
        caller = await server.dial_in(context=context, project=PROJECT, timeout=10)
        templates = _valid_messages(protocol, caller.call_id)
        seen: set[Any] = set()

        async def reader() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                if "method" in msg:
                    continue  # broadcasts and pings
                if msg.get("id") == "last":
                    seen.add("last")
                report.replies += 1
                reply_id = msg.get("id")
                if isinstance(reply_id, str) and reply_id.startswith("f"):
                    if reply_id in seen:
                        report.duplicate_replies += 1
                    seen.add(reply_id)
                if "error" in msg:
                    report.errors += 1
                    assert isinstance(msg["error"].get("message"), str)
                    if "internal server error" in msg["error"]["message"]:
                        report.internal_errors += 1

        task = asyncio.create_task(reader())
        expected: set[str] = set()
        try:
            for n in range(count):
                frame = _frame(rng, templates, n)
                await ws.send(frame)
                report.sent += 1
                if _expects_reply(frame):
                    expected.add(f"f{n}")
                if n % 50 == 0:
                    await asyncio.sleep(0.01)  # stay under the request-rate limit's burst
            await ws.send(
                json.dumps({"jsonrpc": "2.0", "id": "last", "method": "blade.ping", "params": {}})
            )
            for _ in range(100):  # until the last ping is answered: everything before it is
                if "last" in seen:
                    break
                await asyncio.sleep(0.05)
            report.unanswered += len(expected - seen)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            report.closes[code] = report.closes.get(code, 0) + 1
        finally:
            task.cancel()


async def fuzz(messages: int = 10_000, seed: int = 1, connections: int = 4) -> Report:
    """Send ``messages`` hostile frames over ``connections`` sockets; return what happened."""
    rng = random.Random(seed)
    report = Report()
    started = time.monotonic()
    async with RelayServer(
        credentials={PROJECT: TOKEN, HEALTH: HEALTH_TOKEN},
        record_calls=False,
        max_request_rate=10_000,
        max_request_burst=20_000,
    ) as server:
        results: asyncio.Queue = asyncio.Queue()

        class Ivr(Consumer):
            contexts = ("office",)

            async def on_incoming_call(self, call: Call) -> None:
                await call.answer()
                # waits out the whole fuzz run (seconds on a loaded machine) for the keys
                result = await call.prompt_tts(
                    "digits", "Enter two digits", digits_max=2, initial_timeout=120
                )
                results.put_nowait(result.result)

        ivr = Ivr(project=HEALTH, token=HEALTH_TOKEN, url=server.url)
        ivr_task = asyncio.create_task(ivr.serve())
        try:
            caller = await server.dial_in(context="office", project=HEALTH, timeout=10)
            await caller.wait_answered(10)
            per = messages // connections
            await asyncio.gather(
                *(
                    _fuzz_connection(server, random.Random(rng.random()), per, i, report)
                    for i in range(connections)
                )
            )
            await caller.press("42")
            report.healthy = await asyncio.wait_for(results.get(), 15) == "42"
        finally:
            await ivr.stop()
            await ivr_task
    report.seconds = time.monotonic() - started
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    report = asyncio.run(fuzz(args.messages, args.seed))
    print(report)
    ok = (
        report.healthy
        and not report.internal_errors
        and not report.duplicate_replies
        and not report.unanswered
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
