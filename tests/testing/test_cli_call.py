"""`relaykit call` against a server and IVR in this process; `relaykit timeline` on its log."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from relaykit.cli.call import STEP_OPTIONS, Step, ordered_steps
from relaykit.cli.main import app
from tests.helpers import WAIT

# The caller runs in another process at its own pace: this server must keep real time.
pytestmark = pytest.mark.relaykit(fast=False)

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


@pytest.fixture
def menu():
    sys.path.insert(0, os.path.join(EXAMPLES, "speech_menu"))
    try:
        from speech_menu import SpeechMenu

        yield SpeechMenu
    finally:
        sys.path.pop(0)


async def relaykit_call(server, *args: str, token: str | None = None) -> tuple[int, str]:
    """Run `relaykit call` in a subprocess against ``server``; (exit code, output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relaykit",
        "call",
        "--url",
        server.url,
        "--project",
        server.project,
        "--token",
        token or server.token,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 4 * WAIT)
    return proc.returncode or 0, out.decode()


@pytest.mark.asyncio
async def test_the_cli_caller_runs_its_steps_in_order_and_prints_the_call(
    relay_server, relay_ivr, menu, tmp_path
):
    """--expect, --press and --save against the speech menu: exit 0, transcript, WAV + JSON."""
    await relay_ivr(menu)
    wav = tmp_path / "call.wav"
    code, out = await relaykit_call(
        relay_server,
        "--context",
        "menu",
        "--expect",
        "thank you for calling acme",
        "--expect",
        "say sales or support",
        "--press",
        "2",
        "--save",
        str(wav),
    )
    assert code == 0, out
    lines = out.splitlines()
    assert any(line.endswith("caller  presses 2") for line in lines)
    assert any("ivr  plays tts 'Connecting you to support. Goodbye.'" in line for line in lines)
    assert "✓ call completed as scripted" in out
    assert wav.exists() and wav.with_suffix(".json").exists()

    png = tmp_path / "timeline.png"
    result = CliRunner().invoke(app, ["timeline", str(wav.with_suffix(".json")), "-o", str(png)])
    assert result.exit_code == 0, result.output
    with Image.open(png) as image:
        width, height = image.size
    assert 1500 <= width <= 5000 and 600 <= height <= 2500


@pytest.mark.asyncio
async def test_the_cli_caller_says_words_into_a_speech_prompt(relay_server, relay_ivr, menu):
    """--say sales is heard by the IVR's speech prompt."""
    await relay_ivr(menu)
    code, out = await relaykit_call(relay_server, "--context", "menu", "--say", "sales")
    assert code == 0, out
    assert "prompt ends: speech {'text': 'sales'" in out


@pytest.mark.asyncio
async def test_a_failing_step_exits_1_with_what_was_heard(relay_server, relay_ivr, menu):
    """An --expect that never comes: exit code 1 and the readable message."""
    await relay_ivr(menu)
    code, out = await relaykit_call(
        relay_server, "--context", "menu", "--expect", "your balance", "--prompt-timeout", "2"
    )
    assert code == 1, out
    assert "✗ step 1 (--expect your balance) failed: expect_prompt(contains='your balance')" in out
    assert "The IVR played:" in out
    await asyncio.sleep(0.5)
    assert all(c.ended for c in relay_server.callers)  # the caller hung up on its way out


@pytest.mark.asyncio
async def test_wrong_credentials_exit_3(relay_server):
    """A refused token is exit code 3, with a message saying so."""
    code, out = await relaykit_call(relay_server, "--context", "menu", token="wrong")
    assert code == 3, out
    assert "refused the credentials" in out


def test_steps_keep_the_command_line_order():
    """Interleaved step options run as given, including --opt=value and option-like values."""
    args = ["--context", "m", "--press", "1", "--say=sales", "--silence", "0.5", "--say", "--press"]
    args += ["--url", "--press", "--expect", "bye"]
    steps = ordered_steps(args, {"--context", "--url", *STEP_OPTIONS})
    assert steps == [
        Step("press", "1"),
        Step("say", "sales"),
        Step("silence", "0.5"),
        Step("say", "--press"),
        Step("expect", "bye"),
    ]


def test_call_and_timeline_are_listed_in_the_help():
    """`relaykit --help` shows the new commands beside serve and demo."""
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "demo", "call", "timeline"):
        assert command in result.output


def test_timeline_refuses_a_file_that_is_not_a_call_log(tmp_path):
    """A JSON without a transcript is exit code 2 with a message."""
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    result = CliRunner().invoke(app, ["timeline", str(bad)])
    assert result.exit_code == 2
    assert "not a relaykit call log" in " ".join(result.output.split())
