"""The documentation site builds with ``mkdocs build --strict`` (broken links, missing references
and pages left out of the navigation fail), documents every public name and every RELAY method
the server speaks, and the README stays a short door into it."""

from __future__ import annotations

import html
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from relaykit.server.handlers import METHODS

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 600  # seconds; the build takes about 10 s on an idle 2-core machine
PUBLIC_MODULES = ("relaykit", "relaykit.client", "relaykit.testing", "relaykit.calls")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    print(f"mkdocs build --strict: {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generated_pages", ROOT / "docs" / "hooks" / "generated_pages.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_site_builds_strictly_with_every_page(site: Path):
    for page in ("index.html", "getting-started/index.html", "reference/cli/index.html"):
        assert (site / page).is_file(), page
    results = (site / "benchmarks" / "RESULTS" / "index.html").read_text()
    for line in (ROOT / "benchmarks" / "RESULTS.md").read_text().splitlines():
        if line.startswith("## "):  # the page is benchmarks/RESULTS.md, as it is now
            assert html.escape(line[3:].strip().replace("`", ""), quote=False) in results
    cli = (site / "reference" / "cli" / "index.html").read_text()
    for command in ("serve", "demo", "phone", "call", "timeline", "drain"):
        assert f"relaykit {command}" in cli, f"the CLI reference lacks {command}"


def test_every_public_name_has_a_reference_entry(site: Path):
    from mkdocstrings import Inventory

    with (site / "objects.inv").open("rb") as inventory:
        documented = set(Inventory.parse_sphinx(inventory))
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if name.startswith("__"):
                continue
            home = getattr(module, name).__module__
            if f"{module_name}.{name}" not in documented and f"{home}.{name}" not in documented:
                missing.append(f"{module_name}.{name}")
    errors = importlib.import_module("relaykit.errors")
    for name, value in vars(errors).items():
        ours = isinstance(value, type) and value.__module__ == errors.__name__
        if ours and f"relaykit.errors.{name}" not in documented:
            missing.append(f"relaykit.errors.{name}")
    assert not missing, f"not in the API reference: {missing}"


def test_the_wire_reference_names_every_method_the_server_speaks():
    wire = (ROOT / "docs" / "reference" / "wire.md").read_text()
    documented = set(re.findall(r"^\| `([\w.]+)` \|", wire, flags=re.M))
    assert set(METHODS) <= documented, f"undocumented: {sorted(set(METHODS) - documented)}"
    assert documented <= set(METHODS) | {"signalwire.receive"}, sorted(documented - set(METHODS))


def test_links_written_for_the_repository_work_in_the_site():
    """Benchmark results (or any page) may link as a reader of the repository would: to the
    docs, to benchmark pages and pictures, to scripts; none breaks the strict build."""
    site = {"speech.md", "guides/sip.md", "benchmarks/README.md", "benchmarks/scaling.png"}
    results = "\n".join(
        [
            "How: [README.md](README.md#attacks); why: [speech](../docs/speech.md#hints).",
            "![the curve](scaling.png) by [engine.py](engine.py), [`_common.py`](_common.py),",
            "in [the engine](../src/relaykit/media/engine.py); see [a page](../docs/gone.md).",
            "```text",
            "[not a link](engine.py)",
            "```",
            "`[nor this](engine.py)` and <https://example.org/x.md>",
        ]
    )
    assert _hook().rewrite_links(results, "benchmarks/RESULTS.md", site).splitlines() == [
        "How: [README.md](README.md#attacks); why: [speech](../speech.md#hints).",
        "![the curve](scaling.png) by `benchmarks/engine.py`, `benchmarks/_common.py`,",
        "in the engine (`src/relaykit/media/engine.py`); see [a page](../docs/gone.md).",
        "```text",
        "[not a link](engine.py)",
        "```",
        "`[nor this](engine.py)` and <https://example.org/x.md>",
    ]
    performance = "Figures: [RESULTS](../benchmarks/RESULTS.md), [SIP](guides/sip.md#limits)."
    assert _hook().rewrite_links(
        performance, "performance.md", site | {"benchmarks/RESULTS.md"}
    ) == ("Figures: [RESULTS](benchmarks/RESULTS.md), [SIP](guides/sip.md#limits).")


def test_the_readme_is_short_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if "://" not in link]
    assert any(link.startswith("docs/") for link in local), "the README links to the docs"
    for link in local:
        assert (ROOT / link).exists(), f"README links to {link}, which is not there"


def test_the_error_tree_in_the_errors_docstring_is_the_real_one():
    """The exception tree drawn in ``relaykit.errors``'s docstring (a block of the API page)."""
    errors = importlib.import_module("relaykit.errors")
    parents: list[type] = []
    drawn = 0
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^(\s*)(?:[│ ]*[├└]── )?([A-Z]\w+Error)\b", line)
        if not match:
            continue
        depth = (len(line) - len(line.lstrip(" │├└─"))) // 4  # the root is drawn at depth 1
        cls = getattr(errors, match[2])
        del parents[depth - 1 :]
        if parents:
            assert issubclass(cls, parents[-1]), f"{cls.__name__} is not a {parents[-1].__name__}"
        parents.append(cls)
        drawn += 1
    assert drawn >= 10
