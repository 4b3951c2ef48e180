"""A server with two projects (the phone's pages log in to one or the other) and SDK IVRs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from relaykit import RelayServer

PROJECT_A, TOKEN_A = "project-a", "token-a"
PROJECT_B, TOKEN_B = "project-b", "token-b"


@pytest_asyncio.fixture
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RelayServer]:
    """Two projects; audio files may play from the tests' temporary folders."""
    async with RelayServer(
        credentials={PROJECT_A: TOKEN_A, PROJECT_B: TOKEN_B},
        asr_processes=0,
        media_dirs=[tmp_path_factory.getbasetemp()],
    ) as relay:
        yield relay


@pytest.fixture
def ivr_projects() -> dict[str, str]:
    """``run_ivr`` logs in to project A unless told ``project=PROJECT_B``."""
    return {PROJECT_A: TOKEN_A, PROJECT_B: TOKEN_B}
