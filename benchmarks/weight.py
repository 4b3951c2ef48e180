"""What ``pip install relaykit`` weighs: ``python -m benchmarks.weight [EXTRA ...]``.

For the core package and each extra named (default: none, plot, pytest), this downloads every
wheel pip would install (``pip download``, the project built from this checkout) and installs
them into a fresh virtual environment, then prints the download size, the size installed and
the packages, largest first. Needs the network (the package registry) or a warm pip cache.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure(extra: str | None, work: Path) -> tuple[int, int, list[tuple[str, int]]]:
    """(download bytes, installed bytes, [(wheel, bytes)]) of relaykit with ``extra``."""
    spec = str(ROOT) if extra is None else f"{ROOT}[{extra}]"
    wheels = work / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels), spec],
        check=True,
        timeout=1200,
    )
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3.*")) / "site-packages"
    before = _size(venv)
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
            "--target", str(site), *map(str, sorted(wheels.iterdir())),
        ],
        check=True,
        timeout=1200,
    )  # fmt: skip
    files = sorted(((f.name, f.stat().st_size) for f in wheels.iterdir()), key=lambda x: -x[1])
    return sum(size for _, size in files), _size(venv) - before, files


def main() -> None:
    parser = argparse.ArgumentParser(description="What pip install relaykit weighs.")
    parser.add_argument("extras", nargs="*", default=["", "plot", "pytest"])
    args = parser.parse_args()
    for extra in args.extras:
        with tempfile.TemporaryDirectory() as tmp:
            download, installed, files = measure(extra or None, Path(tmp))
        name = f"relaykit[{extra}]" if extra else "relaykit"
        print(f"\n{name}: {len(files)} packages, {download / 1e6:.1f} MB to download, "
              f"{installed / 1e6:.1f} MB installed")  # fmt: skip
        for file, size in files:
            print(f"  {size / 1e6:7.2f} MB  {file}")


if __name__ == "__main__":
    main()
