"""The ``relay_server`` fixture's server and the artifacts of failing tests (loaded on use)."""

from __future__ import annotations

__all__ = ["PytestRelayServer", "write_artifacts"]

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import MissingExtraError, RelayTimeoutError
from ..server.app import RelayServer
from ..testing.callees import Callee, VirtualCallees
from ..testing.caller import VirtualCaller
from ..testing.timeline import render_timeline

log = logging.getLogger("relaykit.testing")

READY_TIMEOUT = 15.0  # seconds an IVR gets to connect and receive its contexts


class PytestRelayServer(RelayServer):
    """The ``relay_server`` fixture's server: one throw-away project, remembers its calls."""

    def __init__(self, project: str, token: str, **options: Any) -> None:
        super().__init__(credentials={project: token}, **options)
        self.project = project
        self.token = token
        self.callers: list[VirtualCaller] = []
        self.callee_tables: list[VirtualCallees] = []

    async def dial_in(self, context: str, *args: Any, **kwargs: Any) -> VirtualCaller:
        caller = await super().dial_in(context, *args, **kwargs)
        self.callers.append(caller)
        return caller

    def callees(self, numbers: Mapping[str, str | Callee]) -> VirtualCallees:
        callees = super().callees(numbers)
        self.callee_tables.append(callees)
        return callees

    def far_ends(self) -> list[tuple[str, VirtualCaller]]:
        """Every caller and answered callee of the test, with a file name for each."""
        ends = [(f"call-{i}-{c.context}", c) for i, c in enumerate(self.callers, 1)]
        answered = [c for table in self.callee_tables for c in table.answered]
        ends += [(f"callee-{i}", c) for i, c in enumerate(answered, 1)]
        return ends

    async def wait_receiving(self, contexts: Sequence[str], timeout: float = READY_TIMEOUT) -> None:
        """Wait until some connected client of this project receives every one of ``contexts``."""
        loop = asyncio.get_running_loop()
        registry = self.session_registry
        deadline = loop.time() + timeout
        while not all(registry.receiving(self.project, c, loop.time()) for c in contexts):
            if loop.time() >= deadline:
                raise RelayTimeoutError(f"no client received contexts {list(contexts)}")
            await asyncio.sleep(0.02)


def _safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[-120:] or "test"


def write_artifacts(nodeid: str, server: PytestRelayServer, folder: Path) -> list[Path]:
    """Each call's WAV, JSON event log and timeline PNG in ``folder/<test id>/`` (the callers'
    ``call-N-CONTEXT``, the answered callees' ``callee-N``)."""
    paths: list[Path] = []
    target = folder / _safe_name(nodeid)
    for name, caller in server.far_ends():
        stem = target / name
        try:
            wav = caller.save_wav(stem.with_suffix(".wav"))
        except Exception:
            log.exception("! could not write the recording of call %s", caller.call_id)
            continue
        paths += [wav, wav.with_suffix(".json")]
        try:
            paths.append(
                render_timeline(caller.event_log(), caller.recording(), stem.with_suffix(".png"))
            )
        except MissingExtraError as exc:
            log.warning("! no timeline picture for call %s: %s", caller.call_id, exc)
        except Exception:
            log.exception("! could not draw the timeline of call %s", caller.call_id)
    return paths
