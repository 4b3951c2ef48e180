"""RELAY sessions: one per authenticated client, outliving its socket for a grace window.

A session's events go to the connection it is attached to (its :class:`SessionLink`); an event
counts as delivered only once that connection has written it to its socket. Events not yet
written — queued in a frozen client's outbox, or sent while no client was attached — stay with
the session, in order, and go out on the client's next connection once it subscribes again.
A client that logs in with its ``sessionid`` takes its session over at once, even from a stale
connection that is still open (that one is closed).

Frames already taken by a socket count as delivered: RELAY v2 has no acknowledgements, so what
sits in a frozen client's kernel buffers cannot be known.

The :class:`SessionRegistry` logs clients in (through :class:`~relaykit.server.auth.Logins`),
resumes, takes over and expires sessions, caps them per project (attached and detached ones
separately) and picks the consumer an inbound call is offered to (it is the call service's
``Receivers``).
"""

from __future__ import annotations

__all__ = [
    "CONTEXT_SETTLE_SECONDS",
    "MAX_CONTEXT_LENGTH",
    "ServerSession",
    "SessionLink",
    "SessionObserver",
    "SessionRegistry",
    "signature",
]

import asyncio
import contextlib
import functools
import hashlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..calls import CallEvent, CallService
from ..errors import LimitExceededError, ProtocolError, RelayTimeoutError
from ..protocol import blade
from ..protocol.jsonrpc import new_id
from .auth import AuthThrottle, Credentials, Logins, Visitor
from .relay_events import to_relay

log = logging.getLogger("relaykit.server")

# The v2 SDK registers its call handler only after signalwire.receive is answered; an offer sent
# at once would be dropped, so a context becomes routable a moment later.
CONTEXT_SETTLE_SECONDS = 0.1
MAX_CONTEXT_LENGTH = 128  # characters of a context name


def signature(project: str) -> str:
    """The authorization signature of a project's protocol names (§2.2)."""
    return hashlib.sha256(f"relaykit:{project}".encode()).hexdigest()[:32]


@runtime_checkable
class SessionLink(Protocol):
    """The client connection a session is attached to."""

    def send_event(self, text: str, written: Callable[[], None]) -> bool:
        """Queue an event frame; call ``written()`` once the socket took it. False: not taken."""
        ...

    def taken_over(self) -> None:
        """The session was resumed on another connection: close this one."""
        ...


Link = SessionLink | Callable[[str], None]  # a plain callable: handing over counts as delivery


@dataclass(eq=False, slots=True)
class ServerSession:
    """What the server knows about one client: project, protocol, contexts, where to send."""

    project: str
    agent: str
    nodeid: str
    space_id: str
    max_backlog: int = 10_000
    max_backlog_bytes: int = 8 << 20
    sessionid: str = field(default_factory=lambda: str(uuid.uuid4()))
    protocol: str | None = None
    subscribed: bool = False
    contexts: dict[str, float] = field(default_factory=dict)  # context -> routable from (loop time)
    # The attached connection; frames are handed to it, never awaited here.
    link: Link | None = None
    # Events waiting for a subscribed client, oldest first (all newer than `unwritten`).
    backlog: deque[str] = field(default_factory=deque)
    backlog_bytes: int = 0
    # Events handed to the link and not yet written to its socket, oldest first.
    unwritten: deque[str] = field(default_factory=deque)
    dropped: int = 0  # events lost because the backlog was full
    detached_at: float | None = None  # loop time the last connection went away
    expiry: asyncio.TimerHandle | None = None
    _generation: int = 0  # bumped at every attach and detach: stale links' reports are ignored
    _report: Callable[[], None] | None = field(default=None, repr=False)  # this generation's
    _envelope: blade.BroadcastEnvelope | None = field(default=None, repr=False)

    @property
    def attached(self) -> bool:
        """Whether a client connection is attached."""
        return self.link is not None

    def new_protocol(self) -> str:
        # §2.2: the second "_"-separated segment is the authorization signature.
        self.protocol = f"signalwire_{signature(self.project)}_{uuid.uuid4().hex}"
        return self.protocol

    def attach(self, link: Link) -> None:
        """Attach a connection; a connection still attached is taken over (and closed)."""
        previous = self.link
        self._take_back_unwritten()
        self.link = link
        self.detached_at = None
        self.subscribed = False  # events wait in the backlog until the client subscribes again
        if previous is not None and isinstance(previous, SessionLink):
            previous.taken_over()

    def detach(self) -> None:
        self._take_back_unwritten()
        self.link = None
        self.subscribed = False

    def _take_back_unwritten(self) -> None:
        """The link is going: what it did not write goes back to the head of the backlog."""
        self._report = None
        self._generation += 1
        if self.unwritten:
            self.backlog.extendleft(reversed(self.unwritten))
            self.backlog_bytes += sum(len(text) for text in self.unwritten)
            self.unwritten.clear()
            self._trim()

    def flush(self) -> None:
        """Send the events queued while the client was away, oldest first."""
        if self.link is None or not self.subscribed:
            return
        if self.dropped:
            log.warning("! session %s lost %d events (backlog full)", self.sessionid, self.dropped)
            self.dropped = 0
        while self.backlog and self.subscribed:
            text = self.backlog.popleft()
            self.backlog_bytes -= len(text)
            self._send(text)

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
        envelope = self._envelope
        if envelope is None or envelope.key != (
            self.protocol,
            self.nodeid,
            self.project,
            self.space_id,
        ):
            envelope = self._envelope = blade.BroadcastEnvelope(
                protocol=self.protocol,
                broadcaster_nodeid=self.nodeid,
                project_id=self.project,
                space_id=self.space_id,
            )
        text = envelope.frame(new_id(), event_type, params, context=context)
        if self.link is not None and self.subscribed and not self.backlog:
            self._send(text)
        else:
            self._keep(text)

    def _send(self, text: str) -> None:
        link = self.link
        assert link is not None
        # (not isinstance(link, SessionLink): a runtime protocol check costs more than the send)
        send_event = getattr(link, "send_event", None)
        if send_event is None:
            link(text)  # type: ignore[operator]
            return
        # One report for every event of this generation, not a closure per event: the link
        # reports its events written in the order it took them, oldest unwritten first.
        report = self._report
        if report is None:
            report = self._report = functools.partial(self._written, self._generation)
        self.unwritten.append(text)
        if not send_event(text, report):
            # The connection is going (too slow, or closed): keep this and the rest for the next
            # one. The event was the backlog's head (or the backlog was empty).
            self.unwritten.pop()
            self.subscribed = False
            self.backlog.appendleft(text)
            self.backlog_bytes += len(text)
            self._trim()

    def _written(self, generation: int) -> None:
        if self._generation == generation and self.unwritten:
            self.unwritten.popleft()

    def keep(self, texts: Iterable[str]) -> None:
        """Queue frames for the client's return, after those already waiting (events handed
        over by another node)."""
        for text in texts:
            self._keep(text)

    def _keep(self, text: str) -> None:
        self.backlog.append(text)
        self.backlog_bytes += len(text)
        self._trim()

    def _trim(self) -> None:
        while len(self.backlog) > self.max_backlog or (
            self.backlog_bytes > self.max_backlog_bytes and len(self.backlog) > 1
        ):
            self.backlog_bytes -= len(self.backlog.popleft())
            self.dropped += 1

    def forget_events(self) -> None:
        self._generation += 1  # reports for the events forgotten are stale
        self._report = None
        self.backlog.clear()
        self.unwritten.clear()
        self.backlog_bytes = 0


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
        logins: the login policy (throttle, connections not logged in); one is made if None.
        max_backlog, max_backlog_bytes: events (and characters) kept for a session whose client
            is away or not subscribed; the oldest are dropped beyond.
        max_sessions_per_project: sessions with a connection attached, per project.
        max_detached_sessions_per_project: sessions waiting for their client to come back, per
            project; beyond, the one detached longest ends (its calls end).
        max_calls_per_session, max_contexts_per_session: limits.
    """

    def __init__(
        self,
        calls: CallService,
        credentials: Credentials,
        *,
        nodeid: str,
        space_id: str,
        resume_grace: float = 30.0,
        logins: Logins | None = None,
        max_backlog: int = 10_000,
        max_backlog_bytes: int = 8 << 20,
        max_sessions_per_project: int = 100,
        max_detached_sessions_per_project: int = 100,
        max_calls_per_session: int = 2000,
        max_contexts_per_session: int = 1000,
    ) -> None:
        self.calls = calls
        self.credentials = credentials
        self.nodeid = nodeid
        self.space_id = space_id
        self.resume_grace = resume_grace
        self.logins = logins if logins is not None else Logins(credentials)
        self.max_backlog = max_backlog
        self.max_backlog_bytes = max_backlog_bytes
        self.max_sessions_per_project = max_sessions_per_project
        self.max_detached_sessions_per_project = max_detached_sessions_per_project
        self.max_calls_per_session = max_calls_per_session
        self.max_contexts_per_session = max_contexts_per_session
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

    @property
    def throttle(self) -> AuthThrottle:
        """The failed-login throttle (of :attr:`logins`)."""
        return self.logins.throttle

    # -- logging in ---------------------------------------------------------------------------
    async def connect(
        self,
        connect: blade.ConnectParams,
        address: str | Visitor,
        link: Link,
    ) -> tuple[ServerSession, bool]:
        """``blade.connect``: log in (see :class:`Logins`), then resume or open a session.

        ``address``: the connection's :class:`Visitor` (from ``logins.admit``), or just its
        remote address (throttled alike, not counted among the connections not logged in).
        ``link``: where the session's events go. A ``sessionid`` of this project resumes that
        session, taking it over from a connection still attached. Returns the session and
        whether it was restored.
        """
        visitor = address if isinstance(address, Visitor) else self.logins.unlisted(address)
        await self.logins.check(visitor, connect.project, connect.token)
        session = self.sessions.get(connect.sessionid or "")
        if session is None and connect.sessionid and self.resume_elsewhere is not None:
            session = await self.resume_elsewhere(connect.project, connect.sessionid, connect.agent)
            if session is not None:
                self.sessions[session.sessionid] = session
        restored = session is not None and session.project == connect.project
        if restored:
            assert session is not None
            if session.expiry is not None:
                session.expiry.cancel()
                session.expiry = None
            log.info(
                "= session %s %s (%d queued events)",
                session.sessionid,
                "taken over" if session.attached else "restored",
                len(session.backlog) + len(session.unwritten),
            )
        else:
            attached = sum(
                1 for s in self.sessions.values() if s.project == connect.project and s.attached
            )
            if attached >= self.max_sessions_per_project:
                raise LimitExceededError(
                    f"project {connect.project!r} has {attached} connected sessions, the limit "
                    "(max_sessions_per_project)"
                )
            session = ServerSession(
                connect.project,
                connect.agent,
                self.nodeid,
                self.space_id,
                max_backlog=self.max_backlog,
                max_backlog_bytes=self.max_backlog_bytes,
            )
            self.sessions[session.sessionid] = session
        session.attach(link)
        for observer in self.observers:
            observer.attached(session)
        return session, restored

    def detach(self, session: ServerSession, link: Link) -> None:
        """The socket is gone; keep the session (and its calls) for the resume grace window."""
        if session.link != link:  # == : a bound method is made anew at each access
            return  # already re-attached to a newer connection
        session.detach()
        for observer in self.observers:
            observer.detached(session)
        if not self.accepting or self.resume_grace <= 0:
            self._expire(session)
            return
        loop = asyncio.get_running_loop()
        session.detached_at = loop.time()
        session.expiry = loop.call_later(self.resume_grace, self._expire, session)
        detached = [
            s for s in self.sessions.values() if s.project == session.project and not s.attached
        ]
        if len(detached) > self.max_detached_sessions_per_project:
            oldest = min(detached, key=lambda s: s.detached_at or 0.0)
            log.info(
                "= session %s ended early: project %r has more than %d detached sessions",
                oldest.sessionid,
                oldest.project,
                self.max_detached_sessions_per_project,
            )
            self._expire(oldest)

    def _expire(self, session: ServerSession) -> None:
        """The grace window passed without a resume: end the session's calls cleanly."""
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        if session.attached:
            return
        self.sessions.pop(session.sessionid, None)
        self.calls.end_all("hangup", owner=session)
        session.forget_events()
        for observer in self.observers:
            observer.expired(session)

    def close(self) -> None:
        """The server stops: forget every session (their calls were ended before)."""
        self.accepting = False
        self.logins.close()
        for session in list(self.sessions.values()):
            if session.expiry is not None:
                session.expiry.cancel()
        self.sessions.clear()

    # -- contexts and offers ------------------------------------------------------------------
    def receive(self, session: ServerSession, contexts: tuple[str, ...]) -> None:
        """``signalwire.receive``: offer calls of these contexts to the session (shortly)."""
        for context in contexts:
            if len(context) > MAX_CONTEXT_LENGTH:
                raise ProtocolError(
                    f"a context name has at most {MAX_CONTEXT_LENGTH} characters",
                    field="contexts",
                )
        total = len(session.contexts) + len(set(contexts) - session.contexts.keys())
        if total > self.max_contexts_per_session:
            raise LimitExceededError(
                f"a session receives at most {self.max_contexts_per_session} contexts "
                "(max_contexts_per_session)"
            )
        ready_at = asyncio.get_running_loop().time() + CONTEXT_SETTLE_SECONDS
        for context in contexts:
            session.contexts.setdefault(context, ready_at)
        self._receivers_changed.set()
        for observer in self.observers:
            observer.receiving(session, contexts)

    def receiving(self, project: str, context: str, now: float) -> bool:
        """Whether a connected session of ``project`` takes calls of ``context`` at ``now``."""
        return any(
            s.project == project and s.attached and s.contexts.get(context, now + 1) <= now
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
                if s.project == project and context in s.contexts and s.attached
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
