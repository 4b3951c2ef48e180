"""MkDocs hook: pages generated from the code and the repository, never copied by hand, and
links written for the repository made to work in the site.

* ``reference/cli.md``: the ``relaykit`` command line, from the Typer app (Typer's own
  markdown generator, the one ``typer ... utils docs`` runs).
* ``benchmarks/*.md``: the benchmark notes and results, from ``benchmarks/`` as they are,
  whatever they contain, with the pictures beside them.
* Every page's links are written as a reader of the repository follows them (from
  ``docs/guides/x.md`` or ``benchmarks/RESULTS.md``): one to a file the site has (``docs/X``,
  a benchmark page or picture) becomes the link inside the site; one to another file of the
  repository (a script, an example) becomes its path in code, since the site has no copy; a
  link to nothing is left for ``mkdocs build --strict`` to report.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[2]
BENCHMARK_PAGES = ("README.md", "RESULTS.md", "AMD.md")
PICTURES = ("*.png", "*.svg", "*.jpg", "*.gif")


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


# Fenced code, a markdown link or picture ([text](target), ![alt](target "title")), or a code
# span, whichever starts first: links inside code stay as they are.
_MARKUP = re.compile(
    r"(?P<fence>^ {0,3}(?:```|~~~).*?^ {0,3}(?:```|~~~)[^\n]*$)"
    r'|(?P<bang>!?)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?P<title>\s+"[^"]*")?\)'
    r"|(?P<code>`[^`\n]*`)",
    re.S | re.M,
)


def in_repository(src_uri: str) -> str:
    """Where a page of the site sits in the repository."""
    if src_uri.startswith("benchmarks/"):
        return src_uri
    return f"docs/{src_uri}"


def rewrite_links(markdown: str, src_uri: str, site: set[str]) -> str:
    """``markdown``'s links, written from the page's place in the repository, as the site at
    ``src_uri`` serves it (``site``: every file the site has)."""
    here = posixpath.dirname(in_repository(src_uri))
    page_dir = posixpath.dirname(src_uri)

    def one(match: re.Match[str]) -> str:
        if match["target"] is None:
            return match[0]  # code
        path, hash_, anchor = match["target"].partition("#")
        if not path or ":" in path or path.startswith("/"):
            return match[0]  # an anchor on the page, a URL, an absolute path
        where = posixpath.normpath(posixpath.join(here, path))
        target = where.removeprefix("docs/") if where.startswith("docs/") else where
        if target in site:
            link = posixpath.relpath(target, page_dir or ".") + hash_ + anchor
            return f"{match['bang']}[{match['text']}]({link}{match['title'] or ''})"
        if where.startswith(("docs/", "../")) or not (ROOT / where).exists():
            return match[0]  # a broken link: the strict build names it
        if match["bang"]:
            return f"`{where}`"
        if match["text"].strip("`") in (path, where):
            return f"`{where}`"
        return f"{match['text']} (`{where}`)"

    return _MARKUP.sub(one, markdown)


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    files.append(File.generated(config, "reference/cli.md", content=cli_reference()))
    folder = ROOT / "benchmarks"
    for name in BENCHMARK_PAGES:
        content = (folder / name).read_text(encoding="utf-8")
        files.append(File.generated(config, f"benchmarks/{name}", content=content))
    for picture in sorted({p for pattern in PICTURES for p in folder.glob(pattern)}):
        files.append(
            File.generated(config, f"benchmarks/{picture.name}", abs_src_path=str(picture))
        )
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    return rewrite_links(markdown, page.file.src_uri, {f.src_uri for f in files})
