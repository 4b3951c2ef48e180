"""Server-side sessions: one per authenticated client, outliving its socket for a grace window."""

from __future__ import annotations

__all__ = ["ServerSession"]

import logging
import uuid
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
    sessionid: str = field(default_factory=lambda: str(uuid.uuid4()))
    protocol: str | None = None
    subscribed: bool = False
    contexts: dict[str, float] = field(default_factory=dict)  # context -> routable from (loop time)
    # Set while a socket is attached; frames are handed to it, never awaited here.
    send: Callable[[str], None] | None = None

    def new_protocol(self, signature: str) -> str:
        # §2.2: the second "_"-separated segment is the authorization signature.
        self.protocol = f"signalwire_{signature}_{uuid.uuid4().hex}"
        return self.protocol

    def broadcast(
        self,
        event_type: str,
        params: Mapping[str, Any],
        *,
        nodeid: str,
        space_id: str,
        context: str | None = None,
    ) -> bool:
        """Send one RELAY event; False when the client is not ready to receive it."""
        if self.send is None or self.protocol is None:
            return False
        payload = blade.broadcast_params(
            protocol=self.protocol,
            event_type=event_type,
            params=params,
            broadcaster_nodeid=nodeid,
            project_id=self.project,
            space_id=space_id,
            context=context,
        )
        self.send(serialize(Request(blade.BROADCAST, payload, new_id())))
        return True
