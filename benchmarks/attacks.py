"""Attacks on a running relaykit server, each beside another tenant's PIN calls.

    python -m benchmarks.attacks                      # every attack, about five minutes
    python -m benchmarks.attacks --only idle,guess --calls 5

Each attack gets a fresh ``relaykit serve`` (its default limits) with two projects: ``mallory``,
whose token the attacker holds, and ``victim``. The victim's IVR (relaykit SDK, in this process)
answers PIN calls that a ``/caller`` client places: it waits for the prompt, presses 1234# and
waits for the IVR to hang up. First ``--calls`` PIN calls run alone (the baseline), then the
attack starts in a process of its own, from other loopback addresses (127.0.0.64 and up: other
machines, as far as the server knows), and after ``--warmup`` seconds ``--calls`` more PIN calls
run beside it. Printed per attack: the server's RSS before and at its peak during the attack,
the PIN calls' times (dial to hang-up; and dial to the PIN prompt listening) against the
baseline, and what the attacker got.

The attacks (project issue 20):

* ``echo``: clients that never read send frames whose error replies would echo a 60 kB id
  (before logging in) or a 900 kB method name (logged in as mallory).
* ``caller``: ``/caller`` clients that never read ask for their call's recording again and again.
* ``contexts``: mallory sessions ``signalwire.receive`` a thousand new contexts per request.
* ``idle``: 2000 WebSocket connections that never log in, from 32 addresses, opened at 100 a
  second and each reopened when closed.
* ``guess``: 1000 parallel guesses of the victim's token, with valid mallory logins among them;
  a guess refused with 1013 (try again later) is retried after a backoff (1 s, doubling up to
  30 s, as the SDK reconnects).
* ``flood``: mallory logs in and drops, 50 logins a second, 200 at a time; mallory's own new
  clients keep logging in beside them.

The connection attacks are paced as the issue's were (2000 idle sockets in 70 s). Unpaced, a
connection storm is a contest of CPU with the attacker on the same two cores (each connection
costs the server about 3 ms of CPU in websockets' handshake and close): rate-limit new
connections in front of the server (a proxy or firewall) against that.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

MALLORY, MALLORY_TOKEN = "mallory", "mallory-token"
VICTIM, VICTIM_TOKEN = "victim", "victim-token"
ATTACKS = ("echo", "caller", "contexts", "idle", "guess", "flood")
WARMUP = {"idle": 22.0}  # seconds of attack before the PIN calls (idle: until 2000 are open)
RSS_BOUND_MB = 200  # the stated bound: peak RSS growth of the server under any one attack
LATENCY_BOUND = 2.0  # the stated bound: PIN call time under attack / baseline


# -- the server and its memory --------------------------------------------------------------------
def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssWatch:
    """Samples a process's RSS every 20 ms in a thread; ``peak()`` since the last ``reset()``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with contextlib.suppress(OSError):
                self._peak = max(self._peak, rss_kib(self.pid))

    def reset(self) -> None:
        self._peak = rss_kib(self.pid)

    def peak(self) -> int:
        return self._peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def start_server(credentials: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relaykit", "serve", "--port", "0",
        "--credentials", str(credentials),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    found = re.search(r"ws://[0-9.]+:\d+", line)
    if found is None:
        raise RuntimeError(f"relaykit serve did not start: {line!r}")
    return proc, found.group(0)


async def stop_process(proc: asyncio.subprocess.Process, timeout: float = 20.0) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# -- the victim: a PIN IVR and its callers --------------------------------------------------------
def victim_ivr(url: str) -> Any:
    from relaykit import Call, Consumer

    class PinIvr(Consumer):
        contexts = ("pin",)

        def __init__(self) -> None:
            super().__init__(project=VICTIM, token=VICTIM_TOKEN, url=url)
            self.accepted = 0

        async def on_incoming_call(self, call: Call) -> None:
            await call.answer()
            result = await call.prompt_tts(
                "digits",
                "Enter your PIN",
                digits_max=8,
                digits_terminators="#",
                initial_timeout=20,
                digits_timeout=5,
            )
            if result.result == "1234":
                self.accepted += 1
            await call.hangup()

    return PinIvr()


@dataclass
class PinCall:
    seconds: float | None = None  # dial to hang-up
    prompt: float | None = None  # dial to the PIN prompt listening (answer, TTS, play)
    error: str | None = None


async def pin_call(url: str) -> PinCall:
    from relaykit.testing.remote import RemoteCaller

    began = time.monotonic()
    try:
        async with RemoteCaller(url, VICTIM, VICTIM_TOKEN, open_timeout=30) as caller:
            await caller.dial("pin", timeout=30)
            await caller.wait_listening(30)
            listening = time.monotonic()
            await caller.press("1234#")
            await caller.expect_hangup(30)
            done = time.monotonic()
    except Exception as exc:
        return PinCall(error=f"{type(exc).__name__}: {exc}"[:120])
    return PinCall(done - began, listening - began)


# -- one attack beside the victim -----------------------------------------------------------------
@dataclass
class Row:
    attack: str
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    baseline: list[PinCall] = field(default_factory=list)
    attacked: list[PinCall] = field(default_factory=list)
    attacker: dict[str, Any] = field(default_factory=dict)
    pins_accepted: int = 0

    @staticmethod
    def _median(calls: list[PinCall], attr: str) -> float | None:
        values = [getattr(c, attr) for c in calls if getattr(c, attr) is not None]
        return statistics.median(values) if values else None

    def ratio(self, attr: str = "seconds") -> float | None:
        base, under = self._median(self.baseline, attr), self._median(self.attacked, attr)
        if base is None or under is None or any(c.error for c in self.attacked):
            return None
        return under / base

    @property
    def ok(self) -> bool:
        ratio = self.ratio()
        return (
            ratio is not None
            and ratio <= LATENCY_BOUND
            and self.rss_peak_mb - self.rss_before_mb <= RSS_BOUND_MB
        )


async def run_attack(name: str, calls: int, warmup: float, workdir: Path) -> Row:
    credentials = workdir / "credentials.json"
    credentials.write_text(json.dumps({MALLORY: MALLORY_TOKEN, VICTIM: VICTIM_TOKEN}))
    server, url = await start_server(credentials)
    watch = RssWatch(server.pid or 0)
    row = Row(name)
    ivr = victim_ivr(url)
    ivr_task = asyncio.create_task(ivr.serve())
    attacker: asyncio.subprocess.Process | None = None
    try:
        row.baseline = [await pin_call(url) for _ in range(calls)]
        row.rss_before_mb = rss_kib(server.pid or 0) / 1024
        watch.reset()
        attacker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.attacks", "--attacker", name, "--url", url,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await asyncio.sleep(warmup)
        row.attacked = [await pin_call(url) for _ in range(calls)]
        attacker.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(attacker.communicate(), 60)
        row.attacker = json.loads(out.decode().strip().splitlines()[-1])
        row.rss_peak_mb = watch.peak() / 1024
        row.pins_accepted = ivr.accepted
    finally:
        watch.stop()
        if attacker is not None and attacker.returncode is None:
            attacker.kill()
            await attacker.wait()
        await ivr.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ivr_task, 20)
        await stop_process(server)
    return row


# -- the attacker process -------------------------------------------------------------------------
class Attacker:
    """Runs one attack until SIGTERM; counts what it got."""

    def __init__(self, url: str, addresses: int) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.addresses = [f"127.0.0.{64 + i}" for i in range(addresses)]
        self.counts: Counter[str] = Counter()
        self.stopping = asyncio.Event()
        self.began = time.monotonic()
        self.pace: float | None = None  # new connections per second, if paced
        self._next_open = 0.0

    def address(self, i: int) -> str:
        return self.addresses[i % len(self.addresses)]

    async def open(self, i: int, path: str = "", *, reading: bool = True) -> ClientConnection:
        """A WebSocket from address ``i``; one that does not read keeps a tiny receive window."""
        if self.pace is not None:
            now = time.monotonic()
            at = max(now, self._next_open)
            self._next_open = at + 1 / self.pace
            await asyncio.sleep(at - now)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            if not reading:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.bind((self.address(i), 0))
            await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
            return await connect(
                self.url + path,
                sock=sock,
                max_queue=16 if reading else 1,
                max_size=None,
                ping_interval=None,
                open_timeout=20,
                compression=None,
            )
        except BaseException:
            sock.close()
            raise

    async def forever(self, task: Callable[[int], Awaitable[None]], count: int) -> None:
        """Run ``count`` copies of ``task(i)``, each restarted when it ends, until stopped."""

        async def loop(i: int) -> None:
            while not self.stopping.is_set():
                try:
                    await task(i)
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd is not None else 1006
                    self.counts[f"closed {code}"] += 1
                except (OSError, TimeoutError) as exc:
                    self.counts[type(exc).__name__] += 1
                    await asyncio.sleep(0.05)

        tasks = [asyncio.create_task(loop(i)) for i in range(count)]
        await self.stopping.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def call(self, ws: ClientConnection, method: str, params: dict[str, Any]) -> Any:
        request_id = str(uuid.uuid4())
        await ws.send(
            json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        )
        while True:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if reply.get("id") == request_id:
                return reply

    async def login(self, ws: ClientConnection, project: str, token: str) -> dict[str, Any]:
        auth = {"authentication": {"project": project, "token": token}}
        reply: dict[str, Any] = await self.call(ws, "blade.connect", auth)
        return reply

    async def setup(self, ws: ClientConnection) -> str:
        setup = await self.call(
            ws, "blade.execute", {"protocol": "signalwire", "method": "setup", "params": {}}
        )
        return str(setup["result"]["result"]["protocol"])

    # -- the attacks ------------------------------------------------------------------------------
    async def echo(self) -> None:
        async def before_login(i: int) -> None:
            ws = await self.open(i, reading=False)
            frame = json.dumps({"jsonrpc": "2.0", "id": "i" * 60_000, "method": "m", "params": 1})
            try:
                while not self.stopping.is_set():
                    await ws.send(frame)
                    self.counts["frames before login"] += 1
            finally:
                await ws.close()

        async def logged_in(i: int) -> None:
            ws = await self.open(i, reading=False)
            try:
                assert "result" in await self.login(ws, MALLORY, MALLORY_TOKEN)
                frame = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "m" * 900_000})
                while not self.stopping.is_set():
                    await ws.send(frame)
                    self.counts["frames logged in"] += 1
            finally:
                await ws.close()

        await asyncio.gather(self.forever(before_login, 16), self.forever(logged_in, 4))

    async def caller(self) -> None:
        from relaykit import Call, Consumer

        class Answer(Consumer):
            contexts = ("m",)

            async def on_incoming_call(self, call: Call) -> None:
                await call.answer()
                await call.wait_for_ended()

        ivr = Answer(project=MALLORY, token=MALLORY_TOKEN, url=self.url)
        ivr_task = asyncio.create_task(ivr.serve())

        async def flood(i: int) -> None:
            ws = await self.open(i, "/caller", reading=False)
            try:
                for n, (method, params) in enumerate(
                    [
                        ("auth", {"project": MALLORY, "token": MALLORY_TOKEN}),
                        ("dial", {"context": "m", "timeout": 20}),
                        ("wait_answered", {"timeout": 20}),
                        ("silence", {"seconds": 3}),
                    ]
                ):
                    await ws.send(json.dumps({"id": n, "method": method, "params": params}))
                    while json.loads(await asyncio.wait_for(ws.recv(), 30)).get("id") != n:
                        pass
                for n in range(200):  # and never read the replies
                    await ws.send(json.dumps({"id": 10 + n, "method": "recording"}))
                    self.counts["recordings asked"] += 1
                await ws.wait_closed()
            finally:
                await ws.close()

        try:
            await self.forever(flood, 4)
        finally:
            await ivr.stop()
            await asyncio.gather(ivr_task, return_exceptions=True)

    async def contexts(self) -> None:
        async def receive(i: int) -> None:
            ws = await self.open(i)
            try:
                reply = await self.login(ws, MALLORY, MALLORY_TOKEN)
                if "result" not in reply:
                    self.counts["logins refused"] += 1
                    await asyncio.sleep(0.5)
                    return
                protocol = await self.setup(ws)
                while not self.stopping.is_set():
                    names = [f"{uuid.uuid4().hex}{n:06d}" for n in range(1000)]
                    params = {
                        "protocol": protocol,
                        "method": "signalwire.receive",
                        "params": {"contexts": names},
                    }
                    reply = await self.call(ws, "blade.execute", params)
                    self.counts[f"receive {reply['result']['result']['code']}"] += 1
            finally:
                await ws.close()

        await self.forever(receive, 50)

    async def idle(self) -> None:
        async def hold(i: int) -> None:
            ws = await self.open(i)
            self.counts["opened"] += 1
            try:
                await ws.wait_closed()
                code = ws.close_code if ws.close_code is not None else 1006
                self.counts[f"closed {code}"] += 1
            finally:
                await ws.close()

        self.pace = 100.0
        await self.forever(hold, 2000)

    async def guess(self) -> None:
        backoff = [1.0] * 1000

        async def attempt(i: int) -> None:
            ws = await self.open(i)
            try:
                if i % 20 == 0:  # a valid login of mallory's between the guesses
                    reply = await self.login(ws, MALLORY, MALLORY_TOKEN)
                    self.counts["mallory logins" if "result" in reply else "mallory refused"] += 1
                    return
                reply = await self.login(ws, VICTIM, uuid.uuid4().hex)
                backoff[i] = 1.0
                if "result" in reply:
                    self.counts["guessed right"] += 1
                else:
                    self.counts["guesses answered wrong"] += 1
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else 1006
                self.counts[f"guess closed {code} unanswered"] += 1
                if code == 1013:  # try again later: as clients do, back off (a guesser learns
                    await asyncio.sleep(backoff[i])  # nothing by hammering)
                    backoff[i] = min(backoff[i] * 2, 30.0)
            finally:
                await ws.close()

        await self.forever(attempt, 1000)

    async def flood(self) -> None:
        async def churn(i: int) -> None:
            ws = await self.open(i)
            try:
                reply = await self.login(ws, MALLORY, MALLORY_TOKEN)
                self.counts["flood logins" if "result" in reply else "flood refused"] += 1
            finally:
                await ws.close()

        async def real_client() -> None:
            while not self.stopping.is_set():
                try:
                    ws = await self.open(0)
                    try:
                        ok = "result" in await self.login(ws, MALLORY, MALLORY_TOKEN)
                    finally:
                        await ws.close()
                except (OSError, TimeoutError, ConnectionClosed):
                    ok = False
                self.counts["real client in" if ok else "real client refused"] += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 0.5)

        self.pace = 50.0
        await asyncio.gather(self.forever(churn, 200), real_client())

    async def run(self, name: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        await getattr(self, name)()
        seconds = time.monotonic() - self.began
        result: dict[str, Any] = dict(self.counts)
        result["seconds"] = round(seconds, 1)
        return result


def attacker_main(name: str, url: str) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1 << 20), hard))
    addresses = 32 if name == "idle" else 4
    result = asyncio.run(Attacker(url, addresses).run(name))
    print(json.dumps(result), flush=True)


# -- the report ------------------------------------------------------------------------------------
def _fmt(value: float | None, unit: str = "s") -> str:
    return "failed" if value is None else f"{value:.2f} {unit}".strip()


def report(rows: list[Row]) -> str:
    lines = [
        "# relaykit under attack",
        "",
        f"Bounds: the victim's PIN call within {LATENCY_BOUND:g}x its baseline; the server's",
        f"peak RSS at most {RSS_BOUND_MB} MB above its RSS before the attack.",
        "",
        "| attack | server RSS before → peak | PIN call: baseline → attacked (ratio) "
        "| dial → prompt listening (ratio) | PINs ok | within bounds |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        base = Row._median(row.baseline, "seconds")
        under = Row._median(row.attacked, "seconds")
        key_base = Row._median(row.baseline, "prompt")
        key_under = Row._median(row.attacked, "prompt")
        ratio, key_ratio = row.ratio(), row.ratio("prompt")
        errors = [c.error for c in row.attacked if c.error]
        lines.append(
            f"| {row.attack} | {row.rss_before_mb:.0f} → {row.rss_peak_mb:.0f} MB "
            f"| {_fmt(base)} → {_fmt(under)} ({_fmt(ratio, 'x')}) "
            f"| {_fmt(key_base)} → {_fmt(key_under)} ({_fmt(key_ratio, 'x')}) "
            f"| {row.pins_accepted}/{len(row.baseline) + len(row.attacked)} "
            f"| {'yes' if row.ok else 'NO'}{'; ' + errors[0] if errors else ''} |"
        )
    lines += ["", "What the attacker got:", ""]
    for row in rows:
        got = ", ".join(f"{k}: {v}" for k, v in sorted(row.attacker.items()))
        lines.append(f"* {row.attack}: {got}")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            print(f"attack {name} ...", file=sys.stderr, flush=True)
            warmup = args.warmup if args.warmup is not None else WARMUP.get(name, 5.0)
            rows.append(await run_attack(name, args.calls, warmup, Path(tmp)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(ATTACKS), help="attacks, comma-separated")
    parser.add_argument("--calls", type=int, default=3, help="PIN calls alone, then attacked")
    parser.add_argument(
        "--warmup", type=float, help="seconds of attack before the PIN calls (5; idle: 22)"
    )
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    parser.add_argument("--attacker", choices=ATTACKS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attacker:
        attacker_main(args.attacker, args.url)
        return
    unknown = set(args.only.split(",")) - set(ATTACKS)
    if unknown:
        parser.error(f"unknown attacks {', '.join(sorted(unknown))}; known: {', '.join(ATTACKS)}")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    rows = asyncio.run(main_async(args))
    print(report(rows))
    if args.json is not None:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], default=vars, indent=1))
    sys.exit(0 if all(row.ok for row in rows) else 1)


if __name__ == "__main__":
    main()
