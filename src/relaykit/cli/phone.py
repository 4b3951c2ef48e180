"""``relaykit phone``: open the browser phone, starting a server (and the demo IVR) if needed."""

from __future__ import annotations

__all__ = ["PHONE_MARKER", "ServerCheck", "check_server", "run_phone"]

import asyncio
import contextlib
import enum
import secrets
import urllib.error
import urllib.request
import webbrowser
from collections.abc import Callable

from rich.console import Console

from ..client import Consumer

PHONE_MARKER = b"<title>relaykit phone</title>"  # how the page is told from other pages


class ServerCheck(enum.Enum):
    """What answers on the port ``relaykit phone`` would use."""

    NONE = "nothing listens there"
    PHONE = "a relaykit server with the phone"
    OTHER = "something else"


def check_server(host: str, port: int, timeout: float = 2.0) -> ServerCheck:
    """What answers ``http://host:port/phone``."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/phone", timeout=timeout) as reply:
            body = reply.read(4096)
    except urllib.error.HTTPError:
        return ServerCheck.OTHER
    except (urllib.error.URLError, OSError):
        return ServerCheck.NONE
    return ServerCheck.PHONE if PHONE_MARKER in body else ServerCheck.OTHER


def _browser_host(host: str) -> str:
    """Where a browser on this machine reaches ``host``: a wildcard address is localhost."""
    return "localhost" if host in ("0.0.0.0", "::", "") else host


async def run_phone(
    *,
    host: str,
    port: int,
    project: str | None,
    token: str | None,
    demo: bool,
    open_browser: bool,
    console: Console,
    opener: Callable[[str], bool] = webbrowser.open,
) -> int:
    """Open the phone; serve (and run the demo IVR) until cancelled when asked to. Returns the
    exit code: 0; 1 when the demo IVR cannot run; 2 when the port is taken by something else
    or credentials are missing."""
    from ..server import RelayServer

    running = ServerCheck.NONE
    if port != 0:
        running = await asyncio.to_thread(check_server, _browser_host(host), port)
    if running is ServerCheck.OTHER:
        console.print(f"[red]{host}:{port} is in use by something that is not relaykit[/red]")
        return 2
    if running is ServerCheck.PHONE and demo and not (project and token):
        console.print(
            "[red]a server already runs there: --demo needs its --project and --token[/red]"
        )
        return 2
    server: RelayServer | None = None
    if running is not ServerCheck.PHONE:
        if not (project and token):
            project, token = project or "phone", secrets.token_urlsafe(12)
            console.print(
                f"Log in with project [bold]{project}[/bold] and token [bold]{token}[/bold] "
                "(made up for this run)"
            )
        server = await RelayServer(host, port, credentials={project: token}).start()
        port = server.port
        console.print(f"RELAY server listening on [bold]{server.url}[/bold]")
    else:
        console.print(f"A relaykit server already runs on {host}:{port}")
    url = f"http://{_browser_host(host)}:{port}/phone"
    console.print(f"Phone: [bold]{url}[/bold]")
    ivr: Consumer | None = None
    ivr_task: asyncio.Task[None] | None = None
    try:
        if demo:
            from .demo import PinIvr

            assert project is not None and token is not None
            ivr = PinIvr(project=project, token=token, url=f"ws://{_browser_host(host)}:{port}")
            ivr_task = asyncio.create_task(ivr.serve())
            console.print("Demo IVR: call context [bold]office[/bold], enter a 3 digit PIN, then #")
        elif server is not None:
            console.print(
                f"No IVR yet: run yours against {server.url} (or use --demo); Ctrl-C to stop"
            )
        if open_browser and not await asyncio.to_thread(opener, url):
            console.print("(no browser could be opened here: open the address above)")
        if ivr_task is not None:
            try:
                await ivr_task  # until Ctrl-C
            except Exception as exc:
                console.print(f"[red]the demo IVR stopped: {exc}[/red]")
                return 1
        elif server is not None:
            await asyncio.Event().wait()  # until Ctrl-C
        return 0
    finally:
        if ivr is not None and ivr_task is not None:
            await ivr.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ivr_task, 10)
        if server is not None:
            await server.stop()
