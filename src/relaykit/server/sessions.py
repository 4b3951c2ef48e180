"""Server-side sessions: one per authenticated client, outliving its socket for a grace window.

While detached, a session's events are kept in order in a bounded backlog; when the client
resumes (``blade.connect`` with its ``sessionid``) and subscribes again, they are sent first.
"""

from __future__ import annotations

__all__ = ["ServerSession"]

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..protocol import blade
from ..protocol.jsonrpc import Request, new_id, serialize

log = logging.getLogger("relaykit.server")


@dataclass(eq=False, slots=True)
class ServerSession:
    """What the server knows about one client: project, protocol, contexts, where to send."""

    project: str
    agent: str
    max_backlog: int = 10_000
    sessionid: str = field(default_factory=lambda: str(uuid.uuid4()))
    protocol: str | None = None
    subscribed: bool = False
    contexts: dict[str, float] = field(default_factory=dict)  # context -> routable from (loop time)
    # Set while a socket is attached; frames are handed to it, never awaited here.
    send: Callable[[str], None] | None = None
    backlog: deque[str] = field(default_factory=deque)
    dropped: int = 0  # events lost because the backlog was full
    expiry: asyncio.TimerHandle | None = None

    def new_protocol(self, signature: str) -> str:
        # §2.2: the second "_"-separated segment is the authorization signature.
        self.protocol = f"signalwire_{signature}_{uuid.uuid4().hex}"
        return self.protocol

    def attach(self, send: Callable[[str], None]) -> None:
        self.send = send
        self.subscribed = False  # events wait in the backlog until the client subscribes again

    def detach(self) -> None:
        self.send = None
        self.subscribed = False

    def flush(self) -> None:
        """Send the events queued while the client was away, oldest first."""
        if self.send is None or not self.subscribed:
            return
        if self.dropped:
            log.warning("! session %s lost %d events (backlog full)", self.sessionid, self.dropped)
            self.dropped = 0
        while self.backlog:
            self.send(self.backlog.popleft())

    def broadcast(
        self,
        event_type: str,
        params: Mapping[str, Any],
        *,
        nodeid: str,
        space_id: str,
        context: str | None = None,
    ) -> None:
        """Send one RELAY event, or keep it for the client's return."""
        if self.protocol is None:
            return
        payload = blade.broadcast_params(
            protocol=self.protocol,
            event_type=event_type,
            params=params,
            broadcaster_nodeid=nodeid,
            project_id=self.project,
            space_id=space_id,
            context=context,
        )
        text = serialize(Request(blade.BROADCAST, payload, new_id()))
        if self.send is not None and self.subscribed and not self.backlog:
            self.send(text)
            return
        if len(self.backlog) >= self.max_backlog:
            self.backlog.popleft()
            self.dropped += 1
        self.backlog.append(text)
