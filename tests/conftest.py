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


@pytest_asyncio.fixture
async def run_ivr(server: RelayServer) -> AsyncIterator[Callable[..., Awaitable[asyncio.Queue]]]:
    """Start a Consumer whose ``on_incoming_call`` runs ``handler``; its outcomes go to a queue."""
    running: list[tuple[Consumer, asyncio.Task[None]]] = []

    async def start(handler: IvrHandler, contexts: tuple[str, ...] = ("office",)) -> asyncio.Queue:
        outcomes: asyncio.Queue[Any] = asyncio.Queue()

        class Ivr(Consumer):
            async def on_incoming_call(self, call: Call) -> None:
                try:
                    outcomes.put_nowait(await handler(call))
                except Exception as exc:  # surfaced to the test through the queue
                    outcomes.put_nowait(exc)

        consumer = Ivr(project=PROJECT, token=TOKEN, url=server.url, contexts=list(contexts))
        task = asyncio.create_task(consumer.serve())
        running.append((consumer, task))
        return outcomes

    yield start
    for consumer, task in running:
        await consumer.stop()
        await asyncio.wait_for(task, WAIT)


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
