"""A server with two projects (the phone's pages log in to one or the other) and SDK IVRs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from relaykit import Call, Consumer, RelayServer
from tests.helpers import WAIT

PROJECT_A, TOKEN_A = "project-a", "token-a"
PROJECT_B, TOKEN_B = "project-b", "token-b"

IvrHandler = Callable[[Call], Awaitable[Any]]


@pytest_asyncio.fixture
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RelayServer]:
    """Two projects; audio files may play from the tests' temporary folders."""
    async with RelayServer(
        credentials={PROJECT_A: TOKEN_A, PROJECT_B: TOKEN_B},
        asr_processes=0,
        media_dirs=[tmp_path_factory.getbasetemp()],
    ) as relay:
        yield relay


@pytest_asyncio.fixture
async def run_ivr(server: RelayServer) -> AsyncIterator[Callable[..., Awaitable[asyncio.Queue]]]:
    """Start an SDK Consumer of project A (or ``project=``) whose ``on_incoming_call`` runs
    ``handler``; returns a queue of the handler's outcomes (or exceptions)."""
    running: list[tuple[Consumer, asyncio.Task[None]]] = []

    async def start(
        handler: IvrHandler,
        contexts: tuple[str, ...] = ("office",),
        project: str = PROJECT_A,
    ) -> asyncio.Queue:
        outcomes: asyncio.Queue[Any] = asyncio.Queue()
        token = {PROJECT_A: TOKEN_A, PROJECT_B: TOKEN_B}[project]

        class Ivr(Consumer):
            async def on_incoming_call(self, call: Call) -> None:
                try:
                    outcomes.put_nowait(await handler(call))
                except Exception as exc:  # surfaced to the test through the queue
                    outcomes.put_nowait(exc)

        consumer = Ivr(project=project, token=token, url=server.url, contexts=list(contexts))
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
        assert loop.time() < deadline, f"no IVR received {contexts}"
        await asyncio.sleep(0.02)
