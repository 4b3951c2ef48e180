"""Cluster figures: several ``relaykit serve --cluster`` processes on one nats-server.

    python -m benchmarks.cluster            # the full run (a few minutes)
    python -m benchmarks.cluster --quick    # a small one (< 1 min)

Measures, with a bare RELAY client (no SDK) so only the server side is timed:

- command round trip (``calling.play.volume`` on a running play) for a call on the client's own
  node and for one on another node: p50/p99 and their ratio;
- call set-ups per second (dial through ``/caller``, offer, the consumer's ``calling.end``), the
  call born on the consumer's node or on another;
- time from SIGKILL of a call's node to the consumer's ``ended``;
- a consumer whose node is killed: events it missed, replayed on another node, and how long the
  resume takes (connect to last missed event).

Every process shares the machine's two cores: these are correctness-scale figures, not capacity
(see docs/cluster.md for the paper estimate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from benchmarks._common import machine, percentile
from relaykit.testing.remote import RemoteCaller
from tests.cluster.nodes import PROJECT, TOKEN, Balancer, NatsServer, Node, eventually

CONTEXT = "bench"
PLACES = ("same node", "other node")


class Bare:
    """A bare RELAY v2 consumer: handshake, contexts, requests with replies, events queued."""

    def __init__(self) -> None:
        self.ws: ClientConnection | None = None
        self.protocol = ""
        self.sessionid: str | None = None
        self.restored = False
        self.events: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def connect(self, url: str, contexts: list[str]) -> None:
        self.ws = await connect(url, max_size=None)
        self._reader = asyncio.create_task(self._read())
        auth: dict[str, Any] = {
            "version": {"major": 2, "minor": 1, "revision": 0},
            "authentication": {"project": PROJECT, "token": TOKEN},
        }
        if self.sessionid:
            auth["sessionid"] = self.sessionid
        reply = await self.call("blade.connect", auth)
        self.sessionid, self.restored = reply["sessionid"], reply["session_restored"]
        setup = await self.call(
            "blade.execute", {"protocol": "signalwire", "method": "setup", "params": {}}
        )
        self.protocol = setup["result"]["protocol"]
        await self.call(
            "blade.subscription",
            {"command": "add", "protocol": self.protocol, "channels": ["notifications"]},
        )
        if contexts and not self.restored:
            await self.execute("signalwire.receive", {"contexts": contexts})

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()

    async def _read(self) -> None:
        assert self.ws is not None
        async for frame in self.ws:
            message = json.loads(frame)
            if message.get("method") == "blade.broadcast":
                inner = message["params"]["params"]
                self.events.put_nowait((time.monotonic(), inner))
            elif "id" in message and message["id"] in self._replies:
                future = self._replies.pop(message["id"])
                if not future.done():
                    future.set_result(message)

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.ws is not None
        request_id = str(uuid.uuid4())
        future = asyncio.get_running_loop().create_future()
        self._replies[request_id] = future
        await self.ws.send(
            json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        )
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result

    async def execute(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        reply = await self.call(
            "blade.execute", {"protocol": self.protocol, "method": method, "params": params}
        )
        inner: dict[str, Any] = reply["result"]
        return inner

    async def next_event(self, event_type: str, timeout: float = 30) -> tuple[float, dict]:
        while True:
            at, inner = await asyncio.wait_for(self.events.get(), timeout)
            if inner["event_type"] == event_type:
                return at, inner["params"]


async def answer_next(consumer: Bare) -> dict[str, Any]:
    """Answer the next offered call; its ids."""
    _at, offer = await consumer.next_event("calling.call.receive")
    ids = {"node_id": offer["node_id"], "call_id": offer["call_id"]}
    await consumer.execute("calling.answer", ids)
    return ids


async def long_play(consumer: Bare, ids: dict[str, Any], seconds: float = 600) -> str:
    control_id = str(uuid.uuid4())
    play = [{"type": "silence", "params": {"duration": seconds}}]
    await consumer.execute("calling.play", {**ids, "control_id": control_id, "play": play})
    return control_id


async def command_round_trips(n1: Node, n2: Node, rounds: int) -> dict[str, Any]:
    consumer = Bare()
    await consumer.connect(n1.url, [CONTEXT])
    await eventually(lambda: n1.takes(f"{PROJECT}/{CONTEXT}"), "n1 takes offers")
    callers = []
    calls = {}
    for name, node in (("same node", n1), ("other node", n2)):
        caller = RemoteCaller(node.url, PROJECT, TOKEN)
        await caller.connect()
        callers.append(caller)
        dialled = asyncio.create_task(caller.dial(CONTEXT, timeout=10))
        ids = await answer_next(consumer)
        await dialled
        calls[name] = (ids, await long_play(consumer, ids))
    times: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(rounds):
        for name, (ids, control_id) in calls.items():
            params = {**ids, "control_id": control_id, "volume": float(i % 10)}
            started = time.perf_counter()
            reply = await consumer.execute("calling.play.volume", params)
            times[name].append(time.perf_counter() - started)
            assert reply["code"] == "200", reply
    for caller in callers:
        await caller.close()
    await consumer.close()
    row: dict[str, Any] = {}
    for name, values in times.items():
        row[name] = {
            "p50_ms": round(1000 * (percentile(values, 50) or 0), 3),
            "p99_ms": round(1000 * (percentile(values, 99) or 0), 3),
        }
    row["ratio_p50"] = round(row["other node"]["p50_ms"] / row["same node"]["p50_ms"], 2)
    row["ratio_p99"] = round(row["other node"]["p99_ms"] / row["same node"]["p99_ms"], 2)
    return row


async def setups_per_second(n1: Node, born_on: Node, calls: int, parallel: int) -> float:
    consumer = Bare()
    await consumer.connect(n1.url, [CONTEXT])
    await eventually(lambda: n1.takes(f"{PROJECT}/{CONTEXT}"), "n1 takes offers")

    async def end_every_call() -> None:
        for _ in range(calls):
            _at, offer = await consumer.next_event("calling.call.receive")
            ids = {"node_id": offer["node_id"], "call_id": offer["call_id"]}
            await consumer.execute("calling.end", {**ids, "reason": "hangup"})

    gate = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with gate, RemoteCaller(born_on.url, PROJECT, TOKEN) as caller:
            await caller.dial(CONTEXT, timeout=30)
            await caller.expect_hangup(timeout=30)

    ender = asyncio.create_task(end_every_call())
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    elapsed = time.perf_counter() - started
    await ender
    await consumer.close()
    return round(calls / elapsed, 1)


async def dead_owner_detection(nats: NatsServer, n1: Node, tmp: Path, rounds: int) -> list[float]:
    seconds = []
    for i in range(rounds):
        owner = Node(f"owner{i}", nats.url, tmp)
        await owner.start()
        await eventually(lambda o=owner: n1.sees(o.node_id), "n1 sees the owner")
        consumer = Bare()
        await consumer.connect(n1.url, [CONTEXT])
        await eventually(lambda: n1.takes(f"{PROJECT}/{CONTEXT}"), "n1 takes offers")
        caller = RemoteCaller(owner.url, PROJECT, TOKEN)
        await caller.connect()
        dialled = asyncio.create_task(caller.dial(CONTEXT, timeout=10))
        ids = await answer_next(consumer)
        await dialled
        await long_play(consumer, ids)
        killed = time.monotonic()
        await owner.kill()
        while True:
            at, state = await consumer.next_event("calling.call.state", timeout=60)
            if state["call_state"] == "ended":
                seconds.append(round(at - killed, 2))
                break
        await caller.close()
        await consumer.close()
    return seconds


async def resume_replay(nats: NatsServer, tmp: Path, plays: int) -> dict[str, Any]:
    home, owner, spare = (Node(n, nats.url, tmp) for n in ("r1", "r2", "r3"))
    await asyncio.gather(home.start(), owner.start(), spare.start())
    for node in (home, owner, spare):
        await eventually(lambda n=node: n.sees(*({"r1", "r2", "r3"} - {n.node_id})), "peers")
    front = await Balancer(home.url).start()
    consumer = Bare()
    await consumer.connect(front.url, [CONTEXT])
    await eventually(lambda: home.takes(f"{PROJECT}/{CONTEXT}"), "r1 takes offers")
    caller = RemoteCaller(owner.url, PROJECT, TOKEN)
    await caller.connect()
    dialled = asyncio.create_task(caller.dial(CONTEXT, timeout=10))
    ids = await answer_next(consumer)
    await dialled
    for _ in range(plays):  # each ends while the consumer is away: one "finished" each
        await long_play(consumer, ids, seconds=1.0)
    for _ in range(plays):
        await consumer.next_event("calling.call.play")
    await home.kill()
    await consumer.close()
    front.point(spare.url)
    await asyncio.sleep(2.0)  # the plays finish meanwhile
    again = Bare()
    again.sessionid = consumer.sessionid
    started = time.monotonic()
    await again.connect(front.url, [])
    last = started
    for _ in range(plays):
        last, _event = await again.next_event("calling.call.play")
    replayed = (await spare.astatus()).get("replayed", 0)
    await again.close()
    await caller.close()
    await front.stop()
    for node in (owner, spare):
        await node.stop()
    return {
        "restored": again.restored,
        "missed_events": plays,
        "replayed": replayed,
        "resume_ms": round(1000 * (last - started), 1),
    }


async def run(quick: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="relaykit-cluster-bench-"))
    nats = NatsServer(tmp)
    await nats.start()
    n1, n2 = Node("n1", nats.url, tmp), Node("n2", nats.url, tmp)
    try:
        await asyncio.gather(n1.start(), n2.start())
        await eventually(lambda: n1.sees("n2"), "n1 sees n2")
        await eventually(lambda: n2.sees("n1"), "n2 sees n1")
        results: dict[str, Any] = {"machine": machine()}
        results["rtt"] = await command_round_trips(n1, n2, 300 if quick else 3000)
        calls = 30 if quick else 200
        results["setups_per_s"] = {
            "same node": await setups_per_second(n1, n1, calls, 10),
            "other node": await setups_per_second(n1, n2, calls, 10),
        }
        results["dead_owner_s"] = await dead_owner_detection(nats, n1, tmp, 1 if quick else 5)
        results["resume"] = await resume_replay(nats, tmp, 5 if quick else 20)
        return results
    finally:
        for node in (n1, n2):
            await node.stop()
        await nats.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def report(results: dict[str, Any]) -> str:
    rtt = results["rtt"]
    lines = [
        "## Cluster: command round trip (calling.play.volume)",
        "",
        "| call on | p50 ms | p99 ms |",
        "|---|---|---|",
        *(f"| {k} | {rtt[k]['p50_ms']} | {rtt[k]['p99_ms']} |" for k in PLACES),
        f"| ratio | {rtt['ratio_p50']} | {rtt['ratio_p99']} |",
        "",
        "## Cluster: call set-ups per second (10 at a time, consumer on n1)",
        "",
        "| call born on | set-ups/s |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in results["setups_per_s"].items()),
        "",
        "## Cluster: faults",
        "",
        f"- SIGKILL of a call's node to the consumer's `ended`: {results['dead_owner_s']} s",
        f"- resume on another node: {json.dumps(results['resume'])}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    for binary in ("nats-server",):
        if not (shutil.which(binary) or shutil.which(binary, path="/usr/sbin")):
            raise SystemExit(f"{binary} is not installed: apt-get install {binary}")
    results = asyncio.run(run(args.quick))
    print(report(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
