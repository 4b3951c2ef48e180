"""The release installs: the wheel (not the checkout), in a fresh virtual environment, runs the
demo and the example IVR's tests; the sdist and the wheel carry what a user needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIME = 600  # seconds; an isolated build fetches setuptools on a cold cache


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build`` of this checkout: one sdist and one wheel."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=BUILD_TIME,
    )
    return out


def test_the_wheel_and_sdist_carry_the_package_its_types_and_licence(dist: Path):
    """py.typed and the licence are in the wheel; the sdist has the sources and the changelog."""
    (wheel,) = dist.glob("relaykit-*.whl")
    (sdist,) = dist.glob("relaykit-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert "relaykit/py.typed" in names
    assert "relaykit/calls/speech_worker.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        .decode()
    )
    assert "License-Expression: MIT" in metadata
    assert "Provides-Extra: plot" in metadata and "Provides-Extra: pytest" in metadata
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert {"pyproject.toml", "LICENSE", "README.md", "src/relaykit/__init__.py"} <= members


def test_the_wheel_in_a_fresh_venv_runs_the_demo_and_the_example_tests(dist: Path, tmp_path):
    """pip install the wheel (with the pytest extra) into a new venv: `relaykit demo` passes,
    and the example PIN IVR's tests pass against it."""
    (wheel,) = dist.glob("relaykit-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"relaykit[pytest] @ {wheel.as_uri()}"],
        check=True,
        capture_output=True,
        timeout=BUILD_TIME,
    )
    demo = subprocess.run(
        [str(venv / "bin" / "relaykit"), "demo", "--out", str(tmp_path / "calls")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "result='427'" in " ".join(demo.stdout.split())
    example = tmp_path / "example"
    shutil.copytree(ROOT / "examples" / "pin_ivr", example)
    (example / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    tests = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(example)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=example,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "failed" not in tests.stdout
    imported = subprocess.run(
        [str(python), "-c", "import relaykit, sys; print(relaykit.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert str(venv) in imported.stdout, "the venv's relaykit, not the checkout's"
