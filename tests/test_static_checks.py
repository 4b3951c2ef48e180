"""The static checks CI runs with the suite: ruff, mypy, the import-linter layer contracts, and
no module reaching into another package's private names."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "relaykit"
TIME_LIMIT = 600  # seconds, for a cold mypy on a loaded machine


def _run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT,
        env=env,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{output}"
    return output


def test_ruff_finds_nothing():
    """ruff's lint rules and formatting hold for the package, tests, benchmarks and fuzzing."""
    paths = ["src", "tests", "benchmarks", "fuzzing", "examples"]
    _run("ruff", "check", *paths)
    _run("ruff", "format", "--check", *paths)


def test_mypy_finds_nothing():
    """mypy is clean on src/ (strict on protocol/ and client/, as pyproject.toml says)."""
    _run("mypy")


def test_layers_import_downward_only():
    """The import-linter contracts of pyproject.toml are kept."""
    _lint_imports(ROOT)


def _lint_imports(project: Path, env: dict[str, str] | None = None) -> str:
    script = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    done = subprocess.run(
        [sys.executable, "-c", script, "--no-cache"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT,
        env=env,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"import contracts broken:\n{output}"
    return output


def test_the_layer_contract_catches_an_upward_import(tmp_path):
    """The contracts are real: a core module that imports the server breaks them."""
    shutil.copytree(ROOT / "src", tmp_path / "src")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    state = tmp_path / "src" / "relaykit" / "calls" / "state.py"
    state.write_text(state.read_text() + "\nfrom ..server import app as _upward  # noqa\n")
    env = {"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin"}
    with pytest.raises(AssertionError, match=r"(?s)relaykit.calls is not allowed to import"):
        _lint_imports(tmp_path, env)


# -- private names ---------------------------------------------------------------------------
def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _private_names_defined() -> dict[str, set[str]]:
    """Per package: every _name it defines (functions, classes, attributes, fields)."""
    defined: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        names = defined[_package_of(path)]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return defined


def test_no_package_reaches_into_another_packages_private_names():
    """``obj._name`` only where ``_name`` is defined in the same package of relaykit."""
    defined = _private_names_defined()
    foreign: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        own = defined[_package_of(path)]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            name = node.attr
            if not name.startswith("_") or name.startswith("__") or name in own:
                continue
            foreign.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert foreign == []


def test_importing_relaykit_or_its_cli_help_loads_no_numpy_or_media():
    """An SDK-only user and ``relaykit --help`` load neither numpy nor the media engine."""
    heavy = (
        "[m for m in sys.modules"
        " if m == 'numpy' or m.startswith(('relaykit.media', 'relaykit.server'))]"
    )
    cli_help = (
        "from typer.testing import CliRunner; from relaykit.cli.main import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output"
    )
    for code in (
        f"import sys, relaykit; from relaykit import Consumer, Call; print({heavy})",
        f"import sys; {cli_help}; print({heavy})",
    ):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
        )
        assert done.stdout.strip() == "[]", done.stdout


def test_every_public_class_has_a_docstring():
    """Public classes of public modules say what they are in a docstring."""
    missing = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).parts
        if any(p.startswith("_") and p != "__init__.py" for p in parts):
            continue
        for node in ast.parse(path.read_text()).body:
            public = isinstance(node, ast.ClassDef) and not node.name.startswith("_")
            if public and ast.get_docstring(node) is None:
                missing.append(f"{path.relative_to(SRC.parent)}:{node.lineno} {node.name}")
    assert missing == []
