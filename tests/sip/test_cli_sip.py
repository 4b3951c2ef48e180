"""``relaykit serve --sip HOST:PORT --route NUMBER=CONTEXT`` in a real subprocess."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import pytest
from typer.testing import CliRunner

from relaykit.cli.main import app
from tests.helpers import WAIT
from tests.sip.peers import LOOPBACK, free_port, stop_process

pytestmark = pytest.mark.asyncio


async def test_serve_with_sip_answers_options_and_prints_its_routes():
    sip_port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relaykit", "serve", "--port", "0",
        "--project", "p", "--token", "t",
        "--sip", f"{LOOPBACK}:{sip_port}", "--route", "+15559870000=office",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = ""
        async with asyncio.timeout(WAIT):
            while "SIP on" not in banner:
                banner += (await proc.stdout.readline()).decode()
        assert f"udp:{LOOPBACK}:{sip_port}" in banner and "+15559870000 → office" in banner
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((LOOPBACK, 0))
            sock.setblocking(False)
            me = sock.getsockname()[1]
            options = (
                f"OPTIONS sip:{LOOPBACK}:{sip_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {LOOPBACK}:{me};branch=z9hG4bK-cli\r\n"
                f"From: <sip:t@{LOOPBACK}>;tag=1\r\nTo: <sip:{LOOPBACK}>\r\n"
                "Call-ID: cli\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
            sock.sendto(options.encode(), (LOOPBACK, sip_port))
            loop = asyncio.get_running_loop()
            reply = await asyncio.wait_for(loop.sock_recv(sock, 4096), WAIT)
        assert reply.startswith(b"SIP/2.0 200 OK")
    finally:
        await stop_process(proc)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sip", "5060"], "--sip must be HOST:PORT"),
        (["--sip", "127.0.0.1:5060", "--route", "office"], "a route is NUMBER=CONTEXT"),
    ],
)
async def test_serve_rejects_bad_sip_options(args, message):
    result = CliRunner().invoke(app, ["serve", "--project", "p", "--token", "t", *args])
    assert result.exit_code == 2
    assert message in result.output
