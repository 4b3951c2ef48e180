"""Fixtures for the signalwire 2.1.1 conformance suite: the SDK's venv, the wire, the apps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
import soundfile

from relaykit import RelayServer
from relaykit.media.frames import SAMPLE_RATE
from tests.compat.v2 import V2App, VenvError, ensure_venv
from tests.compat.wire import WireRecorder
from tests.helpers import PROJECT, TOKEN

AppLauncher = Callable[..., Awaitable[V2App]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "compat: runs apps written for the official signalwire==2.1.1 SDK against the server "
        "(creates a venv with it once, in ~/.cache/relaykit or $RELAYKIT_COMPAT_VENV)",
    )


@pytest.fixture(scope="session")
def v2_python() -> Path:
    """The python of a venv with the unchanged signalwire 2.1.1; a failed install FAILS."""
    try:
        return ensure_venv()
    except (VenvError, OSError) as exc:
        pytest.fail(
            f"could not install signalwire 2.1.1 for the compat suite:\n{exc}", pytrace=False
        )


@pytest_asyncio.fixture
async def wire(server: RelayServer) -> AsyncIterator[WireRecorder]:
    """A recording proxy in front of ``server``: apps that use ``wire.url`` are on the record."""
    async with WireRecorder(server.url) as recorder:
        yield recorder


@pytest_asyncio.fixture
async def v2_app(
    v2_python: Path, server: RelayServer, wire: WireRecorder
) -> AsyncIterator[AppLauncher]:
    """Start ``apps/<name>`` under signalwire 2.1.1; every process is killed at teardown.

    ``await v2_app("pin_ivr.py")`` connects through the wire recorder; pass ``host=`` to point
    the app elsewhere (``server.url`` for a direct connection).
    """
    started: list[V2App] = []

    async def launch(
        app: str,
        *args: str,
        host: str | None = None,
        project: str = PROJECT,
        token: str = TOKEN,
        contexts: Sequence[str] = ("office",),
    ) -> V2App:
        proc = await V2App.start(
            v2_python,
            app,
            *args,
            host=host or wire.url,
            project=project,
            token=token,
            contexts=contexts,
        )
        started.append(proc)
        return proc

    yield launch
    problems: list[str] = []
    for proc in started:
        await proc.kill()
        problems.extend(proc.problems())
    assert not problems, "\n".join(problems)


@pytest.fixture
def audio_url(tmp_path: Path) -> str:
    """A 0.4 s tone as a WAV ``file://`` URL, for ``prompt_audio``/``play_audio``."""
    t = np.arange(int(0.4 * SAMPLE_RATE)) / SAMPLE_RATE
    path = tmp_path / "prompt.wav"
    soundfile.write(path, (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32), SAMPLE_RATE)
    return path.as_uri()
