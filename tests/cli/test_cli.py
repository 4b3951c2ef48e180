"""The command line: help, the demo, serve's argument checks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from relaykit.cli.main import app

README = Path(__file__).parents[2] / "README.md"


def _readme_demo_transcript() -> list[str]:
    """The transcript lines the README shows for ``relaykit demo``, without their times."""
    quick_start = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick_start.split("```text\n   0.00s", 1)[1].split("```", 1)[0]
    lines = re.findall(r"^\s*[\d.]+s\s+(\w+\s+.+)$", "   0.00s" + block, flags=re.M)
    return [" ".join(line.split()) for line in lines]


def test_help_lists_the_commands():
    """`python -m relaykit --help` runs in a fresh process and names serve and demo."""
    out = subprocess.run(
        [sys.executable, "-m", "relaykit", "--help"], capture_output=True, text=True, check=True
    )
    assert "serve" in out.stdout and "demo" in out.stdout


def test_demo_prints_the_transcript_and_the_result_427(tmp_path):
    """`relaykit demo` shows the call as it happens, result 427, and writes the WAV."""
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "presses 427#" in result.output
    assert "detects key 4" in result.output
    assert "result='427'" in result.output
    # The prompt asks for pound, and pound (not the third digit) ends it.
    assert "terminator='#' reason='terminator'" in " ".join(result.output.split())
    assert "detects key #" in result.output


def test_the_readme_shows_what_the_demo_prints(tmp_path):
    """Every line of the README's demo transcript is what `relaykit demo` really prints."""
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    expected = _readme_demo_transcript()
    assert len(expected) >= 10
    missing = [line for line in expected if line not in printed]
    assert missing == [], f"README lines the demo does not print: {missing}"
    assert list(tmp_path.glob("demo-call-*.wav"))


def test_serve_without_credentials_exits_with_a_clear_message():
    """serve refuses to start without a project and token."""
    result = CliRunner().invoke(app, ["serve"], env={"RELAYKIT_PROJECT": "", "RELAYKIT_TOKEN": ""})
    assert result.exit_code == 2
    assert "--project and --token" in result.output


def test_serve_reads_credentials_from_a_file_and_never_prints_tokens(tmp_path):
    """--credentials FILE: the projects are listed, the tokens are not."""
    creds = tmp_path / "creds.txt"
    creds.write_text("alpha:secret-a\nbeta:secret-b\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "relaykit", "serve", "--port", "0", "--credentials", str(creds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "alpha, beta" in line
        assert "secret" not in line
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_with_a_broken_credentials_file_says_where():
    """A malformed credentials file is refused with its line number."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("no colon here\n")
    result = CliRunner().invoke(app, ["serve", "--credentials", f.name])
    assert result.exit_code == 2
    assert ":1: expected project:token" in result.output


def test_serve_refuses_a_media_network_that_is_not_one():
    """--media-network takes CIDR networks; anything else is refused before the server starts."""
    result = CliRunner().invoke(
        app, ["serve", "--project", "p", "--token", "t", "--media-network", "not-a-network"]
    )
    assert result.exit_code == 2
    assert "--media-network" in result.output


def test_serve_prints_its_url_and_accepts_a_client():
    """`relaykit serve --port 0` prints ws://127.0.0.1:PORT and answers blade.connect there."""
    import asyncio
    import json
    import re

    from websockets.asyncio.client import connect

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relaykit",
            "serve",
            "--port",
            "0",
            "--project",
            "p",
            "--token",
            "t",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        url = re.search(r"ws://127\.0\.0\.1:\d+", line).group(0)

        async def handshake() -> dict:
            async with connect(url) as ws:
                await ws.send(
                    json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": "1",
                            "method": "blade.connect",
                            "params": {"authentication": {"project": "p", "token": "t"}},
                        }
                    )
                )
                return json.loads(await ws.recv())

        assert asyncio.run(handshake())["result"]["authorization"]["project"] == "p"
    finally:
        proc.terminate()
        proc.wait(10)


def test_version_is_the_installed_packages():
    """`relaykit --version` prints the version the package metadata carries."""
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"relaykit {version('relaykit')}"
