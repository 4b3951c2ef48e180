"""The package's shape: a closed public surface, and sans-I/O cores."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import relaykit

SRC = Path(relaykit.__file__).parent


def test_public_names_are_exactly_all():
    """Every public name of relaykit is listed in __all__, and every listed name exists."""
    public = {name for name in vars(relaykit) if not name.startswith("_")}
    subpackages = {"client", "errors", "media", "protocol", "server", "sip", "testing", "cli"}
    assert set(relaykit.__all__) - {"__version__"} == public - subpackages
    assert len(relaykit.__all__) == len(set(relaykit.__all__))


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
