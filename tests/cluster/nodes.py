"""Real processes for the multi-node tests: nats-server, relaykit nodes, Kamailio, on loopback.

Every process is started here as a subprocess, reports the address it picked (nothing binds
a "free" port first), and is ended by its PID with a time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

LOOPBACK = "127.0.0.1"
PROJECT, TOKEN = "cluster-project", "cluster-token"
OTHER_PROJECT, OTHER_TOKEN = "other-project", "other-token"
START_TIMEOUT = 60.0  # a node imports numpy and the media engine; the box may be busy
EVENTUALLY = 30.0  # generous bound for "eventually" on a loaded 2-core machine


def require(binary: str, package: str) -> str:
    """The binary's path (also in /usr/sbin, off a plain user's PATH); a CI run fails without
    it, a local run skips with the reason."""
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/local/sbin")
    if path is None:
        message = f"{binary} is not installed: apt-get install -y --no-install-recommends {package}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (.ci/run installs it)")
        pytest.skip(message)
    return path


def require_nats_py() -> None:
    """nats-py (the extra relaykit[cluster], in relaykit[test]): fail in CI, skip elsewhere."""
    try:
        import nats  # noqa: F401
    except ImportError:
        message = "the cluster tests need nats-py: pip install -e '.[test]'"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


async def eventually(check: Callable[[], Any], what: str, timeout: float = EVENTUALLY) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.1)


class Process:
    """A subprocess whose output is kept (and scanned for the address it reports)."""

    def __init__(self, name: str, args: list[str], *, cwd: Path, env: dict[str, str] | None = None):
        self.name = name
        self.args = args
        self.cwd = cwd
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.output = bytearray()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.args,
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # a signal to the test run does not reach it
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while chunk := await self.proc.stdout.read(4096):
            self.output += chunk

    @property
    def log(self) -> str:
        return self.output.decode(errors="replace")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def wait_for(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """The first match of ``pattern`` in the output (the process must stay up)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = re.search(pattern, self.log)
            if found:
                return found
            if not self.running:
                raise RuntimeError(f"{self.name} exited:\n{self.log[-4000:]}")
            if loop.time() > deadline:
                raise TimeoutError(f"{self.name} never printed {pattern!r}:\n{self.log[-4000:]}")
            await asyncio.sleep(0.05)

    def send_signal(self, signum: int) -> None:
        if self.running:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signum)

    async def kill(self) -> None:
        """SIGKILL, as a crash: nothing is cleaned up."""
        self.send_signal(signal.SIGKILL)
        await self.wait(5)

    async def wait(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), timeout)
        return self.proc.returncode

    async def stop(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """End it by its PID: ``signum``, then SIGKILL after ``timeout``."""
        if self.proc is None:
            return
        self.send_signal(signum)
        if await self.wait(timeout) is None:
            self.send_signal(signal.SIGKILL)
            await self.wait(5)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 2)


class NatsServer(Process):
    """nats-server with JetStream, on a port it picks."""

    def __init__(self, tmp: Path) -> None:
        binary = require("nats-server", "nats-server")
        store = tmp / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        super().__init__(
            "nats-server",
            [binary, "-a", LOOPBACK, "-p", "-1", "-js", "-sd", str(store)],
            cwd=tmp,
        )
        self.url = ""

    async def start(self) -> None:
        await super().start()
        found = await self.wait_for(r"Listening for client connections on [\d.]+:(\d+)")
        self.url = f"nats://{LOOPBACK}:{found.group(1)}"
        await self.wait_for(r"Server is ready")

    async def start_again(self) -> None:
        """Start once more on the port it had (JetStream's files kept), after :meth:`stop`."""
        port = self.url.rsplit(":", 1)[1]
        self.args = [*self.args[:4], port, *self.args[5:]]
        self.output = bytearray()
        await Process.start(self)
        await self.wait_for(r"Server is ready")


class Node(Process):
    """``relaykit serve --cluster`` in its own process."""

    def __init__(
        self,
        node_id: str,
        nats_url: str,
        tmp: Path,
        *,
        sip: bool = False,
        routes: tuple[str, ...] = (),
        kamailio_rpc: str | None = None,
        resume_grace: float | None = None,
    ) -> None:
        credentials = tmp / f"{node_id}-credentials.json"
        credentials.write_text(json.dumps({PROJECT: TOKEN, OTHER_PROJECT: OTHER_TOKEN}))
        args = [
            sys.executable, "-m", "relaykit", "serve",
            "--host", LOOPBACK, "--port", "0",
            "--credentials", str(credentials),
            "--cluster", nats_url, "--node-id", node_id,
        ]  # fmt: skip
        if sip:
            args += ["--sip", f"{LOOPBACK}:0"]
        for route in routes:
            args += ["--route", route]
        if kamailio_rpc:
            args += ["--kamailio-rpc", kamailio_rpc]
        if resume_grace is not None:
            args += ["--resume-grace", str(resume_grace)]
        env = {**os.environ, "COLUMNS": "300", "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
        super().__init__(node_id, args, cwd=tmp, env=env)
        self.node_id = node_id
        self.url = ""
        self.sip_port = 0

    async def start(self) -> None:
        await super().start()
        found = await self.wait_for(r"listening on (ws://[\d.]+:\d+)")
        self.url = found.group(1)
        if "--sip" in self.args:
            self.sip_port = int((await self.wait_for(r"SIP on udp:[\d.]+:(\d+)")).group(1))
        await self.wait_for(r"on the bus")

    def status(self) -> dict[str, Any]:
        """The node's ``GET /cluster`` (peers, sessions, calls, offers it takes)."""
        http = self.url.replace("ws://", "http://") + "/cluster"
        with urllib.request.urlopen(http, timeout=5) as reply:
            return json.loads(reply.read())

    async def astatus(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.status)

    async def sees(self, *peers: str) -> bool:
        status = await self.astatus()
        return all(status["peers"].get(p, {}).get("up") for p in peers)

    async def takes(self, offer: str) -> bool:
        return offer in (await self.astatus())["offers"]


class Balancer:
    """A TCP forwarder standing for the load balancer in front of the nodes: new connections
    go to the current backend; :meth:`point` switches it (as a balancer does once a node's
    health check fails)."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"ws://{LOOPBACK}:{self.port}"

    def point(self, ws_url: str) -> None:
        self.backend = ws_url

    def cut(self) -> None:
        """Drop every connection open through it (as a balancer's restart does)."""
        for task in list(self._pipes):
            task.cancel()

    async def start(self) -> Balancer:
        self._server = await asyncio.start_server(self._accept, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self.backend.removeprefix("ws://").rsplit(":", 1)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            dst.close()


REPO = Path(__file__).resolve().parents[2]
KAMAILIO_CFG = REPO / "deploy" / "kamailio" / "kamailio.cfg"


def free_udp_port() -> int:
    """A UDP port free now, for Kamailio (it cannot pick its own); callers retry on conflict."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class Kamailio(Process):
    """Kamailio with the shipped ``deploy/kamailio/kamailio.cfg``, as a non-daemon, with its
    own runtime dir, dispatching to the given relaykit nodes' SIP ports."""

    def __init__(self, tmp: Path, node_sip_ports: list[int], rpc_port: int) -> None:
        binary = require("kamailio", "kamailio")
        self.run_dir = tmp / "kamailio"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.nodes_list = self.run_dir / "nodes.list"
        self.nodes_list.write_text("".join(f"1 sip:{LOOPBACK}:{p}\n" for p in node_sip_ports))
        self.rpc_port = rpc_port
        self.sip_port = 0
        self.binary = binary
        super().__init__("kamailio", [], cwd=tmp)

    async def start(self) -> None:
        from relaykit.cluster.kamailio import KamailioRpc

        for _attempt in range(5):
            self.sip_port = free_udp_port()
            self.args = [
                self.binary, "-DD", "-E",
                "-f", str(KAMAILIO_CFG),
                "-Y", str(self.run_dir),
                "-A", f"SIP_LISTEN=udp:{LOOPBACK}:{self.sip_port}",
                "-A", f'DISPATCHER_LIST="{self.nodes_list}"',
                "-A", f'RPC_SOCKET="udp:{LOOPBACK}:{self.rpc_port}"',
            ]  # fmt: skip
            self.output = bytearray()
            await super().start()
            rpc = KamailioRpc((LOOPBACK, self.rpc_port), timeout=0.5)
            for _ in range(100):
                if not self.running:
                    break  # a port was taken meanwhile: try others
                with contextlib.suppress(TimeoutError, OSError, RuntimeError):
                    await rpc.call("core.version")
                    return
                await asyncio.sleep(0.1)
            await self.stop()
        raise RuntimeError(f"kamailio did not start:\n{self.log[-4000:]}")

    async def rpc(self, method: str, *params: Any) -> Any:
        from relaykit.cluster.kamailio import KamailioRpc

        return await KamailioRpc((LOOPBACK, self.rpc_port)).call(method, *params)

    async def active_nodes(self) -> set[int]:
        """SIP ports of the nodes the dispatcher sends calls to (answering their probes)."""
        listed = await self.rpc("dispatcher.list")
        ports: set[int] = set()
        for record in listed.get("RECORDS", []):
            for target in record["SET"]["TARGETS"]:
                dest = target["DEST"]
                if dest["FLAGS"].startswith("A"):
                    ports.add(int(dest["URI"].rsplit(":", 1)[1]))
        return ports
