"""Shared fixtures: a real server on loopback, IVRs written with our SDK, raw clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect

from relaykit import Call, Consumer, RelayServer
from tests.helpers import PROJECT, TOKEN, WAIT, RawClient


@pytest_asyncio.fixture
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RelayServer]:
    # audio files the tests write under pytest's temporary folders may be played
    media_dirs = [tmp_path_factory.getbasetemp()]
    async with RelayServer(credentials={PROJECT: TOKEN}, media_dirs=media_dirs) as relay:
        yield relay


IvrHandler = Callable[[Call], Awaitable[Any]]


@pytest.fixture
def ivr_projects() -> dict[str, str]:
    """The projects ``run_ivr`` may log in to, with their tokens; the first is the default."""
    return {PROJECT: TOKEN}


@pytest_asyncio.fixture
async def run_ivr(
    server: RelayServer, ivr_projects: dict[str, str]
) -> AsyncIterator[Callable[..., Awaitable[asyncio.Queue]]]:
    """Start a Consumer whose ``on_incoming_call`` runs ``handler`` and wait until it receives
    calls on ``contexts``; returns a queue of the handler's outcomes (or exceptions)."""
    running: list[tuple[Consumer, asyncio.Task[None]]] = []

    async def start(
        handler: IvrHandler,
        contexts: tuple[str, ...] = ("office",),
        project: str | None = None,
    ) -> asyncio.Queue:
        project = project or next(iter(ivr_projects))
        outcomes: asyncio.Queue[Any] = asyncio.Queue()

        class Ivr(Consumer):
            async def on_incoming_call(self, call: Call) -> None:
                try:
                    outcomes.put_nowait(await handler(call))
                except Exception as exc:  # surfaced to the test through the queue
                    outcomes.put_nowait(exc)

        consumer = Ivr(
            project=project, token=ivr_projects[project], url=server.url, contexts=list(contexts)
        )
        task = asyncio.create_task(consumer.serve())
        running.append((consumer, task))
        await _wait_receiving(server, project, contexts)
        return outcomes

    yield start
    for consumer, task in running:
        await consumer.stop()
        await asyncio.wait_for(task, WAIT)


async def _wait_receiving(server: RelayServer, project: str, contexts: tuple[str, ...]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    registry = server.session_registry
    while not all(registry.receiving(project, c, loop.time()) for c in contexts):
        assert loop.time() < deadline, f"no IVR of {project} received {contexts}"
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture
async def raw_client(server: RelayServer) -> AsyncIterator[Callable[[], Awaitable[RawClient]]]:
    opened: list[ClientConnection] = []

    async def open_client() -> RawClient:
        ws = await connect(server.url)
        opened.append(ws)
        return RawClient(ws)

    yield open_client
    for ws in opened:
        await ws.close()
