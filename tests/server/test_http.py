"""Plain HTTP beside RELAY on the server's port: routes by prefix, 404 elsewhere."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest

from relaykit.server.http import HttpReply
from tests.helpers import WAIT

pytestmark = pytest.mark.asyncio


def _get(url: str, method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


async def test_a_route_answers_get_and_head_and_other_paths_get_404(server, raw_client):
    """A GET under a route's prefix reaches it; HEAD has no body; other paths are 404;
    RELAY over WebSocket on the same port goes on working."""

    async def hello(request):
        return HttpReply(200, f"hello {request.path}".encode(), "text/plain")

    server.http.add("/hello/", hello)
    base = server.url.replace("ws://", "http://")
    status, body, headers = await asyncio.to_thread(_get, base + "/hello/there")
    assert (status, body) == (200, b"hello /hello/there")
    assert headers["Content-Type"] == "text/plain"
    status, body, headers = await asyncio.to_thread(_get, base + "/hello/there", "HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(len("hello /hello/there")))
    status, _body, _headers = await asyncio.to_thread(_get, base + "/elsewhere")
    assert status == 404
    client = await raw_client()
    assert "result" in await client.handshake()


async def test_a_failing_route_gets_500_and_the_server_stays_up(server):
    """A route that raises answers 500 without details; the next request is served."""

    async def broken(request):
        raise RuntimeError("secret detail")

    server.http.add("/broken", broken)
    base = server.url.replace("ws://", "http://")
    status, body, _ = await asyncio.to_thread(_get, base + "/broken")
    assert status == 500 and b"secret" not in body
    status, _, _ = await asyncio.to_thread(_get, base + "/broken")
    assert status == 500
