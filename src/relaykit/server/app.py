"""RelayServer: builds the parts of a relaykit node, wires them together, starts and stops them.

The parts: the call service (the core, :mod:`relaykit.calls`) with its media engine, clock,
media loader and speech recognition; the RELAY adapter (session registry, router, one
connection per WebSocket); and the adapters plugged in here: the virtual caller's door
(:meth:`RelayServer.dial_in`, the ``/caller`` WebSocket), the browser phone (``/phone``), the
SIP gateway (``sip=``) and the cluster bus (``cluster=``, :mod:`.cluster_link`).
"""

from __future__ import annotations

__all__ = ["RelayServer"]

import asyncio
import dataclasses
import json
import logging
import resource
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request

from ..calls import (
    Call,
    CallService,
    MediaClock,
    MediaLoader,
    RecordingStore,
    SpeechRecognition,
)
from ..calls.budget import MediaLimits
from ..calls.fetch import FetchPolicy, MediaFetcher
from ..media.asr import DEFAULT_MIN_CONFIDENCE, Recognizer
from ..media.engine import MediaEngine
from ..media.engines import SpeechConfig
from ..media.tts import EspeakTts, TtsEngine
from ..media.vad import VoiceActivityDetector
from ..phone import PAGE_PATH, SOCKET_PATH, Phone
from ..testing.callees import Callee, VirtualCallees
from ..testing.caller import VirtualCaller
from .auth import Credentials, Logins
from .caller_endpoint import CallerEndpoint
from .connection import Connection, ConnectionLimits
from .http import HttpReply, HttpRoutes
from .recordings import PREFIX as RECORDINGS_PREFIX
from .recordings import RecordingRoute
from .router import Router
from .sessions import ServerSession, SessionRegistry
from .taps import Taps

if TYPE_CHECKING:
    from ..cluster import ClusterBus
    from ..sip.gateway import SipGateway
    from .cluster_link import ClusterLink

log = logging.getLogger("relaykit.server")


class RelayServer:
    """A RELAY v2 server on ``ws://host:port`` that runs calls' media on one 20 ms clock.

    Args:
        host: interface to bind; loopback by default.
        port: TCP port; 0 picks a free one (read it back from :attr:`url`).
        credentials: ``{project: token}`` pairs accepted by ``blade.connect``.
        tts: speech synthesiser for ``tts`` media (espeak-ng by default).
        recognizer: speech recogniser for speech prompts (pocketsphinx by default).
        speech_engine: ``auto`` (pocketsphinx grammars for hinted prompts, Whisper for open
            ones when ``relaykit[whisper]`` is installed), ``pocketsphinx`` or ``whisper``;
            a prompt may choose its own (``collect.speech.engine``). See docs/speech.md.
        speech_min_confidence: speech results under this confidence (0–100) are no_match,
            unless a prompt sets ``collect.speech.min_confidence``.
        speech_models: language tag → pocketsphinx model directory of one's own.
        whisper_model: the Whisper model of open prompts: ``"tiny.en"`` (the default),
            ``"base"`` (the ``whisper-base`` extra) or a CTranslate2 Whisper model directory.
        asr_processes: worker processes that decode speech with the default recogniser, so
            decoding never stalls the media clock (0: a worker thread instead).
        record_calls: keep both audio channels of every call (for WAVs and timelines),
            streamed to a temporary file per call.
        fetch_timeout: seconds allowed to fetch an ``audio`` URL (redirects included).
        media_dirs: local folders whose files ``audio`` media may name (a path or
            ``file://`` URL); any other local file is refused.
        media_networks: non-public networks (``"127.0.0.0/8"``, ``"10.0.0.0/8"``) that
            ``audio`` URLs may reach; loopback, private, link-local and reserved addresses are
            refused otherwise.
        max_audio_bytes: largest ``audio`` file fetched.
        media_bytes: each project's media budget (see
            :class:`relaykit.calls.budget.MediaLimits`): bytes of audio it may hold.
        media_cpu_burst: CPU seconds of synthesis and decoding a project may spend at once.
        media_cpu_per_second: CPU seconds per second that refill ``media_cpu_burst``.
        media_fetches: ``audio`` downloads of a project at once.
        max_call_duration: seconds after which a call ends with reason ``maxDuration``
            (None: never).
        inline_media: load media and recognise speech on the event loop instead of in worker
            threads: deterministic under a fast-forwarding loop clock (tests), but the loop
            waits while they run.
        hold_gc: keep the garbage collector's full collections from pausing the media clock
            while calls are up (see :class:`~relaykit.calls.clock.MediaClock`); sets the
            process's gc thresholds, so for a server that owns its process.
        ping_interval: seconds between the server's own ``blade.ping``s (None: never).
        resume_grace: seconds a session (and its calls) outlives a dropped socket; a client
            that reconnects with its ``sessionid`` in time gets it back, with every event it
            missed, in order. 0 ends the calls at once.
        login_timeout: seconds a new connection has to send its credentials (then close 1008).
        max_message_size: largest WebSocket frame accepted, in bytes (larger: close 1009);
            64 KiB until the client has logged in.
        max_request_rate: requests per second per connection (token bucket); beyond, requests
            are refused with a "too many requests" error.
        max_request_burst: the token bucket's size for ``max_request_rate``.
        max_outbox: frames queued to a client that does not read before it is disconnected
            (close 1008).
        max_outbox_bytes: bytes queued likewise; 64 KiB until the client has logged in.
        max_backlog: events kept for a session whose client is away (oldest dropped beyond);
            keep it within the outbox's limits, which a resumed session's backlog must fit.
        max_backlog_bytes: bytes of events kept likewise.
        max_unauthenticated: connections not logged in, in all; beyond, the oldest silent one
            is closed (1013), or the new one if all are logging in.
        max_unauthenticated_per_address: the same, per remote address.
        max_login_attempts_per_address: failed logins of one address waiting for their
            (throttled) answer; beyond, new attempts are refused unread (close 1013).
        max_sessions_per_project: sessions with a connection, per project; sessions waiting to
            be resumed do not count, they have their own cap,
            ``max_detached_sessions_per_project`` (beyond, the oldest ends).
        max_calls_per_session: calls of one session; caps like this keep one client from
            exhausting the server, and each refusal names its limit.
        max_contexts_per_session: contexts one session may receive calls for.
        max_components_per_call: plays, prompts, recordings… running at once on one call.
        sip: ``(host, port)`` to answer SIP phones on (UDP; port 0 picks one, read it back
            from ``server.sip.port``); None: no SIP. See :mod:`relaykit.sip.gateway`.
        sip_routes: dialled number (or ``*``) → context for inbound SIP calls.
        phone: serve the browser phone at ``http://host:port/phone`` (see
            :mod:`relaykit.phone`).
        recordings_dir: where ``calling.record`` writes its files; None: a temporary
            directory, removed when the server stops. They are served at
            ``http://host:port/recordings/<token>.wav``.
        recording_retention: seconds a finished recording is kept (None: until the server
            stops, or for ever in ``recordings_dir``).
        cluster: NATS URL (``nats://127.0.0.1:4222``) to join a cluster of nodes; None: a
            single node (no bus is loaded). Needs ``relaykit[cluster]``; see docs/cluster.md.
        node_id: this node's id, carried by every call's events (required with ``cluster``;
            letters, digits, ``_``, ``-``); a random id by default.
        kamailio_rpc: ``(host, port)`` of the Kamailio in front's JSON-RPC UDP socket: when a
            node dies, its SIP dialogs are ended there (callers hear a BYE).

    Use as ``async with RelayServer(credentials={"p": "t"}) as server: ...``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Mapping[str, str] | None = None,
        *,
        tts: TtsEngine | None = None,
        recognizer: Recognizer | None = None,
        asr_processes: int = 2,
        speech_engine: str = "auto",
        speech_min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        speech_models: Mapping[str, str] | None = None,
        whisper_model: str | None = None,
        record_calls: bool = True,
        fetch_timeout: float = 10.0,
        inline_media: bool = False,
        hold_gc: bool = False,
        # Media budgets and what audio URLs may reach
        media_dirs: Sequence[str | Path] = (),
        media_networks: Sequence[str] = (),
        max_audio_bytes: int = 16 * 2**20,
        media_bytes: int = 64 * 2**20,
        media_cpu_burst: float = 20.0,
        media_cpu_per_second: float = 0.5,
        media_fetches: int = 4,
        max_call_duration: float | None = 4 * 3600.0,
        # Timeouts
        ping_interval: float | None = 30.0,
        resume_grace: float = 30.0,
        login_timeout: float = 10.0,
        # Limits
        max_message_size: int = 1 << 20,
        max_request_rate: float = 5000.0,
        max_request_burst: int = 10_000,
        max_outbox: int = 10_000,
        max_outbox_bytes: int = 16 << 20,
        max_backlog: int = 10_000,
        max_backlog_bytes: int = 8 << 20,
        max_unauthenticated: int = 512,
        max_unauthenticated_per_address: int = 64,
        max_login_attempts_per_address: int = 8,
        max_sessions_per_project: int = 100,
        max_detached_sessions_per_project: int = 100,
        max_calls_per_session: int = 2000,
        max_contexts_per_session: int = 1000,
        max_components_per_call: int = 32,
        # Real phones (SIP/RTP)
        sip: tuple[str, int] | None = None,
        sip_routes: Mapping[str, str] | None = None,
        # Recordings
        recordings_dir: str | Path | None = None,
        recording_retention: float | None = None,
        # The browser phone
        phone: bool = True,
        # Several nodes
        cluster: str | None = None,
        node_id: str | None = None,
        kamailio_rpc: tuple[str, int] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.credentials = Credentials(credentials or {})
        self.inline_media = inline_media
        self.max_message_size = max_message_size
        if cluster is not None and node_id is None:
            raise ValueError("cluster= needs node_id= (each node's own id)")
        self.nodeid = node_id or str(uuid.uuid4())
        self.space_id = str(uuid.uuid4())
        # the core
        self.speech = SpeechRecognition(
            recognizer,
            processes=asr_processes,
            inline=inline_media,
            min_confidence=speech_min_confidence,
            config=SpeechConfig(
                engine=speech_engine, models=speech_models or {}, whisper_model=whisper_model
            ),
        )
        self.engine = MediaEngine(vad_factory=VoiceActivityDetector)
        self.loader = MediaLoader(
            tts if tts is not None else EspeakTts(),
            fetcher=MediaFetcher(
                FetchPolicy.build(
                    media_dirs=media_dirs,
                    allowed_networks=media_networks,
                    timeout=fetch_timeout,
                    max_bytes=max_audio_bytes,
                )
            ),
            limits=MediaLimits(
                max_bytes=media_bytes,
                cpu_burst=media_cpu_burst,
                cpu_per_second=media_cpu_per_second,
                fetches=media_fetches,
            ),
            inline=inline_media,
        )
        self.recordings = RecordingStore(recordings_dir, retention=recording_retention)
        self.taps = Taps()
        self.call_service = CallService(
            engine=self.engine,
            loader=self.loader,
            speech=self.speech,
            node_id=self.nodeid,
            record_calls=record_calls,
            max_components_per_call=max_components_per_call,
            recordings=self.recordings,
            taps=self.taps,
            max_call_duration=max_call_duration,
        )
        self.clock = MediaClock(
            self.engine,
            self.call_service.dispatch,
            self.call_service.calls_present,
            inline_media=inline_media,
            hold_gc=hold_gc,
        )
        # RELAY over WebSocket
        self.logins = Logins(
            self.credentials,
            timeout=login_timeout,
            max_unauthenticated=max_unauthenticated,
            max_unauthenticated_per_address=max_unauthenticated_per_address,
            max_attempts_per_address=max_login_attempts_per_address,
        )
        self.session_registry = SessionRegistry(
            self.call_service,
            self.credentials,
            nodeid=self.nodeid,
            space_id=self.space_id,
            resume_grace=resume_grace,
            logins=self.logins,
            max_backlog=max_backlog,
            max_backlog_bytes=max_backlog_bytes,
            max_sessions_per_project=max_sessions_per_project,
            max_detached_sessions_per_project=max_detached_sessions_per_project,
            max_calls_per_session=max_calls_per_session,
            max_contexts_per_session=max_contexts_per_session,
        )
        self.call_service.receivers = self.session_registry
        self.router = Router(self.call_service, self.session_registry, nodeid=self.nodeid)
        self.limits = ConnectionLimits(
            ping_interval=ping_interval,
            max_request_rate=max_request_rate,
            max_request_burst=max_request_burst,
            max_outbox=max_outbox,
            max_outbox_bytes=max_outbox_bytes,
            max_message_size=max_message_size,
        )
        self._connections: set[Connection] = set()
        self._server: Server | None = None
        # Plain HTTP GETs on the same port (recordings, pages): adapters add their routes.
        self.http = HttpRoutes()
        self.http.add(RECORDINGS_PREFIX, RecordingRoute(self.recordings))
        # Extra WebSocket paths beside RELAY on "/" (the remote caller API).
        self._routes: dict[str, Callable[[ServerConnection], Awaitable[None]]] = {
            "/caller": CallerEndpoint(
                self.logins,
                self.dial_in,
                max_outbox=max_outbox,
                max_outbox_bytes=max_outbox_bytes,
            )
        }
        # The browser phone: its page over HTTP, its socket beside RELAY
        self.phone: Phone | None = None
        if phone:
            self.phone = Phone(
                self.call_service, self.credentials.check, self.session_registry.throttle
            )
            self.http.add(PAGE_PATH + "/", self._phone_http)
            self.add_route(SOCKET_PATH, self.phone.serve)
        # Real phones
        self.sip: SipGateway | None = None
        if sip is not None:
            from ..sip.gateway import SipGateway

            self.sip = SipGateway(
                self.call_service,
                sip[0],
                sip[1],
                sip_routes or {},
                projects=self.credentials.projects,
            )
            self.call_service.dialers["sip"] = self.sip
        # Several nodes on a bus; nothing of it loads on a single node.
        self.cluster: ClusterLink | None = None
        if cluster is not None:
            self.cluster = self._join(cluster, kamailio_rpc)

    def _join(self, url: str, kamailio_rpc: tuple[str, int] | None) -> ClusterLink:
        from ..cluster import ClusterBus, KamailioRpc
        from .cluster_link import ClusterLink

        bus: ClusterBus = ClusterBus(url, self.nodeid, request_timeout=10.0)
        link = ClusterLink(
            bus,
            self.call_service,
            self.session_registry,
            self.router,
            kamailio=KamailioRpc(kamailio_rpc) if kamailio_rpc is not None else None,
            on_drain=self._stop_sip_offers,
        )
        self.http.add("/cluster", self._cluster_status)
        return link

    def _stop_sip_offers(self) -> None:
        if self.sip is not None:
            self.sip.ua.draining = True  # OPTIONS and INVITEs get 503: the proxy goes elsewhere

    async def _cluster_status(self, request: object) -> HttpReply:
        assert self.cluster is not None
        bus = self.cluster.bus
        body = {  # an operator's view: this server's host is loopback unless told otherwise
            "node": self.nodeid,
            **self.cluster.status(),
            "offers": self.cluster.offers(),
            "bus": bus.connected,
            "peers": {p.node: {"up": not p.down, **p.status} for p in bus.peers.values()},
        }
        return HttpReply(200, json.dumps(body).encode(), "application/json")

    # -- what the parts hold --------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not started")
        return f"ws://{self.host}:{self.port}"

    @property
    def calls(self) -> Mapping[str, Call]:
        """The live calls, by id."""
        return self.call_service.calls

    @property
    def sessions(self) -> Mapping[str, ServerSession]:
        """The RELAY sessions (attached, or detached within their resume window), by id."""
        return self.session_registry.sessions

    @property
    def ping_interval(self) -> float | None:
        """Seconds between the server's own pings on new connections (None: never)."""
        return self.limits.ping_interval

    @ping_interval.setter
    def ping_interval(self, seconds: float | None) -> None:
        self.limits = dataclasses.replace(self.limits, ping_interval=seconds)

    @property
    def recognizer(self) -> Recognizer:
        return self.speech.recognizer

    @property
    def late_frames(self) -> int:
        """Media ticks that ran more than a frame late (clock health, for benchmarks)."""
        return self.clock.late_frames

    @late_frames.setter
    def late_frames(self, count: int) -> None:
        self.clock.late_frames = count

    @property
    def lateness(self) -> list[float]:
        """How late each of the first 100,000 media ticks ran, in seconds."""
        return self.clock.lateness

    def add_route(self, path: str, handler: Callable[[ServerConnection], Awaitable[None]]) -> None:
        """Serve WebSocket connections to ``path`` (beside RELAY on "/") with ``handler``."""
        if path == "/" or path in self._routes:
            raise ValueError(f"WebSocket path {path!r} is already served")
        self._routes[path] = handler

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> RelayServer:
        if self._server is not None:
            return self
        _raise_open_files_limit()
        if self.cluster is not None:
            await self.cluster.bus.start()
            await self.cluster.start()
        self._server = await serve(
            self._connection,
            self.host,
            self.port,
            max_size=self.max_message_size,
            compression=None,
            process_request=self.http.process_request,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        host = "[::1]" if host == "::" else (f"[{host}]" if ":" in host else host)
        self.recordings.base_url = f"http://{host}:{self.port}{RECORDINGS_PREFIX}"
        self.recordings.start()
        await self.loader.start()
        self.clock.start()
        if self.sip is not None:
            await self.sip.start()
            if self.cluster is not None:
                self.cluster.sip_address = f"{self.sip.host}:{self.sip.port}"
        log.info("= RELAY server listening on %s", self.url)
        return self

    async def stop(self) -> None:
        """Graceful stop: end every call, tell every client, close, stop the clock. Idempotent."""
        if self._server is None:
            return
        server, self._server = self._server, None
        self.call_service.end_all("hangup")
        if self.sip is not None:
            await self.sip.stop()
        self.session_registry.close()
        await asyncio.gather(*(c.close() for c in list(self._connections)))
        server.close()
        await server.wait_closed()
        if self.cluster is not None:
            await self.cluster.stop()
            await self.cluster.bus.stop()
        await self.clock.stop()
        await self.taps.aclose()
        self.recordings.close()
        self.speech.close()
        if self.phone is not None:
            self.phone.close()
        await self.loader.close()

    # -- several nodes --------------------------------------------------------------------------
    def drain(self) -> None:
        """Take no new calls (cluster mode): no offers to this node's sessions, SIP probes and
        INVITEs answered 503. :meth:`drained` resolves once no call is left."""
        if self.cluster is None:
            raise RuntimeError("drain needs cluster mode (cluster=...)")
        self.cluster.drain()

    async def drained(self) -> None:
        """Wait until the node drains and its last call has ended."""
        if self.cluster is None:
            raise RuntimeError("drain needs cluster mode (cluster=...)")
        await self.cluster.drained()

    async def __aenter__(self) -> RelayServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- the virtual caller's door --------------------------------------------------------------
    async def dial_in(
        self,
        context: str,
        from_number: str = "+15551230000",
        to_number: str = "+15559870000",
        *,
        project: str | None = None,
        timeout: float = 5.0,
    ) -> VirtualCaller:
        """Offer an inbound call to a consumer of ``context``; returns the caller's side.

        Waits up to ``timeout`` seconds for a consumer of that context to connect.
        """
        if self._server is None:
            raise RuntimeError("the server is not started")
        if project is None:
            if len(self.credentials) != 1:
                raise ValueError("project= is required when the server has several projects")
            project = self.credentials.projects[0]
        call = await self.call_service.offer(
            project=project,
            context=context,
            from_number=from_number,
            to_number=to_number,
            timeout=timeout,
        )
        return VirtualCaller(
            self.call_service,
            call,
            tts=self.loader.tts,
            recognizer=self.speech.recognizer,
            inline=self.inline_media,
        )

    def callees(self, numbers: Mapping[str, str | Callee]) -> VirtualCallees:
        """Answer the calls this server places to phone numbers (``calling.begin``,
        ``calling.dial``, ``calling.connect`` to ``phone`` devices) with virtual callees:
        ``{"+15551110000": "answer", "+15552220000": "busy", "*": "ring"}`` (behaviours
        ``answer``, ``busy``, ``decline``, ``ring``, ``error``, or a :class:`Callee` with its
        ringing time). Returns them: ``await callees.expect_answered(number)`` gives the
        :class:`VirtualCaller` of an answered leg. A second call replaces the table.
        """
        callees = VirtualCallees(
            self.call_service,
            numbers,
            tts=self.loader.tts,
            recognizer=self.speech.recognizer,
            inline=self.inline_media,
        )
        self.call_service.dialers["phone"] = callees
        return callees

    async def _phone_http(self, request: Request) -> HttpReply:
        assert self.phone is not None
        reply = await self.phone.http(request)
        return HttpReply(reply.status, reply.body, reply.content_type, reply.headers)

    # -- connections ----------------------------------------------------------------------------
    async def _connection(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else "/"
        route = self._routes.get(path.split("?", 1)[0])
        if route is not None:
            await route(ws)
            return
        connection = Connection(ws, self.session_registry, self.router, self.limits)
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)


def _raise_open_files_limit() -> None:
    """Raise this process's soft limit of open files to its hard limit, where allowed.

    Each client holds a socket; at the common default of 1024, a thousand idle sockets would
    lock every new client out.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return
    target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.info("! cannot raise the open files limit from %d: %s", soft, exc)
