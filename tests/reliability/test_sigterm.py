"""`relaykit serve` drains on SIGTERM as on Ctrl-C: calls end, clients are told, phones get BYE."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from relaykit.testing.remote import RemoteCaller
from tests.helpers import WAIT, RawClient

pytestmark = pytest.mark.asyncio

NUMBER = "+15559870000"


async def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[tuple[asyncio.subprocess.Process, str, int]]:
    """``relaykit serve`` with SIP, in its own process; ended by its PID if a test leaves it."""
    sip_port = await _free_udp_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relaykit", "serve", "--port", "0",
        "--project", "p", "--token", "t",
        "--sip", f"127.0.0.1:{sip_port}", "--route", f"{NUMBER}=office",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = ""
        async with asyncio.timeout(WAIT):
            while "SIP on" not in banner:
                banner += (await proc.stdout.readline()).decode()
        url = re.search(r"ws://127\.0\.0\.1:\d+", banner)
        assert url is not None, banner
        yield proc, url.group(0), sip_port
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), WAIT)


async def _consumer(url: str) -> RawClient:
    client = RawClient(await connect(url))
    assert "result" in await client.handshake("p", "t")
    await client.execute("signalwire.receive", {"contexts": ["office"]})
    return client


async def _methods_until_closed(ws) -> list[str]:
    """What the server sends until it closes: call states and method names, in order."""
    seen = []
    async with asyncio.timeout(WAIT):
        async for frame in ws:
            message = json.loads(frame)
            if message.get("method") == "blade.broadcast":
                state = message["params"]["params"]["params"].get("call_state")
                seen.append(state or message["params"]["params"]["event_type"])
            elif "method" in message:
                seen.append(message["method"])
    return seen


async def test_sigterm_ends_calls_tells_clients_and_closes_with_1001(serve):
    proc, url, _sip_port = serve
    ivr = await _consumer(url)
    async with RemoteCaller(url, "p", "t") as caller:
        await caller.dial("office", timeout=WAIT)
        await ivr.event("calling.call.receive")
        proc.send_signal(signal.SIGTERM)
        seen = await _methods_until_closed(ivr.ws)
    assert seen[-3:] == ["ending", "ended", "blade.disconnect"]
    assert ivr.ws.close_code == 1001
    assert await asyncio.wait_for(proc.wait(), WAIT) == 0


async def test_sigterm_hangs_up_sip_phones_with_bye(serve):
    proc, url, sip_port = serve
    ivr = await _consumer(url)
    loop = asyncio.get_running_loop()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp,
    ):
        for sock in (phone, rtp):
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
        me, media = phone.getsockname()[1], rtp.getsockname()[1]
        sdp = (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {media} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        )
        uri = f"sip:{NUMBER}@127.0.0.1:{sip_port}"

        def request(method: str, cseq: int, to_tag: str = "", body: str = "") -> bytes:
            to = f"<sip:{NUMBER}@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
            return (
                f"{method} {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{me};rport;branch=z9hG4bK-{method}{cseq}\r\n"
                f"From: <sip:phone@127.0.0.1>;tag=phone\r\nTo: {to}\r\n"
                f"Call-ID: sigterm-call\r\nCSeq: {cseq} {method}\r\n"
                f"Contact: <sip:phone@127.0.0.1:{me}>\r\nMax-Forwards: 70\r\n"
                + ("Content-Type: application/sdp\r\n" if body else "")
                + f"Content-Length: {len(body)}\r\n\r\n{body}"
            ).encode()

        async def until(prefix: bytes) -> bytes:
            async with asyncio.timeout(WAIT):
                while True:
                    data = await loop.sock_recv(phone, 65535)
                    if data.startswith(prefix):
                        return data

        phone.sendto(request("INVITE", 1, body=sdp), ("127.0.0.1", sip_port))
        offer = await ivr.event("calling.call.receive")
        await ivr.execute(
            "calling.answer", {"call_id": offer["call_id"], "node_id": offer["node_id"]}
        )
        ok = (await until(b"SIP/2.0 200")).decode()
        to_tag = re.search(r"^To:.*;tag=([^;\r\n]+)", ok, re.MULTILINE | re.IGNORECASE)
        assert to_tag is not None, ok
        phone.sendto(request("ACK", 1, to_tag.group(1)), ("127.0.0.1", sip_port))
        await ivr.event("calling.call.state")  # answered
        proc.send_signal(signal.SIGTERM)
        bye = await until(b"BYE ")
        assert b"sigterm-call" in bye
    assert await asyncio.wait_for(proc.wait(), WAIT) == 0
