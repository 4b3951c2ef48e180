"""The ``relaykit`` command line: ``serve``, ``demo``, ``phone``, ``call``, ``timeline`` and
``drain``."""

from __future__ import annotations

__all__ = ["app", "main"]

import asyncio
import contextlib
import ipaddress
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand

if TYPE_CHECKING:  # the server and the media engine load only for the commands that run them
    from ..calls import TranscriptEntry

app = typer.Typer(
    name="relaykit",
    help="Run SignalWire RELAY v2 prompts locally: a server, a demo and a virtual caller.",
    no_args_is_help=True,
    pretty_exceptions_short=True,
)


def _print_version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"relaykit {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print relaykit's version and exit.",
    ),
) -> None:
    """Run SignalWire RELAY v2 prompts locally: a server, a demo and a virtual caller."""


_ACTOR_STYLE = {"caller": "bold cyan", "ivr": "bold magenta", "call": "bold yellow"}


def _print_entry(console: Console, entry: TranscriptEntry) -> None:
    style = _ACTOR_STYLE.get(entry.actor, "")
    console.print(
        f"[dim]{entry.at:7.2f}s[/dim]  [{style}]{entry.actor:>6}[/{style}]  {entry.text}",
        highlight=False,
    )


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8080, help="TCP port (0 picks a free one)."),
    project: str = typer.Option(
        None, envvar="RELAYKIT_PROJECT", help="Project id clients authenticate with."
    ),
    token: str = typer.Option(
        None, envvar="RELAYKIT_TOKEN", help="Token for the project (or RELAYKIT_TOKEN)."
    ),
    credentials: Path = typer.Option(
        None,
        envvar="RELAYKIT_CREDENTIALS",
        help='File of credentials: JSON {"project": "token"} or project:token lines.',
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every connection."),
    sip: str = typer.Option(None, help="Answer SIP phones on UDP HOST:PORT (e.g. 127.0.0.1:5060)."),
    route: list[str] = typer.Option(
        [], help="Dialled number (or *) to context, e.g. +15559870000=office. Repeatable."
    ),
    recordings: Path = typer.Option(
        None, help="Directory for calling.record's files (default: a temporary one)."
    ),
    retention: float = typer.Option(
        None, help="Seconds a finished recording is kept (default: kept)."
    ),
    media_dir: list[Path] = typer.Option(
        [], help="Folder whose files audio media may play (path or file:// URL). Repeatable."
    ),
    media_network: list[str] = typer.Option(
        [],
        help="Private network audio URLs may reach, e.g. 127.0.0.0/8 (refused otherwise). "
        "Repeatable.",
    ),
    drain_timeout: float = typer.Option(
        10.0, help="Seconds allowed to end calls and tell clients when stopping."
    ),
    cluster: str = typer.Option(
        None,
        envvar="RELAYKIT_CLUSTER",
        help="Join a cluster on this NATS server (nats://127.0.0.1:4222); needs --node-id.",
    ),
    node_id: str = typer.Option(
        None, envvar="RELAYKIT_NODE_ID", help="This node's id in the cluster (e.g. n1)."
    ),
    kamailio_rpc: str = typer.Option(
        None,
        help="Kamailio's JSON-RPC UDP HOST:PORT: a dead node's SIP dialogs are ended there.",
    ),
    resume_grace: float = typer.Option(
        30.0, min=0.0, help="Seconds a client's calls wait for it to reconnect (on any node)."
    ),
) -> None:
    """Serve RELAY v2 on ws://HOST:PORT until Ctrl-C or SIGTERM (and SIP phones with --sip).

    Alone, either signal drains at once: every call ends (its clients see it end, SIP phones get
    a BYE), clients get ``blade.disconnect`` and a close (1001), within --drain-timeout seconds.
    With --cluster the node joins the others on the bus; SIGTERM (or `relaykit drain`) stops
    new calls here and exits once the last one has ended; Ctrl-C stops at once.
    """
    from ..server import RelayServer
    from ..server.auth import load_credentials

    console = Console()
    if cluster and not node_id:
        console.print("[red]--cluster needs --node-id (each node's own id)[/red]")
        raise typer.Exit(2)
    rpc_address = None
    if kamailio_rpc:
        from ..cluster.kamailio import parse_address

        try:
            rpc_address = parse_address(kamailio_rpc)
        except ValueError as exc:
            console.print(f"[red]--kamailio-rpc: {escape(str(exc))}[/red]")
            raise typer.Exit(2) from None
    pairs: dict[str, str] = {}
    if credentials is not None:
        try:
            pairs.update(load_credentials(credentials))
        except (OSError, ValueError) as exc:
            console.print(f"[red]--credentials: {escape(str(exc))}[/red]")
            raise typer.Exit(2) from None
    if project and token:
        pairs[project] = token
    if not pairs:
        console.print(
            "[red]--project and --token (or RELAYKIT_PROJECT/RELAYKIT_TOKEN), or --credentials "
            "FILE, are required[/red]"
        )
        raise typer.Exit(2)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    # nats-py logs each failed reconnection with a traceback; the node says it lost the bus
    logging.getLogger("nats").setLevel(logging.INFO if verbose else logging.CRITICAL)
    sip_address = None
    if sip:
        sip_host, _, sip_port = sip.rpartition(":")
        if not sip_host or not sip_port.isdigit():
            console.print(f"[red]--sip must be HOST:PORT, not {sip!r}[/red]")
            raise typer.Exit(2)
        sip_address = (sip_host, int(sip_port))
    from ..sip.gateway import parse_routes

    try:
        routes = parse_routes(route)
    except ValueError as exc:
        console.print(f"[red]--route: {escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    if retention is not None and retention <= 0:
        console.print("[red]--retention must be a positive number of seconds[/red]")
        raise typer.Exit(2)
    try:
        networks = [str(ipaddress.ip_network(n, strict=False)) for n in media_network]
    except ValueError as exc:
        console.print(f"[red]--media-network: {escape(str(exc))}[/red]")
        raise typer.Exit(2) from None

    try:
        server = RelayServer(
            host,
            port,
            credentials=pairs,
            sip=sip_address,
            sip_routes=routes,
            recordings_dir=recordings,
            recording_retention=retention,
            media_dirs=media_dir,
            media_networks=networks,
            cluster=cluster or None,
            node_id=node_id or None,
            kamailio_rpc=rpc_address,
            resume_grace=resume_grace,
            hold_gc=True,  # the server owns this process
        )
    except ValueError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None

    async def run() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        await server.start()
        try:
            console.print(
                f"RELAY server listening on [bold]{server.url}[/bold] "
                f"(projects: {', '.join(sorted(pairs))}); Ctrl-C to stop"
            )
            if server.sip is not None:
                shown = ", ".join(f"{n} → {c}" for n, c in routes.items()) or "none"
                console.print(
                    f"SIP on [bold]udp:{server.sip.host}:{server.sip.port}[/bold] (routes: {shown})"
                )
            if server.cluster is None:
                for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, process managers
                    loop.add_signal_handler(signum, stopping.set)
                await stopping.wait()
                return
            console.print(
                f"Node [bold]{server.nodeid}[/bold] on the bus at {cluster}; "
                "SIGTERM or `relaykit drain` to drain"
            )
            loop.add_signal_handler(signal.SIGTERM, server.drain)
            loop.add_signal_handler(signal.SIGINT, stopping.set)  # stops at once
            waits = [
                asyncio.ensure_future(server.drained()),
                asyncio.ensure_future(stopping.wait()),
            ]
            _done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if not stopping.is_set():
                console.print("Drained: no call left; leaving the cluster")
        finally:
            try:
                await asyncio.wait_for(server.stop(), drain_timeout)
            except TimeoutError:
                console.print(f"[red]drain took over {drain_timeout:g} s; stopped anyway[/red]")

    if server.cluster is None:
        asyncio.run(run())
        return
    from ..cluster import BusUnavailable

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())
    except BusUnavailable as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None


@app.command()
def demo(
    out: Path = typer.Option(Path("relaykit-calls"), help="Folder for the call's WAV."),
    digits: str = typer.Option("427#", help="What the virtual caller presses."),
) -> None:
    """Run a PIN IVR on an embedded server and call it with a virtual caller."""
    from .demo import run_demo

    console = Console()
    console.print(
        "[bold]relaykit demo[/bold]: a PIN IVR on an embedded RELAY server; "
        "a virtual caller presses real DTMF tones\n"
    )
    outcome = asyncio.run(run_demo(out, digits=digits, on_entry=lambda e: _print_entry(console, e)))
    result = outcome.result
    console.print()
    console.print(
        f"PromptResult: successful={result.successful} type={result.prompt_type!r} "
        f"result={result.result!r} terminator={result.terminator!r} reason={result.reason!r}",
        highlight=False,
    )
    console.print(f"Call audio (left: caller, right: IVR): {outcome.wav.resolve()}")
    log_path = outcome.wav.with_suffix(".json")
    if log_path.exists():
        console.print(f"Event log: {log_path.resolve()}  (picture: relaykit timeline {log_path})")
    if not result.successful:
        raise typer.Exit(1)


@app.command()
def phone(
    host: str = typer.Option("127.0.0.1", help="Interface of the server (started if none runs)."),
    port: int = typer.Option(8080, help="TCP port of the server (0: start one on a free port)."),
    project: str = typer.Option(
        None, envvar="RELAYKIT_PROJECT", help="Project to serve (made up when not given)."
    ),
    token: str = typer.Option(
        None, envvar="RELAYKIT_TOKEN", help="Token for the project (or RELAYKIT_TOKEN)."
    ),
    demo: bool = typer.Option(False, "--demo", help="Also run the demo PIN IVR (context office)."),
    open_browser: bool = typer.Option(True, "--open/--no-open", help="Open the page in a browser."),
) -> None:
    """Open the phone in your browser: call IVRs, hear them, press keys and talk.

    Starts a server on HOST:PORT unless one runs there already, and with --demo the demo PIN
    IVR; then serves until Ctrl-C.
    """
    from .phone import run_phone

    console = Console(highlight=False)
    code = 0
    with contextlib.suppress(KeyboardInterrupt):
        code = asyncio.run(
            run_phone(
                host=host,
                port=port,
                project=project,
                token=token,
                demo=demo,
                open_browser=open_browser,
                console=console,
            )
        )
    raise typer.Exit(code)


class _StepsInOrder(TyperCommand):
    """Keeps the raw arguments, so ``call`` can run its steps in the order they were given."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # ctx: typer's Context
        ctx.meta["relaykit.args"] = list(args)
        return super().parse_args(ctx, args)


@app.command(cls=_StepsInOrder)
def call(
    ctx: typer.Context,
    context: str = typer.Option(..., help="The IVR's context to call (e.g. office)."),
    url: str = typer.Option(
        "ws://127.0.0.1:8080", envvar="RELAYKIT_URL", help="The server's RELAY URL."
    ),
    project: str = typer.Option(
        None, envvar="RELAYKIT_PROJECT", help="Project of the IVR (or RELAYKIT_PROJECT)."
    ),
    token: str = typer.Option(
        None, envvar="RELAYKIT_TOKEN", help="Token for the project (or RELAYKIT_TOKEN)."
    ),
    expect: list[str] = typer.Option(
        [], metavar="TEXT", help="Step: wait until the IVR plays a prompt containing TEXT."
    ),
    press: list[str] = typer.Option(
        [], metavar="KEYS", help="Step: press keys as DTMF tones, e.g. 427#."
    ),
    say: list[str] = typer.Option([], metavar="TEXT", help="Step: say TEXT (synthesised speech)."),
    silence: list[str] = typer.Option([], metavar="SECONDS", help="Step: stay silent for SECONDS."),
    play: list[str] = typer.Option([], metavar="FILE", help="Step: send the audio file FILE."),
    hangup: bool = typer.Option(
        False, "--hangup", help="Hang up after the last step instead of waiting for the IVR to."
    ),
    timeout: float = typer.Option(
        30.0, help="Seconds of call time the IVR gets to hang up after the last step."
    ),
    prompt_timeout: float = typer.Option(
        10.0, help="Seconds of call time to wait for each prompt (and for the answer)."
    ),
    wait_listening: bool = typer.Option(
        True, help="Before each press, say or play, wait until a prompt collects input."
    ),
    from_number: str = typer.Option(None, "--from", help="The caller's number."),
    to_number: str = typer.Option(None, "--to", help="The number called."),
    save: Path = typer.Option(
        None, help="Write the call's stereo WAV here (and its event log beside it, as JSON)."
    ),
) -> None:
    """Call an IVR on a running server with a scripted virtual caller; print the transcript.

    Steps run in the order given: --expect PIN --press 427# --say sales.

    Exit code 0: every step succeeded and the call ended. 1: a step or the ending failed.
    2: bad arguments. 3: the server is unreachable or refuses the credentials.
    """
    from .call import STEP_OPTIONS, ordered_steps, run_call

    console = Console(highlight=False)
    if not project or not token:
        console.print(
            "[red]--project and --token (or RELAYKIT_PROJECT/RELAYKIT_TOKEN) are required[/red]"
        )
        raise typer.Exit(2)
    valued = {
        name
        for param in ctx.command.params
        if param.param_type_name == "option" and not getattr(param, "is_flag", False)
        for name in param.opts
    }
    steps = ordered_steps(ctx.meta.get("relaykit.args", []), valued | set(STEP_OPTIONS))
    console.print(
        f"[bold]relaykit call[/bold]: context {context!r} of project {project!r} on {url}"
        + (f"; steps: {' '.join(s.describe() for s in steps)}" if steps else "")
    )
    outcome = asyncio.run(
        run_call(
            url=url,
            project=project,
            token=token,
            context=context,
            steps=steps,
            console=console,
            from_number=from_number,
            to_number=to_number,
            hangup=hangup,
            timeout=timeout,
            prompt_timeout=prompt_timeout,
            wait_listening=wait_listening,
            save=save,
            on_entry=lambda e: _print_entry(console, e),
        )
    )
    if outcome.code == 0:
        console.print(f"[bold green]✓[/bold green] {outcome.message}")
        if save is not None:
            console.print(f"Call audio: {save.resolve()}; event log: {save.with_suffix('.json')}")
    else:
        console.print(f"[bold red]✗[/bold red] {outcome.message}")
    raise typer.Exit(outcome.code)


@app.command()
def timeline(
    log: Path = typer.Argument(..., help="A call's event log (JSON, with its WAV beside it)."),
    out: Path = typer.Option(None, "--out", "-o", help="Picture to write (PNG, SVG or PDF)."),
) -> None:
    """Draw a call's timeline: both audio channels, prompts, keys, speech, results, states."""
    from ..errors import MissingExtraError
    from ..testing.timeline import load_call, render_timeline

    console = Console(highlight=False)
    try:
        data, samples = load_call(log)
    except (OSError, ValueError) as exc:
        console.print(f"[red]cannot read {escape(str(log))}: {escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    target = out if out is not None else log.with_suffix(".png")
    try:
        render_timeline(data, samples, target)
    except MissingExtraError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    note = "" if samples is not None else " (no WAV found beside the log: events only)"
    console.print(f"Timeline: {target.resolve()}{note}")


@app.command()
def drain(
    node: str = typer.Argument(..., help="The node to drain (its --node-id)."),
    cluster: str = typer.Option(
        "nats://127.0.0.1:4222", envvar="RELAYKIT_CLUSTER", help="The cluster's NATS server."
    ),
    wait: bool = typer.Option(True, help="Wait until the node has left the cluster."),
    timeout: float = typer.Option(3600.0, help="Seconds to wait for it to leave."),
) -> None:
    """Drain a node: no new calls there; it exits once its last call has ended.

    Exit code 0: drained (and gone, with --wait). 1: still there after --timeout.
    2: bad arguments, no bus, or no such node.
    """
    from ..cluster.bus import BusUnavailable, NodeTimeout, NodeUnreachable, ask_node

    console = Console(highlight=False)

    async def run() -> int:
        try:
            reply = await ask_node(cluster, node, {"op": "drain"})
        except (BusUnavailable, NodeUnreachable, NodeTimeout, ValueError) as exc:
            console.print(f"[red]{exc}[/red]")
            return 2
        console.print(f"Node {node} is draining ({reply.get('calls', '?')} calls left)")
        if not wait:
            return 0
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.5)
            try:
                await ask_node(cluster, node, {"op": "status"}, timeout=2.0)
            except NodeUnreachable:
                console.print(f"Node {node} has left the cluster")
                return 0
            except (BusUnavailable, NodeTimeout):
                continue
        console.print(f"[red]node {node} still has calls after {timeout:g} s[/red]")
        return 1

    raise typer.Exit(asyncio.run(run()))


def main() -> None:
    app()
