"""RELAY sessions: one per authenticated client, outliving its socket for a grace window.

While detached, a session's events are kept in order in a bounded backlog; when the client
resumes (``blade.connect`` with its ``sessionid``) and subscribes again, they are sent first.
The :class:`SessionRegistry` logs clients in, resumes and expires sessions, and picks the
consumer an inbound call is offered to (it is the call service's ``Receivers``).
"""

from __future__ import annotations

__all__ = [
    "CONTEXT_SETTLE_SECONDS",
    "ServerSession",
    "SessionObserver",
    "SessionRegistry",
    "signature",
]

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..calls import CallEvent, CallService
from ..errors import AuthenticationError, LimitExceededError, RelayTimeoutError
from ..protocol import blade
from ..protocol.jsonrpc import Request, new_id, serialize
from .auth import AuthThrottle, Credentials
from .relay_events import to_relay

log = logging.getLogger("relaykit.server")

# The v2 SDK registers its call handler only after signalwire.receive is answered; an offer sent
# at once would be dropped, so a context becomes routable a moment later.
CONTEXT_SETTLE_SECONDS = 0.1


def signature(project: str) -> str:
    """The authorization signature of a project's protocol names (§2.2)."""
    return hashlib.sha256(f"relaykit:{project}".encode()).hexdigest()[:32]


@dataclass(eq=False, slots=True)
class ServerSession:
    """What the server knows about one client: project, protocol, contexts, where to send."""

    project: str
    agent: str
    nodeid: str
    space_id: str
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

    def new_protocol(self) -> str:
        # §2.2: the second "_"-separated segment is the authorization signature.
        self.protocol = f"signalwire_{signature(self.project)}_{uuid.uuid4().hex}"
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

    def deliver(self, event: CallEvent) -> None:
        """A call event for this consumer: sent as its RELAY event, if it has one."""
        wire = to_relay(event)
        if wire is not None:
            event_type, params, context = wire
            self.broadcast(event_type, params, context=context)

    def broadcast(
        self, event_type: str, params: dict[str, Any], *, context: str | None = None
    ) -> None:
        """Send one RELAY event, or keep it for the client's return."""
        if self.protocol is None:
            return
        payload = blade.broadcast_params(
            protocol=self.protocol,
            event_type=event_type,
            params=params,
            broadcaster_nodeid=self.nodeid,
            project_id=self.project,
            space_id=self.space_id,
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


class SessionObserver(Protocol):
    """Told of sessions' lives (the cluster link: it routes offers and events over the bus)."""

    def attached(self, session: ServerSession) -> None: ...
    def detached(self, session: ServerSession) -> None: ...
    def expired(self, session: ServerSession) -> None: ...
    def receiving(self, session: ServerSession, contexts: tuple[str, ...]) -> None: ...


class SessionRegistry:
    """Logs clients in, keeps their sessions across dropped sockets, routes inbound calls.

    Args:
        calls: the call service (for the calls a session holds, and to end them on expiry).
        credentials: the projects and tokens accepted.
        nodeid, space_id: this node's identity in RELAY frames.
        resume_grace: seconds a detached session waits for its client (0: end its calls now).
        max_backlog, max_sessions_per_project, max_calls_per_session: limits.
    """

    def __init__(
        self,
        calls: CallService,
        credentials: Credentials,
        *,
        nodeid: str,
        space_id: str,
        resume_grace: float = 30.0,
        max_backlog: int = 10_000,
        max_sessions_per_project: int = 100,
        max_calls_per_session: int = 2000,
    ) -> None:
        self.calls = calls
        self.credentials = credentials
        self.nodeid = nodeid
        self.space_id = space_id
        self.resume_grace = resume_grace
        self.max_backlog = max_backlog
        self.max_sessions_per_project = max_sessions_per_project
        self.max_calls_per_session = max_calls_per_session
        self.throttle = AuthThrottle()
        self.sessions: dict[str, ServerSession] = {}
        self.accepting = True  # False once the server stops: detached sessions end at once
        self._receivers_changed = asyncio.Event()
        self._rr = 0
        # Cluster hooks (none on a single node): observers of sessions' lives, and a way to
        # resume a session another node held (the client reconnected here).
        self.observers: list[SessionObserver] = []
        self.resume_elsewhere: Callable[[str, str, str], Awaitable[ServerSession | None]] | None = (
            None
        )

    # -- logging in ---------------------------------------------------------------------------
    async def connect(
        self, connect: blade.ConnectParams, address: str, send: Callable[[str], None]
    ) -> tuple[ServerSession, bool]:
        """``blade.connect``: check credentials (throttling failures), resume or open a session.

        Returns the session and whether it was restored.
        """
        loop = asyncio.get_running_loop()
        if not self.credentials.check(connect.project, connect.token):
            delay = self.throttle.failure(address, loop.time())
            await asyncio.sleep(delay)
            raise AuthenticationError("authentication failed: unknown project or wrong token")
        self.throttle.success(address)
        session = self.sessions.get(connect.sessionid or "")
        if session is None and connect.sessionid and self.resume_elsewhere is not None:
            session = await self.resume_elsewhere(connect.project, connect.sessionid, connect.agent)
            if session is not None:
                self.sessions[session.sessionid] = session
        restored = (
            session is not None and session.project == connect.project and session.send is None
        )
        if restored:
            assert session is not None
            if session.expiry is not None:
                session.expiry.cancel()
                session.expiry = None
            log.info(
                "= session %s restored (%d queued events)", session.sessionid, len(session.backlog)
            )
        else:
            attached = sum(1 for s in self.sessions.values() if s.project == connect.project)
            if attached >= self.max_sessions_per_project:
                raise LimitExceededError(
                    f"project {connect.project!r} has {attached} sessions, the limit"
                )
            session = ServerSession(
                connect.project,
                connect.agent,
                self.nodeid,
                self.space_id,
                max_backlog=self.max_backlog,
            )
            self.sessions[session.sessionid] = session
        session.attach(send)
        for observer in self.observers:
            observer.attached(session)
        return session, restored

    def detach(self, session: ServerSession, send: Callable[[str], None]) -> None:
        """The socket is gone; keep the session (and its calls) for the resume grace window."""
        if session.send != send:
            return  # already re-attached to a newer connection
        session.detach()
        for observer in self.observers:
            observer.detached(session)
        if not self.accepting or self.resume_grace <= 0:
            self._expire(session)
            return
        session.expiry = asyncio.get_running_loop().call_later(
            self.resume_grace, self._expire, session
        )

    def _expire(self, session: ServerSession) -> None:
        """The grace window passed without a resume: end the session's calls cleanly."""
        session.expiry = None
        if session.send is not None:
            return
        self.sessions.pop(session.sessionid, None)
        self.calls.end_all("hangup", owner=session)
        session.backlog.clear()
        for observer in self.observers:
            observer.expired(session)

    def close(self) -> None:
        """The server stops: forget every session (their calls were ended before)."""
        self.accepting = False
        for session in list(self.sessions.values()):
            if session.expiry is not None:
                session.expiry.cancel()
        self.sessions.clear()

    # -- contexts and offers ------------------------------------------------------------------
    def receive(self, session: ServerSession, contexts: tuple[str, ...]) -> None:
        """``signalwire.receive``: offer calls of these contexts to the session (shortly)."""
        ready_at = asyncio.get_running_loop().time() + CONTEXT_SETTLE_SECONDS
        for context in contexts:
            session.contexts.setdefault(context, ready_at)
        self._receivers_changed.set()
        for observer in self.observers:
            observer.receiving(session, contexts)

    def receiving(self, project: str, context: str, now: float) -> bool:
        """Whether a connected session of ``project`` takes calls of ``context`` at ``now``."""
        return any(
            s.project == project and s.send is not None and s.contexts.get(context, now + 1) <= now
            for s in self.sessions.values()
        )

    def check_capacity(self, session: ServerSession) -> None:
        """Refuse one more call for a session at its limit."""
        held = self.calls.owned_by(session)
        if held >= self.max_calls_per_session:
            raise LimitExceededError(f"session has {held} calls, the limit")

    async def pick(self, project: str, context: str, timeout: float) -> ServerSession:
        """The session an inbound call is offered to: round robin over the ready ones."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            now = loop.time()
            ready_at = [
                (s.contexts[context], s)
                for s in self.sessions.values()
                if s.project == project and context in s.contexts and s.send is not None
            ]
            candidates = [
                s
                for at, s in ready_at
                if at <= now and self.calls.owned_by(s) < self.max_calls_per_session
            ]
            if candidates:
                self._rr += 1
                return candidates[self._rr % len(candidates)]
            remaining = deadline - now
            if remaining <= 0:
                raise RelayTimeoutError(
                    f"no consumer is receiving context {context!r} of project {project!r}"
                )
            wait = min([remaining] + [at - now for at, _ in ready_at])
            self._receivers_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._receivers_changed.wait(), wait)
