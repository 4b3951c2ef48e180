"""relaykit's pytest plugin: test an IVR offline, with a virtual caller, on a real local server.

Installed with relaykit (entry point ``pytest11``) and opt-in: it only adds fixtures, options
and a marker; nothing runs unless a test asks for a fixture. This module is all pytest loads on
every run: the server, the SDK and the media engine are imported only when a relaykit fixture
is used.

Fixtures (async ones need pytest-asyncio; mark the tests ``@pytest.mark.asyncio``):

``relay_server``
    A started :class:`~relaykit.server.app.RelayServer` on a free loopback port with
    throw-away credentials (``relay_server.url``, ``.project``, ``.token``). Media and speech
    recognition run on the event loop (``inline_media``), so results do not depend on how fast
    worker threads happen to be. It serves the test's own IVR only, so ``audio`` media may
    name files under the test run's root folder, pytest's temporary folders and the system's
    temporary folder (``media_dirs``), and URLs on loopback (``media_networks``).
``relay_ivr``
    ``await relay_ivr(MyConsumer)`` runs your :class:`~relaykit.Consumer` subclass (or any
    ``async def app(url, project, token)``) in the background until the test ends, and returns
    once it receives its contexts.
``relay_call``
    ``call = await relay_call("office")`` dials in and waits until the IVR answers; the same as
    ``await relay_server.dial_in("office")`` followed by ``await call.wait_answered()``.

Options (each also an ini key):

``--relaykit-fast`` / ``relaykit_fast``
    Run the event loop on a fast-forwarding clock (the ``looptime`` package): whenever nothing
    is ready to run, loop time jumps to the next timer. The server's media clock, prompt
    timers and the caller's waits all follow loop time, so a 30-second conversation takes well
    under a second with the same results. ``@pytest.mark.relaykit(fast=True|False)`` overrides
    it per test.
``--relaykit-artifacts DIR`` / ``relaykit_artifacts``
    For every failing test, write each call's recording (WAV), event log (JSON) and timeline
    (PNG) to ``DIR/<test id>/``.
"""

from __future__ import annotations

__all__ = ["relay_call", "relay_ivr", "relay_server"]

import asyncio
import contextlib
import inspect
import logging
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..client import Consumer
    from ..testing.caller import VirtualCaller
    from ._server import PytestRelayServer

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - relaykit[pytest] installs it
    pytest_asyncio = None  # type: ignore[assignment]

READY_TIMEOUT = 15.0  # seconds an IVR gets to connect and receive its contexts
STOP_TIMEOUT = 10.0

_SETTINGS = pytest.StashKey["_Settings"]()
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
_CLOCK = pytest.StashKey["_FastClock"]()
_WRITTEN = pytest.StashKey[list[tuple[str, list[Path]]]]()

_NO_LOOPTIME = "relaykit fast mode needs the looptime package: pip install 'relaykit[pytest]'"
_NO_PYTEST_ASYNCIO = "relaykit's fixtures need pytest-asyncio: pip install 'relaykit[pytest]'"


class _Settings:
    def __init__(self, fast: bool, artifacts: Path | None) -> None:
        self.fast = fast
        self.artifacts = artifacts


# -- options, marker, header ------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("relaykit", "relaykit IVR testing")
    group.addoption(
        "--relaykit-fast",
        action="store_true",
        default=None,
        dest="relaykit_fast",
        help="run relaykit tests on a fast-forwarding loop clock (looptime); "
        "same results, a fraction of the time. ini: relaykit_fast",
    )
    group.addoption(
        "--relaykit-artifacts",
        metavar="DIR",
        default=None,
        dest="relaykit_artifacts",
        help="write the WAV, JSON event log and timeline PNG of every call of a failing "
        "test to DIR/<test id>/. ini: relaykit_artifacts",
    )
    parser.addini(
        "relaykit_fast",
        type="bool",
        default=False,
        help="run relaykit tests on a fast-forwarding loop clock (looptime)",
    )
    parser.addini(
        "relaykit_artifacts",
        default="",
        help="folder for the recordings, event logs and timelines of failing tests' calls",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "relaykit(fast=None): per-test relaykit settings; fast=True/False runs this test on a "
        "fast-forwarding loop clock or on the real one, whatever --relaykit-fast says",
    )
    fast = config.getoption("relaykit_fast")
    if fast is None:
        fast = bool(config.getini("relaykit_fast"))
    artifacts = config.getoption("relaykit_artifacts") or config.getini("relaykit_artifacts")
    if fast:
        _require_looptime()
    config.stash[_SETTINGS] = _Settings(bool(fast), Path(artifacts) if artifacts else None)
    config.stash[_WRITTEN] = []


def _require_looptime() -> None:
    try:
        import looptime
    except ImportError as exc:
        raise pytest.UsageError(_NO_LOOPTIME) from exc
    if not hasattr(looptime.LoopTimeEventLoop, "looptime_enabled"):
        raise pytest.UsageError(f"{_NO_LOOPTIME}; version 0.9 or later")


def pytest_report_header(config: pytest.Config) -> str:
    settings = config.stash[_SETTINGS]
    clock = "fast-forwarding (looptime)" if settings.fast else "real time"
    artifacts = str(settings.artifacts) if settings.artifacts else "off (--relaykit-artifacts DIR)"
    return f"relaykit: loop clock {clock}; failing calls' recordings: {artifacts}"


# -- test outcome, looptime's own marker, summary ----------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Any:  # a TestReport
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    """If looptime's own plugin enables its clock for this test, let it (we resume after)."""
    clock = pyfuncitem.stash.get(_CLOCK, None)
    if clock is None or not _looptime_plugin_enables(pyfuncitem):
        return (yield)
    clock.pause()
    try:
        return (yield)
    finally:
        clock.resume()


def _looptime_plugin_enables(item: pytest.Item) -> bool:
    """Mirror of looptime's rule: its --looptime flag or its marker turns it on for a test."""
    flag = item.config.getoption("looptime", None)
    markers = list(item.iter_markers("looptime"))
    enabled = bool((markers or flag is True) and flag is not False)
    for marker in reversed(markers):
        enabled = bool(marker.args[0]) if marker.args else enabled
    return enabled


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    written = config.stash.get(_WRITTEN, [])
    if not written:
        return
    terminalreporter.section("relaykit: calls of failing tests")
    for nodeid, paths in written:
        terminalreporter.line(f"{nodeid}:")
        for path in paths:
            terminalreporter.line(f"    {path}")


# -- the fast clock ----------------------------------------------------------------------------
class _FastClock:
    """Switches the running loop to looptime's fast-forwarding clock, continuing its time."""

    def __init__(self) -> None:
        self._cm: contextlib.AbstractContextManager[None] | None = None
        self._loop: Any = None

    def start(self) -> None:
        try:
            import looptime
        except ImportError:
            pytest.fail(_NO_LOOPTIME, pytrace=False)
        loop = asyncio.get_running_loop()
        if not isinstance(loop, asyncio.BaseEventLoop):
            pytest.fail(
                f"relaykit fast mode needs an asyncio event loop, not {type(loop).__name__}",
                pytrace=False,
            )
        self._loop = loop
        if isinstance(loop, looptime.LoopTimeEventLoop):
            if loop.looptime_on:
                return  # somebody else already runs it fast
            loop.setup_looptime(start=loop.time())
        else:
            looptime.patch_event_loop(loop, start=loop.time(), _enabled=False)
        self.resume()

    def pause(self) -> None:
        if self._cm is not None:
            self._cm.__exit__(None, None, None)
            self._cm = None

    def resume(self) -> None:
        if self._loop is not None and self._cm is None and not self._loop.looptime_on:
            self._cm = self._loop.looptime_enabled()
            self._cm.__enter__()

    def stop(self) -> None:
        self.pause()
        self._loop = None


def _fast_for(item: pytest.Item) -> bool:
    for marker in item.iter_markers("relaykit"):
        if "fast" in marker.kwargs and marker.kwargs["fast"] is not None:
            fast = bool(marker.kwargs["fast"])
            if fast:
                _require_looptime()
            return fast
    return item.config.stash[_SETTINGS].fast


def _async_fixture(fn: Callable[..., Any]) -> Any:
    if pytest_asyncio is None:  # pragma: no cover

        @pytest.fixture(name=fn.__name__)
        def missing() -> None:
            pytest.fail(_NO_PYTEST_ASYNCIO, pytrace=False)

        return missing
    return pytest_asyncio.fixture(fn)


def _failed(item: pytest.Item) -> bool:
    reports = item.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


@_async_fixture
async def relay_server(request: pytest.FixtureRequest) -> AsyncIterator[PytestRelayServer]:
    """A started RelayServer on a free loopback port with throw-away credentials."""
    item = request.node
    clock: _FastClock | None = None
    if _fast_for(item):
        clock = _FastClock()
        clock.start()
        item.stash[_CLOCK] = clock
    try:
        from ._server import PytestRelayServer, write_artifacts

        server = PytestRelayServer(
            f"project-{secrets.token_hex(4)}",
            secrets.token_urlsafe(16),
            inline_media=True,
            media_dirs=(item.config.rootpath, _temp_root(request), tempfile.gettempdir()),
            media_networks=("127.0.0.0/8", "::1/128"),
        )
        await server.start()
        try:
            yield server
        finally:
            artifacts = item.config.stash[_SETTINGS].artifacts
            if artifacts is not None and server.far_ends() and _failed(item):
                paths = write_artifacts(item.nodeid, server, artifacts)
                if paths:
                    item.config.stash[_WRITTEN].append((item.nodeid, paths))
            await server.stop()
    finally:
        if clock is not None:
            clock.stop()
            del item.stash[_CLOCK]


def _temp_root(request: pytest.FixtureRequest) -> Path:
    factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
    return factory.getbasetemp()


if TYPE_CHECKING:
    IvrApp = type[Consumer] | Consumer | Callable[..., Awaitable[Any]]


class _HookErrors(logging.Handler):
    """Collects exceptions that a Consumer's hooks raised (the SDK logs them, then goes on)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.module == "consumer":
            formatter = logging.Formatter()
            self.failures.append(formatter.formatException(record.exc_info).rstrip())


class _Running:
    def __init__(self, name: str, task: asyncio.Task[Any], consumer: Consumer | None) -> None:
        self.name = name
        self.task = task
        self.consumer = consumer


@_async_fixture
async def relay_ivr(
    relay_server: PytestRelayServer,
) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Run IVR apps against ``relay_server`` in the background until the test ends.

    ``await relay_ivr(App, contexts=None, **options)``: ``App`` is a :class:`Consumer`
    subclass (instantiated with the server's ``url``, ``project``, ``token`` and ``options``),
    a ready :class:`Consumer` instance, or an ``async`` callable called with ``url=``,
    ``project=``, ``token=``. Returns the consumer (or the task running the callable) once
    ``contexts`` (default: the consumer's) are received.
    """
    from ..client import Consumer

    running: list[_Running] = []
    hook_errors = _HookErrors()
    client_log = logging.getLogger("relaykit.client")
    client_log.addHandler(hook_errors)

    async def start(
        app: IvrApp,
        *,
        contexts: Sequence[str] | None = None,
        ready_timeout: float = READY_TIMEOUT,
        **options: Any,
    ) -> Any:
        server = relay_server
        consumer: Consumer | None = None
        if isinstance(app, type) and issubclass(app, Consumer):
            consumer = app(project=server.project, token=server.token, url=server.url, **options)
            work: Awaitable[Any] = consumer.serve()
        elif isinstance(app, Consumer):
            consumer = app
            work = consumer.serve()
        elif callable(app):
            run: Callable[..., Any] = app
            work = run(url=server.url, project=server.project, token=server.token, **options)
            if not inspect.isawaitable(work):
                raise TypeError(
                    f"{app!r} must be a Consumer or an async callable (it returned {work!r})"
                )
        else:
            raise TypeError(f"cannot run {app!r}: not a Consumer or an async callable")
        name = getattr(app, "__name__", type(app).__name__)
        task = asyncio.ensure_future(work)
        running.append(_Running(name, task, consumer))
        wanted = list(contexts if contexts is not None else (consumer.contexts if consumer else ()))
        if isinstance(wanted, str):
            wanted = [wanted]
        waiter = asyncio.ensure_future(server.wait_receiving(wanted, ready_timeout))
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            exc = None if task.cancelled() else task.exception()
            running.pop()  # reported here; nothing left to stop
            raise RuntimeError(f"IVR {name} stopped before it was ready") from exc
        waiter.result()  # a RelayTimeoutError if the contexts never came
        return consumer if consumer is not None else task

    try:
        yield start
    finally:
        client_log.removeHandler(hook_errors)
    problems = [f"the IVR raised:\n{failure}" for failure in hook_errors.failures]
    for run in reversed(running):
        if run.consumer is not None:
            await run.consumer.stop()
        else:
            run.task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(run.task), STOP_TIMEOUT)
        except asyncio.CancelledError:
            pass
        except TimeoutError:
            run.task.cancel()
            problems.append(f"IVR {run.name} did not stop within {STOP_TIMEOUT:g} s")
        except Exception as exc:
            problems.append(f"IVR {run.name} failed: {type(exc).__name__}: {exc}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def relay_call(relay_server: PytestRelayServer) -> Callable[..., Awaitable[VirtualCaller]]:
    """``call = await relay_call("office")``: dial in and wait until the IVR answers."""

    async def dial(
        context: str, *args: Any, answer_timeout: float = 5.0, **kwargs: Any
    ) -> VirtualCaller:
        call = await relay_server.dial_in(context, *args, **kwargs)
        await call.wait_answered(answer_timeout)
        return call

    return dial
