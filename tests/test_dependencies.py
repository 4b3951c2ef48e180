"""Every third-party module that src/ imports is declared in pyproject.toml.

A fresh virtual environment holds only what is declared, so an undeclared import breaks
``pip install relaykit`` for every new user while passing on a machine that happens to have it.
Core modules import core dependencies only; a module of an optional feature (an extra) may import
the extra's distributions at module level only when it is loaded solely with that feature (as
the pytest plugin is, by pytest), and everywhere else lazily, inside a function.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# Modules loaded only together with their extra, so they may import it at module level.
FEATURE_MODULES = {"relaykit/pytest_plugin/__init__.py": "pytest"}


@dataclass(frozen=True)
class Import:
    path: str  # relative to src/
    line: int
    module: str  # top-level module name
    lazy: bool  # inside a function or a try block: only runs when the feature is used


def _dist_name(requirement: str) -> str:
    name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> tuple[set[str], dict[str, set[str]]]:
    """Core distributions, and each extra's distributions (extras that name relaykit expanded)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_dist_name(r) for r in project["dependencies"]}
    raw = project.get("optional-dependencies", {})
    extras: dict[str, set[str]] = {}

    def expand(extra: str) -> set[str]:
        names: set[str] = set()
        for requirement in raw[extra]:
            if _dist_name(requirement) == "relaykit":
                inner = re.search(r"\[([^\]]+)\]", requirement)
                for name in inner.group(1).split(",") if inner else []:
                    names |= expand(name.strip())
            else:
                names.add(_dist_name(requirement))
        return names

    for extra in raw:
        extras[extra] = expand(extra)
    return core, extras


def third_party_imports() -> list[Import]:
    found: list[Import] = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        tree = ast.parse(path.read_text(), filename=str(path))
        _walk(tree, rel, lazy=False, found=found)
    return found


def _walk(node: ast.AST, rel: str, *, lazy: bool, found: list[Import]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            if isinstance(child, ast.ImportFrom):
                names = [child.module] if child.level == 0 and child.module else []
            else:
                names = [alias.name for alias in child.names]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "relaykit":
                    found.append(Import(rel, child.lineno, top, lazy))
        inner_lazy = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Try)
        if isinstance(child, ast.If) and _is_type_checking(child.test):  # never runs
            continue
        _walk(child, rel, lazy=inner_lazy, found=found)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def undeclared(imports: list[Import], core: set[str], extras: dict[str, set[str]]) -> list[str]:
    """Problems, one line each: imports no declaration covers, or an extra imported eagerly."""
    distributions = md.packages_distributions()
    problems: list[str] = []
    for imp in imports:
        where = f"src/{imp.path}:{imp.line} imports {imp.module}"
        dists = {_dist_name(d) for d in distributions.get(imp.module, [])}
        if not dists:
            problems.append(f"{where}, which no installed distribution provides")
            continue
        if dists & core:
            continue
        guarding = sorted(extra for extra, names in extras.items() if dists & names)
        if not guarding:
            problems.append(f"{where} ({', '.join(sorted(dists))}): not declared in pyproject.toml")
        elif not imp.lazy and FEATURE_MODULES.get(imp.path) not in guarding:
            problems.append(
                f"{where} at module level, but it is only in extra(s) {guarding}: "
                "import it lazily with an error naming the extra"
            )
    return problems


def test_every_third_party_import_is_declared():
    """A fresh venv with relaykit's declared dependencies can import everything it imports."""
    core, extras = declared()
    assert undeclared(third_party_imports(), core, extras) == []


@pytest.mark.parametrize("dist", ["numpy", "websockets", "typer"])
def test_removing_a_core_declaration_is_caught(dist):
    """The check is real: drop one declared dependency and it names the importing files."""
    core, extras = declared()
    problems = undeclared(third_party_imports(), core - {dist}, extras)
    assert problems, f"removing {dist} went unnoticed"
    assert all("not declared" in p or "at module level" in p for p in problems)


def test_an_extra_imported_at_module_level_is_caught():
    """Moving a core dependency to an extra is caught where core modules import it eagerly."""
    core, extras = declared()
    moved = {**extras, "fast": extras.get("fast", set()) | {"numpy"}}
    problems = undeclared(third_party_imports(), core - {"numpy"}, moved)
    assert any("numpy at module level" in p for p in problems)


def test_the_pytest_plugin_names_its_extra_when_a_part_is_missing():
    """Lazily imported parts of the pytest feature say which extra installs them."""
    plugin = (SRC / "relaykit/pytest_plugin/__init__.py").read_text()
    assert "relaykit[pytest]" in plugin
    _core, extras = declared()
    assert {"pytest", "pytest-asyncio", "looptime"} <= extras["pytest"]
