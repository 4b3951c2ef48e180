"""The ``relaykit`` command line: ``serve`` and ``demo``."""

from __future__ import annotations

__all__ = ["app", "main"]

import asyncio
import contextlib
import logging
from pathlib import Path

import typer
from rich.console import Console

from ..server import RelayServer
from ..server.calls import TranscriptEntry

app = typer.Typer(
    name="relaykit",
    help="Run SignalWire RELAY v2 prompts locally: a server, a demo and a virtual caller.",
    no_args_is_help=True,
    pretty_exceptions_short=True,
)

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
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every connection."),
) -> None:
    """Serve RELAY v2 on ws://HOST:PORT until Ctrl-C."""
    console = Console()
    if not project or not token:
        console.print(
            "[red]--project and --token (or RELAYKIT_PROJECT/RELAYKIT_TOKEN) are required[/red]"
        )
        raise typer.Exit(2)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)

    async def run() -> None:
        async with RelayServer(host, port, credentials={project: token}) as server:
            console.print(
                f"RELAY server listening on [bold]{server.url}[/bold] "
                f"(project {project!r}); Ctrl-C to stop"
            )
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


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
    if not result.successful:
        raise typer.Exit(1)


def main() -> None:
    app()
