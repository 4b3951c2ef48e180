"""A bare HTTP/1.1 client: sends the request line exactly as given (no path clean-up)."""

from __future__ import annotations

import asyncio
import base64

from tests.helpers import WAIT


async def get(
    port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers with lower-case names, body)`` of one request to 127.0.0.1:port."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), parsed, body


def bearer(project: str, token: str) -> dict[str, str]:
    """The Authorization header the page sends with downloads."""
    return {"Authorization": "Bearer " + base64.b64encode(f"{project}:{token}".encode()).decode()}
