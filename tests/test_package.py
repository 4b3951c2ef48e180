"""The package's shape: a closed public surface, and sans-I/O cores."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import relaykit

SRC = Path(relaykit.__file__).parent


def test_public_names_are_exactly_all():
    """Every public name of relaykit is listed in __all__, and every listed name exists.

    Judged in a fresh interpreter: a test runner may add names of its own to imported modules.
    The listed names are fetched first, so the ones loaded on first use are in vars() too.
    """
    code = (
        "import json, relaykit; [getattr(relaykit, name) for name in relaykit.__all__]; "
        "print(json.dumps([sorted(vars(relaykit)), relaykit.__all__]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    names, listed = json.loads(out.stdout)
    public = {name for name in names if not name.startswith("_")}
    subpackages = {
        "calls",
        "client",
        "errors",
        "media",
        "protocol",
        "server",
        "sip",
        "testing",
        "phone",
        "cli",
    }
    assert set(listed) - {"__version__"} == public - subpackages
    assert len(listed) == len(set(listed))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    "path",
    sorted([*(SRC / "protocol").glob("*.py"), *(SRC / "media").glob("*.py")]),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_protocol_and_media_modules_do_no_network_io(path):
    """protocol/ and media/ are sans-I/O: no asyncio, websockets or sockets."""
    assert not _imports(path) & {"asyncio", "websockets", "socket"}
