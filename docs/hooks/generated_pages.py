"""MkDocs hook: pages generated from the code and the repository, never copied by hand.

* ``reference/cli.md``: the ``relaykit`` command line, from the Typer app (Typer's own
  markdown generator, the one ``typer ... utils docs`` runs).
* ``benchmarks/*.md``: the benchmark notes and results, from ``benchmarks/`` as they are; their
  links to ``../docs/X`` point at the same pages inside the site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
BENCHMARK_PAGES = ("README.md", "RESULTS.md", "AMD.md")


def cli_reference() -> str:
    """The CLI's reference in markdown, generated from the Typer app."""
    import typer.main
    from typer.cli import get_docs_for_click

    from relaykit.cli.main import app

    command = typer.main.get_command(app)
    with typer.Context(command, info_name="relaykit") as ctx:  # type: ignore[arg-type]
        body = get_docs_for_click(obj=command, ctx=ctx, name="relaykit", title="Command line")
    intro = (
        "Generated from the `relaykit` command's own help (the Typer app in "
        "`relaykit.cli.main`); `relaykit COMMAND --help` prints the same. Task by task: "
        "[the command-line guide](../guides/cli.md).\n\n"
    )
    title, _, rest = body.partition("\n")
    return f"{title}\n\n{intro}{rest}"


def benchmark_page(name: str) -> str:
    text = (ROOT / "benchmarks" / name).read_text(encoding="utf-8")
    return text.replace("](../docs/", "](../")


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    files.append(File.generated(config, "reference/cli.md", content=cli_reference()))
    for name in BENCHMARK_PAGES:
        files.append(File.generated(config, f"benchmarks/{name}", content=benchmark_page(name)))
    return files
