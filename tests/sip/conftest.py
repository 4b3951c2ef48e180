"""SIP tests run against a server with the SIP gateway on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from relaykit import RelayServer
from tests.helpers import PROJECT, TOKEN
from tests.sip.peers import IVR_NUMBER, LOOPBACK


@pytest_asyncio.fixture
async def server() -> AsyncIterator[RelayServer]:
    """Overrides the suite's server: the same, plus SIP on 127.0.0.1:<free port>."""
    async with RelayServer(
        credentials={PROJECT: TOKEN},
        sip=(LOOPBACK, 0),
        sip_routes={IVR_NUMBER: "office"},
    ) as relay:
        yield relay
