"""``relaykit phone``: starts a server and the demo IVR when none runs, opens the page; uses a
server that already runs; refuses a port taken by something else."""

from __future__ import annotations

import asyncio
import http.server
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from relaykit import RelayServer
from tests.helpers import WAIT
from tests.phone.page_client import PageClient

pytestmark = pytest.mark.asyncio


def _env(opened: Path) -> dict[str, str]:
    """The browser is a script that writes down the address it was asked to open."""
    opener = f"{sys.executable} -c \"import sys; open('{opened}', 'w').write(sys.argv[1])\" %s"
    return {
        **os.environ,
        "BROWSER": opener,
        "COLUMNS": "200",
        "RELAYKIT_PROJECT": "",
        "RELAYKIT_TOKEN": "",
    }


async def _read_until(proc: asyncio.subprocess.Process, pattern: str) -> tuple[re.Match, str]:
    seen = ""
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
        assert line, f"the command ended before printing {pattern!r}:\n{seen}"
        seen += line.decode()
        match = re.search(pattern, seen)
        if match:
            return match, seen


async def test_phone_starts_a_server_with_the_demo_ivr_and_opens_the_page(tmp_path):
    """With --demo on a free port: made-up credentials are printed, the page's address is
    opened in the browser, and a page that logs in with them can call the demo IVR."""
    opened = tmp_path / "opened.txt"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relaykit",
        "phone",
        "--port",
        "0",
        "--demo",
        stdout=asyncio.subprocess.PIPE,
        env=_env(opened),
    )
    try:
        credentials, _ = await _read_until(proc, r"project (\S+) and token (\S+)")
        address, _ = await _read_until(proc, r"Phone: (http://127\.0\.0\.1:(\d+)/phone)")
        await _read_until(proc, r"Demo IVR")
        url, port = address.group(1), int(address.group(2))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while not opened.exists() or not opened.read_text():
            assert loop.time() < deadline, "no browser was opened"
            await asyncio.sleep(0.05)
        assert opened.read_text() == url

        page = await PageClient.open(f"ws://127.0.0.1:{port}")
        ready = await page.log_in(credentials.group(1), credentials.group(2))
        assert ready["type"] == "ready", ready
        await page.send({"type": "dial", "context": "office"})
        await page.expect(lambda m: m["type"] == "call" and m["call"]["state"] == "answered")
        for key in "427#":
            await page.send({"type": "key", "key": key})
        result = await page.expect(
            lambda m: m["type"] == "event" and m["event"]["kind"] == "prompt.ended"
        )
        assert result["event"]["params"] == {"digits": "427", "terminator": "#"}
        await page.expect(lambda m: m["type"] == "call" and m["call"]["state"] == "ended")
        await page.close()
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), WAIT)
    assert code == 0


def _phone(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaykit", "phone", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


async def test_phone_uses_a_server_that_already_runs(tmp_path):
    """On the port of a running server it only opens the page, and leaves the server be;
    --demo there needs the project's credentials."""
    opened = tmp_path / "opened.txt"
    env = _env(opened)
    async with RelayServer(credentials={"p": "t"}) as server:
        done = await asyncio.to_thread(_phone, "--port", str(server.port), env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "already runs" in done.stdout
        assert opened.read_text() == f"http://127.0.0.1:{server.port}/phone"
        done = await asyncio.to_thread(
            _phone, "--port", str(server.port), "--demo", "--no-open", env=env
        )
        assert done.returncode == 2 and "--project and --token" in done.stdout


async def test_phone_refuses_a_port_taken_by_something_else(tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        done = await asyncio.to_thread(
            _phone, "--port", str(httpd.server_address[1]), "--no-open", env=_env(tmp_path / "x")
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert done.returncode == 2
    assert "not relaykit" in done.stdout
