"""One node's connection to the cluster bus (NATS, with JetStream for what must outlive a node).

:class:`ClusterBus` knows nothing of RELAY sessions or calls: it carries JSON bodies between
nodes and keeps the roster of live nodes.

- **Roster.** Every node publishes ``rk.hb.<node>`` each second with its ``boot`` id and
  whatever :attr:`ClusterBus.status` returns; a peer silent for ``dead_after`` seconds (or
  back with a new ``boot``) is down, and :attr:`on_peer_down` listeners hear it once. While
  this node itself is cut off from the bus it declares nobody dead, and peers get a fresh
  window when it reconnects.
- **Commands** go to ``rk.node.<node>.cmd`` by request/reply; no node there answers at once
  (NATS "no responders"): :class:`NodeUnreachable`.
- **Offers** go to ``rk.offer.<project>.<context>``, where each ready consumer holds one
  subscription in one queue group: NATS hands each request to exactly one of them.
- **Events** go to ``rk.ev.<session>.<call>`` with a per-call ``Rk-Seq`` header, in order,
  through one writer task (publishing never blocks the caller). The stream ``RK_EV`` keeps them
  for ``replay_window`` seconds, so a session resumed on another node can be replayed.
- **Session records** live in the key-value bucket ``rk_sessions``.
"""

from __future__ import annotations

__all__ = [
    "EXTRA_HINT",
    "BusUnavailable",
    "ClusterBus",
    "NoConsumer",
    "NodeTimeout",
    "NodeUnreachable",
    "Peer",
    "Received",
    "ask_node",
]

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import subjects

if TYPE_CHECKING:
    from nats.aio.client import Client as Nats
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue

log = logging.getLogger("relaykit.cluster")

EXTRA_HINT = "cluster mode needs nats-py: pip install 'relaykit[cluster]'"


class BusUnavailable(RuntimeError):
    """The bus cannot be reached (or nats-py is not installed)."""


class NodeUnreachable(RuntimeError):
    """No node answers on that node's subject: it is gone (or never was)."""


class NodeTimeout(RuntimeError):
    """The node did not answer in time."""


class NoConsumer(RuntimeError):
    """No consumer of that project's context, on any node."""


@dataclass(slots=True)
class Peer:
    """Another node as the heartbeats show it."""

    node: str
    boot: str
    seen_at: float
    status: dict[str, Any] = field(default_factory=dict)
    down: bool = False


@dataclass(frozen=True, slots=True)
class Received:
    """One event taken from the bus: the session's, the call's, its sequence and its body."""

    session: str
    call_id: str
    seq: int
    body: dict[str, Any]


def _nats() -> Any:
    try:
        import nats
    except ImportError:
        raise BusUnavailable(EXTRA_HINT) from None
    return nats


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class ClusterBus:
    """This node on the bus.

    Args:
        url: the NATS server (``nats://127.0.0.1:4222``).
        node_id: this node's id (letters, digits, ``_`` and ``-``).
        heartbeat: seconds between heartbeats.
        dead_after: seconds of silence after which a peer is down.
        replay_window: seconds ``RK_EV`` keeps events (at least the resume grace).
        request_timeout: seconds a command or an offer waits for its reply.
        session_ttl: seconds a session record lives without being written again.
        connect_timeout: seconds to reach the bus at start (later outages are waited out).
    """

    def __init__(
        self,
        url: str,
        node_id: str,
        *,
        heartbeat: float = 1.0,
        dead_after: float = 3.0,
        replay_window: float = 120.0,
        request_timeout: float = 5.0,
        session_ttl: float = 3600.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.node_id = subjects.check_node_id(node_id)
        self.boot = uuid.uuid4().hex
        self.heartbeat = heartbeat
        self.dead_after = dead_after
        self.replay_window = replay_window
        self.request_timeout = request_timeout
        self.session_ttl = session_ttl
        self.peers: dict[str, Peer] = {}
        self.on_peer_down: list[Callable[[Peer], None]] = []
        self.on_peer_back: list[Callable[[Peer], None]] = []  # down, then heard again (a split)
        self.on_notice: list[Callable[[str, dict[str, Any]], None]] = []
        self.status: Callable[[], dict[str, Any]] = dict
        self.published = 0  # events handed to the bus (for benchmarks)
        self._nc: Nats | None = None
        self._js: JetStreamContext | None = None
        self._sessions_kv: KeyValue | None = None
        self._reap_kv: KeyValue | None = None
        self._outgoing: deque[tuple[str, bytes, dict[str, str] | None]] = deque()
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Subscription] = []
        self._seq: dict[tuple[str, str], int] = {}
        self._cut_off_until = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def start(self) -> ClusterBus:
        nats = _nats()
        connecting = nats.connect(
            servers=[self.url],
            name=f"relaykit-{self.node_id}",
            connect_timeout=2,
            allow_reconnect=True,
            max_reconnect_attempts=-1,  # once up, ride out any bus outage
            reconnect_time_wait=0.5,
            disconnected_cb=self._disconnected,
            reconnected_cb=self._reconnected,
            error_cb=self._error,
        )
        try:  # ... but a bus that is not there at start is an error, not a wait
            self._nc = await asyncio.wait_for(connecting, self.connect_timeout)
        except Exception as exc:
            reason = str(exc) or f"no answer within {self.connect_timeout:g} s"
            raise BusUnavailable(f"cannot reach the bus at {self.url}: {reason}") from None
        self._js = self.nc.jetstream()
        await self._ensure_storage()
        self._subs.append(await self.nc.subscribe(subjects.HEARTBEATS, cb=self._on_heartbeat))
        self._subs.append(await self.nc.subscribe(subjects.SESSION_NOTICES, cb=self._on_notice))
        loop = asyncio.get_running_loop()
        self._tasks += [
            loop.create_task(self._write_events(), name="relaykit-bus-writer"),
            loop.create_task(self._beat(), name="relaykit-bus-heartbeat"),
        ]
        log.info("= node %s on the bus at %s", self.node_id, self.url)
        return self

    async def _ensure_storage(self) -> None:
        from nats.js.api import StorageType, StreamConfig

        assert self._js is not None
        config = StreamConfig(
            name=subjects.EVENT_STREAM,
            subjects=[subjects.EVENT_SUBJECTS],
            max_age=self.replay_window,
            storage=StorageType.FILE,
        )
        try:
            await self._js.add_stream(config)
        except Exception:  # exists with other limits: keep the running cluster's
            log.debug("stream %s kept as it is", subjects.EVENT_STREAM, exc_info=True)
        self._sessions_kv = await self._bucket(subjects.SESSION_BUCKET, self.session_ttl)
        self._reap_kv = await self._bucket(subjects.REAP_BUCKET, 600.0)

    async def _bucket(self, name: str, ttl: float) -> KeyValue:
        assert self._js is not None
        try:
            return await self._js.key_value(name)
        except Exception:
            return await self._js.create_key_value(bucket=name, ttl=ttl, history=1)

    async def stop(self) -> None:
        """Say goodbye (peers learn at once that this node is gone), flush, close."""
        if self._nc is None:
            return
        nc, self._nc = self._nc, None
        with contextlib.suppress(Exception):  # a bus that is gone gets two seconds, no more
            await asyncio.wait_for(self._flush_outgoing(nc), 2)
            await nc.publish(
                subjects.heartbeat(self.node_id),
                _dumps({"node": self.node_id, "boot": self.boot, "bye": True}),
            )
            await nc.flush(timeout=2)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 2)

    async def _disconnected(self) -> None:
        if self._nc is not None:  # not our own goodbye
            log.warning("! node %s lost the bus; local calls go on", self.node_id)

    async def _reconnected(self) -> None:
        log.warning("= node %s is back on the bus", self.node_id)
        now = time.monotonic()
        self._cut_off_until = now + self.dead_after
        for peer in self.peers.values():
            peer.seen_at = max(peer.seen_at, now)
        with contextlib.suppress(Exception):
            await self._ensure_storage()

    async def _error(self, exc: Exception) -> None:
        log.debug("! bus: %s", exc)

    @property
    def nc(self) -> Nats:
        if self._nc is None:
            raise BusUnavailable("the node is not on the bus")
        return self._nc

    # -- the roster --------------------------------------------------------------------------
    def alive(self, node: str) -> bool:
        """Whether ``node`` (this one included) is up as far as the heartbeats tell."""
        if node == self.node_id:
            return True
        peer = self.peers.get(node)
        return peer is not None and not peer.down

    async def _beat(self) -> None:
        beat = 0
        while True:
            if self.connected:
                beat += 1
                body = {"node": self.node_id, "boot": self.boot, "beat": beat, **self.status()}
                with contextlib.suppress(Exception):
                    await self.nc.publish(subjects.heartbeat(self.node_id), _dumps(body))
            self._check_peers()
            await asyncio.sleep(self.heartbeat)

    def _check_peers(self) -> None:
        now = time.monotonic()
        if not self.connected or now < self._cut_off_until:
            return  # cut off ourselves: silence proves nothing
        for peer in list(self.peers.values()):
            if not peer.down and now - peer.seen_at > self.dead_after:
                self._peer_down(peer, "silent")

    def _peer_down(self, peer: Peer, why: str) -> None:
        peer.down = True
        log.warning("! node %s is down (%s)", peer.node, why)
        for listener in list(self.on_peer_down):
            try:
                listener(peer)
            except Exception:
                log.exception("! peer-down listener failed")

    async def _on_heartbeat(self, msg: Msg) -> None:
        try:
            body = json.loads(msg.data)
            node, boot = str(body["node"]), str(body["boot"])
        except (ValueError, KeyError, TypeError):
            return
        if node == self.node_id:
            return
        peer = self.peers.get(node)
        if peer is not None and peer.boot != boot and not peer.down:
            self._peer_down(peer, "restarted")  # the old incarnation's calls are gone
        if body.get("bye"):
            if peer is not None and peer.boot == boot and not peer.down:
                self._peer_down(peer, "left")
            return
        if peer is None or peer.boot != boot:
            peer = self.peers[node] = Peer(node, boot, time.monotonic())
        peer.seen_at = time.monotonic()
        peer.status = body
        if peer.down:  # it was cut off from us, not dead
            peer.down = False
            log.warning("= node %s is back", node)
            for listener in list(self.on_peer_back):
                try:
                    listener(peer)
                except Exception:
                    log.exception("! peer-back listener failed")

    # -- commands ----------------------------------------------------------------------------
    async def serve_commands(
        self, handler: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
    ) -> None:
        """Answer ``rk.node.<this node>.cmd`` requests with ``handler(body)``."""

        async def on_request(msg: Msg) -> None:
            try:
                reply = await handler(json.loads(msg.data))
            except Exception as exc:
                log.exception("! bus command failed")
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            with contextlib.suppress(Exception):
                await msg.respond(_dumps(reply))

        self._subs.append(await self.nc.subscribe(subjects.command(self.node_id), cb=on_request))

    async def command(
        self, node: str, body: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """Send ``body`` to ``node``'s command subject and return its reply.

        Raises NodeUnreachable (no such node on the bus, or the bus is down), NodeTimeout.
        """
        return await self._request(
            subjects.command(node), body, timeout, NodeUnreachable(f"node {node!r} is gone")
        )

    async def _request(
        self, subject: str, body: dict[str, Any], timeout: float | None, gone: Exception
    ) -> dict[str, Any]:
        from nats.errors import NoRespondersError
        from nats.errors import TimeoutError as NatsTimeout

        if not self.connected:
            raise gone
        try:
            msg = await self.nc.request(
                subject, _dumps(body), timeout=timeout or self.request_timeout
            )
        except NoRespondersError:
            raise gone from None
        except NatsTimeout:
            raise NodeTimeout(f"no reply on {subject} in time") from None
        reply = json.loads(msg.data)
        if not isinstance(reply, dict):
            raise NodeTimeout(f"a malformed reply on {subject}")
        return reply

    # -- offers ------------------------------------------------------------------------------
    async def offer(
        self, project: str, context: str, body: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """Hand an offer to one consumer of ``project``'s ``context``; its reply.

        Raises NoConsumer when no consumer is there (at once), NodeTimeout.
        """
        gone = NoConsumer(f"no consumer is receiving context {context!r} of project {project!r}")
        return await self._request(subjects.offer(project, context), body, timeout, gone)

    async def take_offers(
        self,
        project: str,
        context: str,
        handler: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> Subscription:
        """Join the queue group of ``project``'s ``context``; ``handler(offer)`` replies."""

        async def on_offer(msg: Msg) -> None:
            try:
                reply = handler(json.loads(msg.data))
            except Exception as exc:
                log.exception("! offer handler failed")
                reply = {"busy": f"{type(exc).__name__}"}
            with contextlib.suppress(Exception):
                await msg.respond(_dumps(reply))

        return await self.nc.subscribe(
            subjects.offer(project, context), queue=subjects.QUEUE, cb=on_offer
        )

    # -- events ------------------------------------------------------------------------------
    def publish_event(self, session: str, call_id: str, body: dict[str, Any]) -> int:
        """Queue one event for ``session`` (never blocks); its per-call sequence number."""
        key = (session, call_id)
        seq = self._seq.get(key, 0) + 1
        self._seq[key] = seq
        headers = {"Rk-Seq": str(seq), "Rk-Node": self.node_id}
        self._outgoing.append((subjects.event(session, call_id), _dumps(body), headers))
        self._wake.set()
        self.published += 1
        return seq

    def forget_call(self, session: str, call_id: str) -> None:
        """The call's last event is queued: drop its sequence counter."""
        self._seq.pop((session, call_id), None)

    async def _write_events(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._nc is not None:
                await self._flush_outgoing(self._nc)

    async def flush(self) -> None:
        """Hand everything queued so far (events, records, notices) to the bus, in order."""
        await self._flush_outgoing(self.nc)

    async def _flush_outgoing(self, nc: Nats) -> None:
        async with self._flushing:  # one flusher at a time keeps the order and sends each once
            while self._outgoing:
                subject, data, headers = self._outgoing[0]
                try:
                    await nc.publish(subject, data, headers=headers)
                except Exception as exc:  # buffer full while cut off: keep it for later
                    log.warning("! events held while the bus is away: %s", exc)
                    await asyncio.sleep(0.5)
                    continue
                self._outgoing.popleft()

    async def follow(self, session: str, handler: Callable[[Received], None]) -> Subscription:
        """Live events of ``session`` to ``handler``, in the order each owner sent them."""

        async def on_event(msg: Msg) -> None:
            received = _received(msg)
            if received is not None:
                handler(received)

        return await self.nc.subscribe(subjects.events_of(session), cb=on_event)

    async def replay(self, session: str, handler: Callable[[Received], None]) -> int:
        """Every event of ``session`` still in ``RK_EV``, oldest first; how many."""
        from nats.js.api import DeliverPolicy

        assert self._js is not None
        sub = await self._js.subscribe(
            subjects.events_of(session),
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        count = 0
        try:
            info = await sub.consumer_info()
            delivered = info.delivered.consumer_seq if info.delivered is not None else 0
            if info.num_pending == 0 and not delivered:
                return 0
            while True:
                msg = await sub.next_msg(timeout=self.request_timeout)
                received = _received(msg)
                if received is not None:
                    handler(received)
                    count += 1
                if msg.metadata.num_pending == 0:
                    return count
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    # -- session records ---------------------------------------------------------------------
    def write_session(self, session: str, record: dict[str, Any]) -> None:
        """Store a session's record (never blocks; the last write wins)."""
        self._outgoing.append((f"$KV.{subjects.SESSION_BUCKET}.{session}", _dumps(record), None))
        self._wake.set()

    async def read_session(self, session: str) -> tuple[dict[str, Any], int] | None:
        """A session's record and its revision, or None."""
        from nats.js.errors import KeyNotFoundError

        if self._sessions_kv is None or not subjects.is_node_id(session):
            return None
        await self.flush()
        try:
            entry = await self._sessions_kv.get(session)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        try:
            record = json.loads(entry.value)
        except ValueError:
            return None
        return (record, entry.revision or 0) if isinstance(record, dict) else None

    async def claim_session(self, session: str, record: dict[str, Any], revision: int) -> bool:
        """Write ``record`` only if the stored one is still at ``revision`` (one node wins)."""
        assert self._sessions_kv is not None
        try:
            await self._sessions_kv.update(session, _dumps(record), last=revision)
        except Exception:
            return False
        return True

    def drop_session(self, session: str) -> None:
        """Forget a session's record (it ended)."""
        self._outgoing.append(
            (f"$KV.{subjects.SESSION_BUCKET}.{session}", b"", {"KV-Operation": "DEL"})
        )
        self._wake.set()

    async def reap_once(self, key: str) -> bool:
        """True for the one node that asks first (cleaning up after a dead peer)."""
        if self._reap_kv is None:
            return False
        try:
            await self._reap_kv.create(key, self.node_id.encode())
        except Exception:
            return False
        return True

    # -- notices -----------------------------------------------------------------------------
    def notify(self, kind: str, body: dict[str, Any]) -> None:
        """Tell every node something about a session (``moved``, ``gone``)."""
        self._outgoing.append((subjects.session_notice(kind), _dumps(body), None))
        self._wake.set()

    async def _on_notice(self, msg: Msg) -> None:
        kind = msg.subject.rsplit(".", 1)[-1]
        try:
            body = json.loads(msg.data)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        for listener in list(self.on_notice):
            try:
                listener(kind, body)
            except Exception:
                log.exception("! session notice listener failed")


async def ask_node(
    url: str, node: str, body: dict[str, Any], *, timeout: float = 5.0
) -> dict[str, Any]:
    """One command to ``node`` from outside the cluster (``relaykit drain``); its reply.

    Raises BusUnavailable, NodeUnreachable, NodeTimeout.
    """
    nats = _nats()
    from nats.errors import NoRespondersError
    from nats.errors import TimeoutError as NatsTimeout

    subjects.check_node_id(node)
    try:
        nc = await nats.connect(servers=[url], connect_timeout=3, allow_reconnect=False)
    except Exception as exc:
        raise BusUnavailable(f"cannot reach the bus at {url}: {exc}") from None
    try:
        msg = await nc.request(subjects.command(node), _dumps(body), timeout=timeout)
    except NoRespondersError:
        raise NodeUnreachable(f"node {node!r} is not on the bus") from None
    except NatsTimeout:
        raise NodeTimeout(f"node {node!r} did not answer in time") from None
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
    reply = json.loads(msg.data)
    return reply if isinstance(reply, dict) else {}


def _received(msg: Msg) -> Received | None:
    parts = msg.subject.split(".")
    headers = msg.headers or {}
    try:
        seq = int(headers.get("Rk-Seq", "0"))
        body = json.loads(msg.data)
    except ValueError:
        return None
    if len(parts) != 4 or not isinstance(body, dict):
        return None
    call_id = str(body.get("call_id", ""))
    return Received(parts[2], call_id, seq, body)
