"""Fixtures of the multi-node tests: a fresh nats-server per test, nodes started on demand."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest_asyncio

from tests.cluster.nodes import Balancer, NatsServer, Node, require_nats_py


@pytest_asyncio.fixture
async def nats(tmp_path: Path) -> AsyncIterator[NatsServer]:
    require_nats_py()
    server = NatsServer(tmp_path)
    try:
        await server.start()
        yield server
    finally:
        await server.stop(signal.SIGTERM)


StartNodes = Callable[..., Awaitable[list[Node]]]


@pytest_asyncio.fixture
async def start_nodes(nats: NatsServer, tmp_path: Path) -> AsyncIterator[StartNodes]:
    """``await start_nodes("n1", "n2", sip=True)``: nodes up and seeing each other."""
    started: list[Node] = []

    async def start(*node_ids: str, **options: Any) -> list[Node]:
        nodes = [Node(node_id, nats.url, tmp_path, **options) for node_id in node_ids]
        started.extend(nodes)
        await asyncio.gather(*(node.start() for node in nodes))
        everyone = [n.node_id for n in started if n.running]
        for node in nodes:
            others = [p for p in everyone if p != node.node_id]
            await _until(lambda n=node, o=others: n.sees(*o), f"{node.node_id} sees {others}")
        return nodes

    yield start
    # SIGINT: a graceful stop (calls ended, records dropped); SIGKILL if it takes too long
    await asyncio.gather(*(node.stop(signal.SIGINT) for node in started))


@pytest_asyncio.fixture
async def balancer() -> AsyncIterator[Callable[[str], Awaitable[Balancer]]]:
    opened: list[Balancer] = []

    async def open_balancer(backend: str) -> Balancer:
        forwarder = await Balancer(backend).start()
        opened.append(forwarder)
        return forwarder

    yield open_balancer
    for forwarder in opened:
        await forwarder.stop()


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    from tests.cluster.nodes import eventually

    await eventually(check, what)
