"""Helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from websockets.asyncio.client import ClientConnection

PROJECT = "test-project"
TOKEN = "test-token"
WAIT = 15.0  # generous upper bound for anything that should happen; never a timing claim


async def outcome(queue: asyncio.Queue) -> Any:
    """The IVR handler's next outcome; re-raises what it raised."""
    value = await asyncio.wait_for(queue.get(), WAIT)
    if isinstance(value, Exception):
        raise value
    return value


class RawClient:
    """A bare WebSocket client speaking JSON frames, for wire-level tests."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.protocol: str | None = None
        self.events: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), WAIT))

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a request; return its reply, keeping broadcasts that arrive meanwhile."""
        request_id = str(uuid.uuid4())
        await self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return await self.reply_to(request_id)

    async def reply_to(self, request_id: str) -> dict[str, Any]:
        while True:
            frame = await self.recv()
            if frame.get("method") == "blade.broadcast":
                self.events.append(frame)
                continue
            if frame.get("id") == request_id:
                return frame

    async def execute(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self.call(
            "blade.execute", {"protocol": self.protocol, "method": method, "params": params}
        )

    async def handshake(self, project: str = PROJECT, token: str = TOKEN) -> dict[str, Any]:
        reply = await self.call(
            "blade.connect",
            {
                "version": {"major": 2, "minor": 3, "revision": 0},
                "authentication": {"project": project, "token": token},
                "agent": "Python SDK/2.1.1",
            },
        )
        if "error" in reply:
            return reply
        setup = await self.call(
            "blade.execute", {"protocol": "signalwire", "method": "setup", "params": {}}
        )
        self.protocol = setup["result"]["result"]["protocol"]
        await self.call(
            "blade.subscription",
            {
                "command": "add",
                "protocol": self.protocol,
                "channels": ["notifications"],
            },
        )
        return reply

    async def event(self, event_type: str) -> dict[str, Any]:
        """The next broadcast of ``event_type`` (inner params)."""
        for i, frame in enumerate(self.events):
            if frame["params"]["params"]["event_type"] == event_type:
                del self.events[i]
                return frame["params"]["params"]["params"]
        while True:
            frame = await self.recv()
            if frame.get("method") != "blade.broadcast":
                continue
            if frame["params"]["params"]["event_type"] == event_type:
                return frame["params"]["params"]["params"]
            self.events.append(frame)
