"""Running apps written for the official ``signalwire==2.1.1`` SDK, from pytest.

The SDK pins ``aiohttp==3.9.5`` and ``twilio==6.54.0``, which clash with relaykit's own
dependencies, so it lives in a venv of its own (:func:`ensure_venv`), created once in a cache
directory outside the repository and reused while its python still imports signalwire 2.1.1.
The apps in ``apps/`` run with that venv's python as subprocesses (:class:`V2App`) and report what
they observe as JSON lines on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SIGNALWIRE_VERSION = "2.1.1"
APPS = Path(__file__).parent / "apps"
DEFAULT_VENV = Path.home() / ".cache" / "relaykit" / f"compat-signalwire-{SIGNALWIRE_VERSION}"
PIP_TIMEOUT = 600.0

_CHECK = (
    "import importlib.metadata as m, signalwire.relay.consumer, signalwire.relay.client; "
    "print(m.version('signalwire'))"
)


class VenvError(Exception):
    """The venv could not be made; the message carries the command's full output."""


def venv_dir() -> Path:
    return Path(os.environ.get("RELAYKIT_COMPAT_VENV") or DEFAULT_VENV).expanduser()


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _has_signalwire(python: Path) -> bool:
    if not python.exists():
        return False
    try:
        done = subprocess.run(
            [str(python), "-c", _CHECK],
            capture_output=True,
            text=True,
            timeout=60,
            env=_clean_env(),
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and done.stdout.strip() == SIGNALWIRE_VERSION


def _run(command: Sequence[str], what: str) -> None:
    try:
        done = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT,
            env=_clean_env(),
        )
    except subprocess.TimeoutExpired as exc:
        raise VenvError(
            f"{what} timed out after {PIP_TIMEOUT:g}s:\n{exc.stdout}\n{exc.stderr}"
        ) from None
    if done.returncode != 0:
        raise VenvError(
            f"{what} failed (exit {done.returncode}): {' '.join(command)}\n"
            f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
        )


def installed_python(venv: Path | None = None) -> Path | None:
    """The venv's python if it already imports signalwire 2.1.1, else None (nothing is built)."""
    python = _python(venv or venv_dir())
    return python if _has_signalwire(python) else None


def ensure_venv(venv: Path | None = None) -> Path:
    """The python of a venv holding ``signalwire==2.1.1``; made (about 20 s) when missing."""
    venv = venv or venv_dir()
    python = _python(venv)
    if _has_signalwire(python):
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest run may be building it right now
        try:
            if _has_signalwire(python):
                return python
            if venv.exists() and any(venv.iterdir()) and not (venv / "pyvenv.cfg").exists():
                raise VenvError(f"{venv} exists and is not a venv; not replacing it")
            shutil.rmtree(venv, ignore_errors=True)
            _run([sys.executable, "-m", "venv", str(venv)], "creating the venv")
            _run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    f"signalwire=={SIGNALWIRE_VERSION}",
                ],
                f"pip install signalwire=={SIGNALWIRE_VERSION}",
            )
            if not _has_signalwire(python):
                raise VenvError(f"{python} still does not import signalwire {SIGNALWIRE_VERSION}")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return python


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.pop("VIRTUAL_ENV", None)
    env.update(extra or {})
    return env


class V2App:
    """One app process: its JSON events, its stderr, and a stdin line to say "go on"."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self.expect_tracebacks = False
        self._taken: set[int] = set()
        self._changed = asyncio.Event()
        self._eof = False
        self._readers = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    async def start(
        cls,
        python: Path,
        app: str,
        *args: str,
        host: str,
        project: str,
        token: str,
        contexts: Sequence[str] = ("office",),
        env: Mapping[str, str] | None = None,
    ) -> V2App:
        script = APPS / app
        proc = await asyncio.create_subprocess_exec(
            str(python),
            str(script),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(APPS),
            env=_clean_env(
                {
                    "RELAY_HOST": host,
                    "RELAY_PROJECT": project,
                    "RELAY_TOKEN": token,
                    "RELAY_CONTEXTS": ",".join(contexts),
                    "LOG_LEVEL": "WARNING",  # the SDK's debug output would flood the pipe
                    "PYTHONUNBUFFERED": "1",
                    "PYTHONDONTWRITEBYTECODE": "1",
                    **(env or {}),
                }
            ),
        )
        return cls(app, proc)

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            text = line.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                event = json.loads(text)
            except ValueError:
                event = {"event": "stdout", "line": text}
            if not isinstance(event, dict):
                event = {"event": "stdout", "line": text}
            self.events.append(event)
            self._notify()
        self._eof = True
        self._notify()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr.append(line.decode("utf-8", "replace").rstrip("\n"))

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- reading what the app saw ---------------------------------------------------------------
    def all(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]

    async def wait_event(self, event: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The next event named ``event`` not taken before, whose fields match ``match``.

        A ``match`` value is compared with ``==``, or called with the field when callable.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i, e in enumerate(self.events):
                if i in self._taken or e.get("event") != event:
                    continue
                if all(_matches(e.get(k), v) for k, v in match.items()):
                    self._taken.add(i)
                    return e
            if self._eof:
                await self._wait_exit()
                raise AssertionError(
                    f"{self.name} exited (code {self.proc.returncode}) before reporting "
                    f"{event!r}\n{self.describe()}"
                )
            changed = self._changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.name} reported no {event!r} {match or ''} within {timeout:g}s\n"
                    f"{self.describe()}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def _wait_exit(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._readers), 2)

    async def go(self, line: str = "go") -> None:
        """Let the app past its next ``wait_for_go()``."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def describe(self) -> str:
        events = "\n".join(json.dumps(e, default=repr)[:400] for e in self.events[-15:])
        stderr = "\n".join(self.stderr[-40:])
        return f"--- {self.name} events ---\n{events}\n--- {self.name} stderr ---\n{stderr}"

    def problems(self) -> list[str]:
        """What no app should ever show: its handler raising, or the SDK crashing."""
        found = [
            f"{self.name} handler raised: {e.get('traceback') or e}" for e in self.all("app_error")
        ]
        text = "\n".join(self.stderr)
        if not self.expect_tracebacks and ("Traceback" in text or "never retrieved" in text):
            found.append(f"{self.name} printed a traceback:\n{text[-4000:]}")
        return found

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self._wait_exit()
        for task in self._readers:
            task.cancel()
        if self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()


def _matches(value: Any, expected: Any) -> bool:
    return bool(expected(value)) if callable(expected) else value == expected
