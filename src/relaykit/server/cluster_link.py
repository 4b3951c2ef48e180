"""Cluster mode: this node's RELAY sessions and calls on the bus (:mod:`relaykit.cluster`).

Calls stay on the node where they are born (their *owner*); sessions stay on the node their
client is connected to (their *home*). The link plugs the bus in behind the seams a single
node already has, so nothing else changes:

- **Offers** (the call service's ``Receivers``): a new call is offered to the queue group of
  its project's context; every ready session of that context, on any node, is one member, so
  exactly one takes it. With no member anywhere the call is refused at once.
- **Events**: a call whose consumer lives on another node gets a :class:`BusSession` as its
  owner, which publishes the call's events to the session's subject; the session's home
  delivers them in order, once (per-call sequence numbers), and records what it delivered.
- **Commands** (the router's ``remote`` hook): a command whose ``node_id`` names another node
  is sent to that node, which runs the same handler for a :class:`BusSession` (the call's
  project is checked there); a gone node answers 404 at once.
- **Faults**: when a call's owner goes silent, the sessions here that follow its calls get
  ``ending`` and ``ended`` (``end_reason`` ``error``); when a session's home goes silent, its
  calls here wait ``resume_grace`` for the client to come back on any node, then end. A client
  that reconnects here with a session another node held gets it back with the events it
  missed, replayed from the bus.
- **Draining**: no new offers here, SIP probes answered 503, and :meth:`ClusterLink.drained`
  resolves once no call here and no call followed from here is left.
"""

from __future__ import annotations

__all__ = ["BusSession", "ClusterLink"]

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..calls import CallEvent, CallOffered, CallService, CallStateChanged, event_from_dict
from ..cluster.bus import ClusterBus, NoConsumer, NodeTimeout, NodeUnreachable, Peer, Received
from ..cluster.subjects import is_node_id
from ..errors import RelayTimeoutError
from ..protocol import blade, calling
from .relay_events import to_relay
from .sessions import CONTEXT_SETTLE_SECONDS, ServerSession, SessionRegistry

if TYPE_CHECKING:
    from nats.aio.subscription import Subscription

    from ..cluster.kamailio import KamailioRpc
    from .router import Router

log = logging.getLogger("relaykit.cluster")

# Commands that act on the session itself (or place calls from here), never forwarded.
_LOCAL_METHODS = frozenset({calling.RECEIVE, calling.BEGIN, calling.DIAL})
_NOTHING_AFTER = 1 << 62  # the sequence of a call ended here for a gone owner
_MAX_HANDED_OVER = 500_000  # bytes of queued frames one node hands over with a session


@dataclass(eq=False)
class BusSession(ServerSession):
    """A session that lives on another node, as the owner of calls here sees it: its
    events go over the bus to wherever the session is."""

    home: str = ""
    cluster: ClusterLink | None = None
    grace: asyncio.TimerHandle | None = None

    def deliver(self, event: CallEvent) -> None:
        if self.cluster is None or to_relay(event) is None:
            return
        bus = self.cluster.bus
        bus.publish_event(self.sessionid, event.call_id, event.to_dict())
        if isinstance(event, CallStateChanged) and event.state == "ended":
            bus.forget_call(self.sessionid, event.call_id)


@dataclass(eq=False, slots=True)
class _Home:
    """What this node keeps for one of its sessions in cluster mode."""

    session: ServerSession
    events: Subscription | None = None
    offers: dict[str, Subscription] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)  # call -> last sequence delivered
    followed: dict[str, CallEvent] = field(default_factory=dict)  # remote call -> last state
    in_flight: int = 0  # commands sent to owners and not yet answered to the client
    held: list[Received] = field(default_factory=list)
    finished: deque[tuple[float, str]] = field(default_factory=deque)  # (when, call) ended
    dirty: bool = False


class ClusterLink:
    """The glue between this node's sessions, router and call service and the bus.

    Args:
        bus: this node on the bus (started by the caller).
        calls, sessions, router: this node's parts.
        kamailio: optional JSON-RPC client of the Kamailio in front; when a peer dies, the
            first node to notice asks it to end the peer's dialogs (callers get a BYE).
        sip_address: this node's SIP ``host:port`` as the proxy sees it (for that clean-up).
    """

    def __init__(
        self,
        bus: ClusterBus,
        calls: CallService,
        sessions: SessionRegistry,
        router: Router,
        *,
        kamailio: KamailioRpc | None = None,
        sip_address: str | None = None,
        on_drain: Callable[[], None] | None = None,
    ) -> None:
        self.bus = bus
        self.calls = calls
        self.sessions = sessions
        self.router = router
        self.kamailio = kamailio
        self.sip_address = sip_address
        self.on_drain = on_drain
        self.node_id = bus.node_id
        self.draining = False
        self.homes: dict[str, _Home] = {}
        self.remote_sessions: dict[tuple[str, str], BusSession] = {}  # (project, id) -> stand-in
        self.replayed = 0  # events replayed into resumed sessions (for benchmarks)
        self._changed = asyncio.Event()
        self._flush_scheduled = False
        self._ended_for: dict[str, set[str]] = {}  # node -> its calls we told sessions ended
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self.bus.status = self.status
        self.bus.on_peer_down.append(self._peer_down)
        self.bus.on_peer_back.append(self._peer_back)
        self.bus.on_notice.append(self._notice)
        await self.bus.serve_commands(self._on_command)
        self.calls.receivers = self
        self.sessions.observers.append(self)
        self.sessions.resume_elsewhere = self.resume
        self.router.remote = self.forward
        self._spawn(self._refresh_records())

    async def _refresh_records(self) -> None:
        """Rewrite every session record well before the bucket's TTL drops an idle one."""
        while True:
            await asyncio.sleep(self.bus.session_ttl / 4)
            for home in list(self.homes.values()):
                self._write_record(home)

    async def stop(self) -> None:
        """Before the bus closes: this node's sessions end with it (as on one node), so their
        records go."""
        for home in list(self.homes.values()):
            for sub in [home.events, *home.offers.values()]:
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
            self.bus.drop_session(home.session.sessionid)
        self.homes.clear()
        for task in list(self._tasks):
            task.cancel()

    def status(self) -> dict[str, Any]:
        """What this node's heartbeats say about it (small: they go to every node)."""
        return {
            "calls": len(self.calls.calls),
            "sessions": len(self.sessions.sessions),
            "draining": self.draining,
            "sip": self.sip_address,
            "published": self.bus.published,
            "replayed": self.replayed,
        }

    def offers(self) -> list[str]:
        """``project/context`` of every queue group a session here is in (for ``GET /cluster``)."""
        return sorted(
            f"{home.session.project}/{context}"
            for home in self.homes.values()
            for context in home.offers
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- offers (the call service's Receivers) -----------------------------------------------
    async def pick(self, project: str, context: str, timeout: float) -> ServerSession:
        """The session a new call here is offered to, on any node (one queue-group member)."""
        if self.draining:
            raise RelayTimeoutError(f"node {self.node_id} is draining")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise RelayTimeoutError(f"no consumer of context {context!r} took the call")
            try:
                reply = await self.bus.offer(
                    project, context, {"node": self.node_id}, timeout=remaining
                )
            except (NoConsumer, NodeTimeout) as exc:
                raise RelayTimeoutError(str(exc)) from None
            sessionid, home = reply.get("session"), reply.get("node")
            if isinstance(sessionid, str) and isinstance(home, str):
                if home == self.node_id:
                    local = self.sessions.sessions.get(sessionid)
                    if local is not None:
                        return local
                else:
                    return self._stand_in(project, sessionid, home)
            await asyncio.sleep(min(0.05, max(remaining, 0)))  # that one was busy: ask again

    def _stand_in(self, project: str, sessionid: str, home: str) -> BusSession:
        session = self.remote_sessions.get((project, sessionid))
        if session is not None and session.home != home:
            self._moved(session, home)
        if session is None:
            session = BusSession(
                project,
                "",
                self.node_id,
                self.sessions.space_id,
                sessionid=sessionid,
                home=home,
                cluster=self,
            )
            self.remote_sessions[(project, sessionid)] = session
        return session

    def _take_offer(self, home: _Home, body: dict[str, Any]) -> dict[str, Any]:
        session = home.session
        if self.draining or not session.attached:
            return {"busy": "not attached"}
        held = self.calls.owned_by(session) + len(home.followed)
        if held >= self.sessions.max_calls_per_session:
            return {"busy": "at its call limit"}
        return {"session": session.sessionid, "node": self.node_id}

    async def _join_offers(self, home: _Home, contexts: tuple[str, ...]) -> None:
        await asyncio.sleep(CONTEXT_SETTLE_SECONDS)  # as on one node: the SDK needs a moment
        for context in contexts:
            if context in home.offers or not self._takes_offers(home):
                continue
            sub = await self.bus.take_offers(
                home.session.project, context, functools.partial(self._take_offer, home)
            )
            if context in home.offers or not self._takes_offers(home):  # changed meanwhile
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
                continue
            home.offers[context] = sub
        self._changed.set()

    def _takes_offers(self, home: _Home) -> bool:
        return (
            not self.draining
            and home.session.attached
            and self.homes.get(home.session.sessionid) is home
        )

    async def _leave_offers(self, home: _Home) -> None:
        subs, home.offers = list(home.offers.values()), {}
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._changed.set()

    # -- sessions here (SessionObserver) -----------------------------------------------------
    def attached(self, session: ServerSession) -> None:
        home = self.homes.get(session.sessionid)
        if home is None:
            home = self.homes[session.sessionid] = _Home(session)
            self._spawn(self._follow(home))
        self._write_record(home)
        if session.contexts:
            self._spawn(self._join_offers(home, tuple(session.contexts)))

    def detached(self, session: ServerSession) -> None:
        home = self.homes.get(session.sessionid)
        if home is not None:
            self._spawn(self._leave_offers(home))
            self._write_record(home)

    def expired(self, session: ServerSession) -> None:
        home = self.homes.pop(session.sessionid, None)
        if home is None:
            return
        self._spawn(self._leave_offers(home))
        if home.events is not None:
            self._spawn(home.events.unsubscribe())
        self.bus.drop_session(session.sessionid)
        self.bus.notify("gone", {"session": session.sessionid, "project": session.project})

    def receiving(self, session: ServerSession, contexts: tuple[str, ...]) -> None:
        home = self.homes.get(session.sessionid)
        if home is not None:
            self._write_record(home)
            self._spawn(self._join_offers(home, contexts))

    async def _follow(self, home: _Home) -> None:
        if home.events is None:
            home.events = await self.bus.follow(
                home.session.sessionid, functools.partial(self._on_event, home)
            )

    def _write_record(self, home: _Home) -> None:
        session = home.session
        self.bus.write_session(
            session.sessionid,
            {
                "project": session.project,
                "protocol": session.protocol,
                "contexts": list(session.contexts),
                "node": self.node_id,
                "attached": session.attached,
                "delivered": home.delivered,
            },
        )

    def _progress(self, home: _Home) -> None:
        """Record what a session was given, once per loop pass however many events."""
        home.dirty = True
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_progress)

    def _flush_progress(self) -> None:
        self._flush_scheduled = False
        for home in self.homes.values():
            if home.dirty:
                home.dirty = False
                self._prune(home)
                self._write_record(home)

    # -- events for sessions here ------------------------------------------------------------
    def _on_event(self, home: _Home, received: Received) -> None:
        if home.in_flight:
            home.held.append(received)  # the command's reply goes to the client first
            return
        self._deliver(home, received)

    def _replay_one(self, home: _Home, received: Received) -> None:
        if self._deliver(home, received):
            self.replayed += 1

    def _deliver(self, home: _Home, received: Received) -> bool:
        """Hand one event to the session unless it had it already; whether it was new."""
        if received.seq <= home.delivered.get(received.call_id, 0):
            return False  # seen already (a replay overlapping the live feed)
        try:
            event = event_from_dict(received.body)
        except ValueError:
            log.warning("! a malformed event on the bus for %s", received.session)
            return False
        home.delivered[received.call_id] = received.seq
        if isinstance(event, CallStateChanged | CallOffered):
            if isinstance(event, CallStateChanged) and event.state == "ended":
                self._finished(home, event.call_id)
            else:
                home.followed[event.call_id] = event
        home.session.deliver(event)
        self._progress(home)
        return True

    def _finished(self, home: _Home, call_id: str, *, last_seq: int | None = None) -> None:
        """A followed call ended: its sequence is kept a while, so late copies are dropped."""
        home.followed.pop(call_id, None)
        if last_seq is not None:
            home.delivered[call_id] = last_seq
        home.finished.append((asyncio.get_running_loop().time(), call_id))
        self._changed.set()

    def _prune(self, home: _Home) -> None:
        horizon = asyncio.get_running_loop().time() - 2 * self.bus.replay_window
        while home.finished and home.finished[0][0] < horizon:
            home.delivered.pop(home.finished.popleft()[1], None)

    def _release_held(self, home: _Home) -> None:
        if home.in_flight:
            return
        held, home.held = home.held, []
        for received in held:
            self._deliver(home, received)

    # -- commands ----------------------------------------------------------------------------
    async def forward(
        self, session: ServerSession, method: str, params: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The router's hook: a command for a call on another node runs there."""
        node = params.get("node_id") if isinstance(params, dict) else None
        if (
            method in _LOCAL_METHODS
            or not is_node_id(node)
            or node == self.node_id
            or "call_id" not in params
        ):
            return None
        assert isinstance(node, str)
        home = self.homes.get(session.sessionid)
        if home is not None:
            home.in_flight += 1
        try:
            reply = await self.bus.command(
                node,
                {
                    "op": "execute",
                    "project": session.project,
                    "session": session.sessionid,
                    "home": self.node_id,
                    "method": method,
                    "params": params,
                },
            )
        except NodeUnreachable:
            return blade.relay_result(404, f"call {params.get('call_id')!r} not found")
        except NodeTimeout:
            return blade.relay_result(504, f"node {node!r} did not answer in time")
        finally:
            if home is not None:
                home.in_flight -= 1
                # after the router's reply is on its way to the client
                asyncio.get_running_loop().call_soon(self._release_held, home)
        result = reply.get("result")
        if not isinstance(result, dict):
            return blade.relay_result(500, str(reply.get("error", "the call's node failed")))
        return result

    async def _on_command(self, body: dict[str, Any]) -> dict[str, Any]:
        op = body.get("op")
        if op == "execute":
            project, sessionid, home = body.get("project"), body.get("session"), body.get("home")
            method, params = body.get("method"), body.get("params")
            if not (
                isinstance(project, str)
                and isinstance(sessionid, str)
                and is_node_id(home)
                and isinstance(method, str)
                and isinstance(params, dict)
            ):
                return {"error": "a malformed command"}
            assert isinstance(home, str)
            stand_in = self._stand_in(project, sessionid, home)
            return {"result": await self.router.execute(stand_in, method, params)}
        if op == "release":
            reply = self._release(str(body.get("session")), str(body.get("to")))
            await self.bus.flush()  # its last record writes land before the new node claims it
            return reply
        if op == "end":  # a peer told its sessions these calls ended while we were cut off
            for call_id in body.get("calls", []):
                call = self.calls.calls.get(str(call_id))
                if call is not None:
                    self.calls.end_call(call, "error")
            return {"ended": True}
        if op == "drain":
            self.drain()
            return {**self.status(), "draining": True}
        if op == "status":
            return self.status()
        return {"error": f"unknown op {op!r}"}

    # -- resuming a session another node held ------------------------------------------------
    async def resume(self, project: str, sessionid: str, agent: str) -> ServerSession | None:
        """The registry's hook: the session, taken over with its missed events, or None."""
        found = await self.bus.read_session(sessionid)
        if found is None:
            return None
        record, revision = found
        node = record.get("node")
        if record.get("project") != project or not isinstance(node, str) or node == self.node_id:
            return None
        # Ask the node that held it to let go; a node that is gone (no responders) says so at
        # once, before its heartbeats would.
        try:
            reply = await self.bus.command(
                node, {"op": "release", "session": sessionid, "to": self.node_id}
            )
        except (NodeUnreachable, NodeTimeout):
            reply = {"released": True, "gone": True}
        if not reply.get("released"):
            return None
        handed_over = [f for f in reply.get("backlog", []) if isinstance(f, str)]
        if not reply.get("gone"):  # it may have written the record once more before letting go
            found = await self.bus.read_session(sessionid)
            if found is None:
                return None
            record, revision = found
        delivered = record.get("delivered")
        claimed = {
            **record,
            "node": self.node_id,
            "attached": True,
        }
        if not await self.bus.claim_session(sessionid, claimed, revision):
            return None  # another node took it first
        now = asyncio.get_running_loop().time()
        session = ServerSession(
            project,
            agent,
            self.sessions.nodeid,
            self.sessions.space_id,
            max_backlog=self.sessions.max_backlog,
            sessionid=sessionid,
            protocol=record.get("protocol") if isinstance(record.get("protocol"), str) else None,
            contexts={str(c): now for c in record.get("contexts", [])},
        )
        session.keep(handed_over)
        home = _Home(session)
        if isinstance(delivered, dict):
            home.delivered = {str(k): int(v) for k, v in delivered.items() if isinstance(v, int)}
        # Live events wait while the bus replays what the session missed, then follow on.
        home.in_flight += 1
        self.homes[sessionid] = home
        try:
            await self._follow(home)
            await self.bus.replay(sessionid, functools.partial(self._replay_one, home))
        except Exception:
            log.exception("! replaying session %s failed", sessionid)
        finally:
            home.in_flight -= 1
            self._release_held(home)
        self.bus.notify("moved", {"session": sessionid, "project": project, "node": self.node_id})
        log.info("= session %s resumed here from node %s", sessionid, node)
        return session

    def _release(self, sessionid: str, to: str) -> dict[str, Any]:
        """Another node takes over one of our sessions (its client reconnected there): hand
        over what it missed."""
        session = self.sessions.sessions.get(sessionid)
        if session is None:
            return {"released": True}
        if not is_node_id(to):
            return {"released": False}
        if session.attached:
            # Its client presented the session elsewhere: the socket here is a stale one whose
            # close has not been noticed yet. It gets nothing more.
            session.detach()
        backlog = list(session.backlog)
        if sum(len(f) for f in backlog) > _MAX_HANDED_OVER:
            return {"released": False}
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        self.sessions.sessions.pop(sessionid, None)
        home = self.homes.pop(sessionid, None)
        if home is not None:
            self._spawn(self._leave_offers(home))
            if home.events is not None:
                self._spawn(home.events.unsubscribe())
        stand_in = self._stand_in(session.project, sessionid, to)
        for call in self.calls:
            if call.owner is session:
                call.owner = stand_in
        return {"released": True, "backlog": backlog}

    # -- faults ------------------------------------------------------------------------------
    def _peer_down(self, peer: Peer) -> None:
        # Calls it owned, followed by sessions here: they are over.
        for home in self.homes.values():
            for last in list(home.followed.values()):
                if last.node_id == peer.node:
                    self._synthesize_end(home, last)
        # Sessions that lived there: their calls here wait for the client to come back.
        for stand_in in self.remote_sessions.values():
            if stand_in.home == peer.node and stand_in.grace is None:
                stand_in.grace = asyncio.get_running_loop().call_later(
                    max(self.sessions.resume_grace, 0.0), self._orphaned, stand_in
                )
        if self.kamailio is not None and isinstance(peer.status.get("sip"), str):
            self._spawn(self._reap_dialogs(peer))
        self._changed.set()

    def _synthesize_end(self, home: _Home, last: CallEvent) -> None:
        self._finished(home, last.call_id, last_seq=_NOTHING_AFTER)
        self._ended_for.setdefault(last.node_id, set()).add(last.call_id)
        for state in ("ending", "ended"):
            home.session.deliver(
                CallStateChanged(
                    call_id=last.call_id,
                    node_id=last.node_id,
                    at=last.at,
                    state=state,
                    from_number=getattr(last, "from_number", ""),
                    to_number=getattr(last, "to_number", ""),
                    direction=getattr(last, "direction", "inbound"),
                    end_reason="error" if state == "ended" else None,
                    tag=getattr(last, "tag", None),
                )
            )
        log.warning("! call %s ended: its node %s is gone", last.call_id, last.node_id)

    def _peer_back(self, peer: Peer) -> None:
        """A node we took for dead was only cut off: the calls whose sessions here were told
        they ended must end there too; its sessions' calls here need not wait any more."""
        ended = self._ended_for.pop(peer.node, set())
        if ended:
            self._spawn(self._end_there(peer.node, sorted(ended)))
        for stand_in in self.remote_sessions.values():
            if stand_in.home == peer.node and stand_in.grace is not None:
                stand_in.grace.cancel()
                stand_in.grace = None

    async def _end_there(self, node: str, call_ids: list[str]) -> None:
        with contextlib.suppress(NodeUnreachable, NodeTimeout):
            await self.bus.command(node, {"op": "end", "calls": call_ids})

    def _orphaned(self, stand_in: BusSession) -> None:
        stand_in.grace = None
        if self.bus.alive(stand_in.home):
            return
        self._end_calls_of(stand_in)

    def _end_calls_of(self, stand_in: BusSession) -> None:
        self.calls.end_all("hangup", owner=stand_in)
        self.remote_sessions.pop((stand_in.project, stand_in.sessionid), None)

    def _notice(self, kind: str, body: dict[str, Any]) -> None:
        key = (str(body.get("project")), str(body.get("session")))
        stand_in = self.remote_sessions.get(key)
        if kind == "moved" and stand_in is not None and is_node_id(body.get("node")):
            self._moved(stand_in, str(body["node"]))
        elif kind == "gone" and stand_in is not None and stand_in.home != self.node_id:
            self._end_calls_of(stand_in)

    def _moved(self, stand_in: BusSession, home: str) -> None:
        """A session of calls here lives on ``home`` now."""
        stand_in.home = home
        if stand_in.grace is not None:
            stand_in.grace.cancel()
            stand_in.grace = None
        local = self.sessions.sessions.get(stand_in.sessionid) if home == self.node_id else None
        if local is not None:  # it came here: its calls here deliver to it directly
            for call in self.calls:
                if call.owner is stand_in:
                    call.owner = local
            self.remote_sessions.pop((stand_in.project, stand_in.sessionid), None)

    async def _reap_dialogs(self, peer: Peer) -> None:
        assert self.kamailio is not None
        if not await self.bus.reap_once(f"{peer.node}.{peer.boot}"):
            return
        try:
            ended = await self.kamailio.end_dialogs_of(str(peer.status["sip"]))
        except Exception as exc:
            log.warning("! could not end node %s's SIP dialogs: %s", peer.node, exc)
            return
        log.warning("= asked the SIP proxy to end %d dialogs of node %s", ended, peer.node)

    # -- draining ----------------------------------------------------------------------------
    def drain(self) -> None:
        """Take no new calls here; :meth:`drained` resolves once none is left."""
        if self.draining:
            return
        self.draining = True
        log.warning("= node %s is draining", self.node_id)
        for home in self.homes.values():
            self._spawn(self._leave_offers(home))
        if self.on_drain is not None:
            self.on_drain()
        self._changed.set()

    def busy(self) -> int:
        """Calls here plus calls elsewhere followed by sessions here."""
        return len(self.calls.calls) + sum(len(h.followed) for h in self.homes.values())

    async def drained(self) -> None:
        """Wait until draining and nothing is left to finish."""
        while not (self.draining and self.busy() == 0):
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.5)
