"""The phone page's side of its WebSocket, in Python: for tests of the wire format."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import WAIT


class PageClient:
    """Speaks ``/phone/ws`` like the page: JSON messages, binary audio frames."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []  # every JSON message, in order
        self.audio = bytearray()  # every IVR audio frame, concatenated
        self.frames = 0
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server_url: str, origin: str | None = None) -> PageClient:
        """Connect to the phone's socket of the server at ``server_url`` (ws://host:port)."""
        url = server_url + "/phone/ws"
        headers = {} if origin is None else {"Origin": origin}
        return cls(await connect(url, additional_headers=headers, max_size=None))

    async def log_in(self, project: str, token: str) -> dict[str, Any]:
        await self.send({"type": "auth", "project": project, "token": token})
        return await self.expect(lambda m: m["type"] in ("ready", "error"))

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def expect(self, match: Any, timeout: float = WAIT) -> dict[str, Any]:
        """The first message (seen so far or arriving) that ``match(message)`` accepts;
        a string matches the message type."""
        test = (lambda m: m["type"] == match) if isinstance(match, str) else match
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for message in self.messages:
                if test(message):
                    return message
            remaining = deadline - loop.time()
            if remaining <= 0 or self._reader.done():
                raise AssertionError(f"no matching message; got {self.messages[-10:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes):
                    self.audio += frame
                    self.frames += 1
                else:
                    self.messages.append(json.loads(frame))
                self._changed.set()
        finally:
            self._changed.set()
