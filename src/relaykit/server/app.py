"""RelayServer: the local RELAY v2 server (WebSocket, blade handshake, calling, media clock)."""

from __future__ import annotations

__all__ = ["RelayServer"]

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, ServerConnection, serve

from ..errors import (
    AuthenticationError,
    LimitExceededError,
    NotFoundError,
    ProtocolError,
    RelayTimeoutError,
    UnknownMethodError,
)
from ..media.asr import Recognizer
from ..media.collector import InputStarted, PartialResult, PromptResultData
from ..media.engine import (
    CollectOutputEvent,
    EngineEvent,
    ItemStarted,
    KeyDetected,
    MediaEngine,
    PlaybackEvent,
    SpeechCaptured,
)
from ..media.frames import FRAME_SECONDS
from ..media.tts import EspeakTts, TtsEngine
from ..media.vad import VoiceActivityDetector
from ..protocol import blade, calling
from ..protocol.jsonrpc import Request
from ..sip.gateway import SipGateway, parse_begin, parse_dial
from .auth import AuthThrottle, Credentials
from .calls import CallState, Component, ServerCall
from .connection import Connection
from .media_loader import MediaLoader
from .sessions import ServerSession
from .speech import SpeechRecognition

if TYPE_CHECKING:
    from ..testing.caller import VirtualCaller

log = logging.getLogger("relaykit.server")

CONTEXT_SETTLE_SECONDS = 0.1
Handler = Callable[[ServerSession, dict[str, Any]], Awaitable[dict[str, Any]]]


class RelayServer:
    """A RELAY v2 server on ``ws://host:port`` that runs calls' media on one 20 ms clock.

    Args:
        host: interface to bind; loopback by default.
        port: TCP port; 0 picks a free one (read it back from :attr:`url`).
        credentials: ``{project: token}`` pairs accepted by ``blade.connect``.
        tts: speech synthesiser for ``tts`` media (espeak-ng by default).
        recognizer: speech recogniser for speech prompts (pocketsphinx by default).
        asr_processes: worker processes that decode speech with the default recogniser, so
            decoding never stalls the media clock (0: a worker thread instead).
        record_calls: keep both audio channels of every call (for WAVs and timelines).
        fetch_timeout: seconds allowed to fetch an ``audio`` URL.
        inline_media: load media and recognise speech on the event loop instead of in worker
            threads: deterministic under a fast-forwarding loop clock (tests), but the loop
            waits while they run.
        ping_interval: seconds between the server's own ``blade.ping``s (None: never).
        resume_grace: seconds a session (and its calls) outlives a dropped socket; a client
            that reconnects with its ``sessionid`` in time gets it back, with every event it
            missed, in order. 0 ends the calls at once.
        max_message_size: largest WebSocket frame accepted, in bytes (larger: close 1009).
        max_request_rate, max_request_burst: requests per second per connection (token bucket);
            beyond, requests are refused with a "too many requests" error.
        max_outbox: frames queued to a client that does not read before it is disconnected.
        max_backlog: events kept for a detached session (oldest dropped beyond).
        max_sessions_per_project, max_calls_per_session, max_components_per_call: caps that
            keep one client from exhausting the server; each refusal names the limit.
        sip: ``(host, port)`` to answer SIP phones on (UDP; port 0 picks one, read it back
            from ``server.sip.port``); None: no SIP. See :mod:`relaykit.sip.gateway`.
        sip_routes: dialled number (or ``*``) → context for inbound SIP calls.

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
        record_calls: bool = True,
        fetch_timeout: float = 10.0,
        inline_media: bool = False,
        # Timeouts
        ping_interval: float | None = 30.0,
        resume_grace: float = 30.0,
        # Limits
        max_message_size: int = 1 << 20,
        max_request_rate: float = 5000.0,
        max_request_burst: int = 10_000,
        max_outbox: int = 10_000,
        max_backlog: int = 10_000,
        max_sessions_per_project: int = 100,
        max_calls_per_session: int = 2000,
        max_components_per_call: int = 32,
        # Real phones (SIP/RTP)
        sip: tuple[str, int] | None = None,
        sip_routes: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.credentials = Credentials(credentials or {})
        self.record_calls = record_calls
        self.max_message_size = max_message_size
        self.ping_interval = ping_interval
        self.resume_grace = resume_grace
        self.max_request_rate = max_request_rate
        self.max_request_burst = max_request_burst
        self.max_outbox = max_outbox
        self.max_backlog = max_backlog
        self.max_sessions_per_project = max_sessions_per_project
        self.max_calls_per_session = max_calls_per_session
        self.max_components_per_call = max_components_per_call
        self._throttle = AuthThrottle()
        self._connections: set[Connection] = set()
        self.nodeid = str(uuid.uuid4())
        self.space_id = str(uuid.uuid4())
        self.speech = SpeechRecognition(recognizer, processes=asr_processes, inline=inline_media)
        self.recognizer = self.speech.recognizer
        self.engine = MediaEngine(vad_factory=VoiceActivityDetector)
        self.inline_media = inline_media
        self.loader = MediaLoader(
            tts if tts is not None else EspeakTts(),
            fetch_timeout=fetch_timeout,
            inline=inline_media,
        )
        self.calls: dict[str, ServerCall] = {}
        self.sessions: dict[str, ServerSession] = {}
        # Clock health, for benchmarks: ticks more than a frame late, and how late each tick
        # ran in seconds (the first 100,000 ticks).
        self.late_frames = 0
        self.lateness: list[float] = []
        self._server: Server | None = None
        self._clock_task: asyncio.Task[None] | None = None
        self._calls_present = asyncio.Event()
        self._receivers_changed = asyncio.Event()
        self._rr = 0
        # Extra WebSocket paths beside RELAY on "/" (e.g. the remote caller API).
        self._routes: dict[str, Callable[[ServerConnection], Awaitable[None]]] = {}
        from ..testing.remote import CallerEndpoint  # deferred: testing imports the server

        self._routes["/caller"] = CallerEndpoint(self)
        self._handlers: dict[str, Handler] = {
            calling.RECEIVE: self._receive,
            calling.ANSWER: self._answer,
            calling.END: self._end,
            calling.PLAY: self._play,
            calling.PLAY_STOP: self._stop,
            calling.PLAY_VOLUME: self._volume,
            calling.PLAY_AND_COLLECT: self._play_and_collect,
            calling.PLAY_AND_COLLECT_STOP: self._stop,
            calling.PLAY_AND_COLLECT_VOLUME: self._volume,
            "calling.begin": self._begin,
            "calling.dial": self._dial,
        }
        self.sip: SipGateway | None = None
        if sip is not None:
            self.sip = SipGateway(self, sip[0], sip[1], sip_routes or {})

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not started")
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> RelayServer:
        if self._server is not None:
            return self
        self._server = await serve(
            self._connection,
            self.host,
            self.port,
            max_size=self.max_message_size,
            compression=None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._clock_task = asyncio.create_task(self._run_clock(), name="relaykit-media-clock")
        if self.sip is not None:
            await self.sip.start()
        log.info("= RELAY server listening on %s", self.url)
        return self

    async def stop(self) -> None:
        """Graceful stop: end every call, tell every client, close, stop the clock. Idempotent."""
        if self._server is None:
            return
        server, self._server = self._server, None
        for call in list(self.calls.values()):
            self._end_call(call, "hangup")
        if self.sip is not None:
            await self.sip.stop()
        for session in list(self.sessions.values()):
            if session.expiry is not None:
                session.expiry.cancel()
        self.sessions.clear()
        await asyncio.gather(*(c.close() for c in list(self._connections)))
        server.close()
        await server.wait_closed()
        if self._clock_task is not None:
            self._clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock_task
            self._clock_task = None
        self.speech.close()

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
        from ..testing.caller import VirtualCaller

        if self._server is None:
            raise RuntimeError("the server is not started")
        if project is None:
            if len(self.credentials) != 1:
                raise ValueError("project= is required when the server has several projects")
            project = self.credentials.projects[0]
        call = await self._offer(project, context, from_number, to_number, timeout, "")
        return VirtualCaller(self, call)

    async def _offer(
        self,
        project: str,
        context: str,
        from_number: str,
        to_number: str,
        timeout: float,
        via: str,
    ) -> ServerCall:
        """Create an inbound call and offer it (calling.call.receive) to a consumer of context."""
        session = await self._wait_receiver(project, context, timeout)
        call = self._new_call(session, context, from_number, to_number, "inbound")
        call.note(
            0.0, "call", f"{from_number} calls {to_number}{via}; offered to context {context!r}"
        )
        session.broadcast(
            calling.CALL_RECEIVE,
            calling.call_receive_event(
                call_id=call.call_id,
                node_id=call.node_id,
                context=context,
                from_number=from_number,
                to_number=to_number,
            ),
            nodeid=self.nodeid,
            space_id=self.space_id,
            context=context,
        )
        return call

    def _new_call(
        self, session: ServerSession, context: str, from_: str, to: str, direction: str
    ) -> ServerCall:
        """A call owned by ``session``, with its media on the engine's clock."""
        media = self.engine.add_call(str(uuid.uuid4()), record=self.record_calls)
        call = ServerCall(
            session.project,
            context,
            from_,
            to,
            self.nodeid,
            media,
            session=session,
            direction=direction,
            call_id=media.call_id,
        )
        self.calls[call.call_id] = call
        self._calls_present.set()
        return call

    async def _wait_receiver(self, project: str, context: str, timeout: float) -> ServerSession:
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
                if at <= now and self._calls_of(s) < self.max_calls_per_session
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

    def _calls_of(self, session: ServerSession) -> int:
        return sum(1 for c in self.calls.values() if c.session is session)

    def hangup_from_caller(self, call: ServerCall) -> None:
        self._end_call(call, "hangup")

    # -- media clock ----------------------------------------------------------------------------
    async def _run_clock(self) -> None:
        """Tick the engine every 20 ms of loop time; catch up frame by frame when late."""
        loop = asyncio.get_running_loop()
        while True:
            if not self.calls:
                self._calls_present.clear()
                await self._calls_present.wait()
            start = loop.time()
            n = 0
            while self.calls:
                n += 1
                target = start + n * FRAME_SECONDS
                delay = target - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    await asyncio.sleep(0)
                late = loop.time() - target
                if late > FRAME_SECONDS:
                    self.late_frames += 1
                if len(self.lateness) < 100_000:
                    self.lateness.append(late)
                if self.inline_media and late > FRAME_SECONDS / 4:
                    # The loop was busy (inline media work): media time waits too, and this
                    # frame comes one frame from now, as on a fast-forwarding test clock.
                    start, n = start + late + FRAME_SECONDS, n - 1
                    continue
                try:
                    self._dispatch(self.engine.tick())
                except Exception:
                    log.exception("! media tick failed")

    def _dispatch(self, events: list[EngineEvent]) -> None:
        for event in events:
            call = self.calls.get(event.call_id)
            if call is None:
                continue
            if isinstance(event, PlaybackEvent):
                self._emit(
                    call,
                    calling.PLAY_EVENT,
                    calling.play_event(
                        call_id=call.call_id,
                        node_id=call.node_id,
                        control_id=event.control_id,
                        state=event.state,
                    ),
                )
                if event.cause == "barge_in":
                    call.note(event.at, "ivr", "stops the prompt's media (barge-in)")
                elif event.cause == "stopped":
                    call.note(event.at, "ivr", "stops the media")
                elif event.state == "error" and event.cause != "hangup":
                    call.note(event.at, "ivr", f"media error: {event.error}")
                component = call.components.get(event.control_id)
                if component is not None and component.kind == "play" and event.state != "playing":
                    call.components.pop(event.control_id, None)
            elif isinstance(event, CollectOutputEvent):
                self._emit_collect(call, event)
            elif isinstance(event, ItemStarted):
                level = f" at {event.volume_db:+g} dB" if event.volume_db else ""
                call.note(event.at, "ivr", f"plays {event.kind} {event.label!r}{level}")
            elif isinstance(event, KeyDetected):
                call.note(event.at, "ivr", f"detects key {event.key}")
            elif isinstance(event, SpeechCaptured):
                self._recognize(call, event)

    def _recognize(self, call: ServerCall, event: SpeechCaptured) -> None:
        """Recognise an utterance off the media clock, then hand the text back to the engine."""
        if not event.final:
            if event.control_id in call.partials_running:
                return  # the previous snapshot is still being decoded; skip this one
            call.partials_running.add(event.control_id)
        else:
            seconds = len(event.audio) / 16000
            call.note(event.at, "ivr", f"hears {seconds:.1f}s of speech ({event.reason})")

        async def run() -> None:
            try:
                text, confidence = await self.speech.decode(
                    event.language, event.hints, event.audio, final=event.final
                )
            except Exception:
                log.exception("! speech recognition failed")
                text, confidence = None, 0.0
            finally:
                call.partials_running.discard(event.control_id)
            if event.final:
                self._dispatch(
                    self.engine.speech_recognized(
                        call.call_id, event.control_id, text, confidence, event.reason
                    )
                )
            elif text:
                self._dispatch(self.engine.speech_partial(call.call_id, event.control_id, text))

        task = asyncio.get_running_loop().create_task(run())
        call.loaders.add(task)
        task.add_done_callback(call.loaders.discard)

    def _emit_collect(self, call: ServerCall, event: CollectOutputEvent) -> None:
        component = call.components.get(event.control_id)
        output = event.output
        common = {"call_id": call.call_id, "node_id": call.node_id, "control_id": event.control_id}
        if isinstance(output, InputStarted):
            if component is None or component.collect is None:
                return
            if not component.collect.send_start_of_input:
                return
            params = calling.collect_event(**common, result_type="start_of_input", final=False)
        elif isinstance(output, PartialResult):
            params = calling.collect_event(
                **common, result_type=output.result_type, result_params=output.params, final=False
            )
        elif isinstance(output, PromptResultData):
            call.components.pop(event.control_id, None)
            shown = {k: v for k, v in (output.params or {}).items() if v != ""}
            call.note(
                event.at,
                "ivr",
                f"prompt ends: {output.result_type} {shown} (reason {output.reason})",
            )
            params = calling.collect_event(
                **common,
                result_type=output.result_type,
                result_params=output.params,
                reason=output.reason,
            )
        else:  # pragma: no cover
            return
        self._emit(call, calling.COLLECT_EVENT, params)

    def _emit(self, call: ServerCall, event_type: str, params: dict[str, Any]) -> None:
        if call.session is not None:
            call.session.broadcast(event_type, params, nodeid=self.nodeid, space_id=self.space_id)

    def _emit_state(self, call: ServerCall) -> None:
        reason = f" ({call.end_reason})" if call.ended and call.end_reason else ""
        call.note(self.engine.call_time(call.media), "call", f"{call.state.value}{reason}")
        params = calling.call_state_event(
            call_id=call.call_id,
            node_id=call.node_id,
            call_state=call.state.value,
            from_number=call.from_number,
            to_number=call.to_number,
            direction=call.direction,
            end_reason=call.end_reason
            if call.state in (CallState.ENDING, CallState.ENDED)
            else None,
        )
        if self.sip is not None:
            self.sip.decorate_state(call, params)
        self._emit(call, calling.CALL_STATE, params)

    def _end_call(self, call: ServerCall, reason: str) -> None:
        """``ending``, then every component's terminal event, then ``ended``.

        Causal order: a client that gets a prompt's result because the call ended already
        knows the call is ending (``call.ended`` is true in both SDKs).
        """
        if call.ended:
            return
        call.end_reason = reason
        if self.sip is not None:
            self.sip.ended(call, reason)
        call.move_to(CallState.ENDING)
        self._emit_state(call)
        self._dispatch(self.engine.end_call(call.call_id))
        for task in call.loaders:
            task.cancel()
        call.move_to(CallState.ENDED)
        self._emit_state(call)
        call.components.clear()
        self.calls.pop(call.call_id, None)

    # -- real phones (SIP): calls the gateway creates ------------------------------------------
    async def _sip_offer(
        self, project: str, context: str, from_number: str, to_number: str, timeout: float
    ) -> ServerCall:
        """An INVITE became a call: offer it to a consumer of ``context`` (as dial_in does)."""
        return await self._offer(project, context, from_number, to_number, timeout, " (SIP)")

    def _sip_outbound(self, session: ServerSession, from_uri: str, to_uri: str) -> ServerCall:
        """A call placed with calling.begin/dial: owned by the requesting session."""
        if self._calls_of(session) >= self.max_calls_per_session:
            raise LimitExceededError(f"session has {self._calls_of(session)} calls, the limit")
        context = next(iter(session.contexts), "")
        call = self._new_call(session, context, from_uri, to_uri, "outbound")
        call.note(0.0, "call", f"{from_uri} calls {to_uri} (SIP, outbound)")
        return call

    async def _begin(self, session: ServerSession, params: dict[str, Any]) -> dict[str, Any]:
        """calling.begin (§5.5) with one sip device."""
        if self.sip is None:
            raise ProtocolError("outbound calls need the SIP gateway (sip=...)", field="device")
        tag, device = parse_begin(params)
        state = await self.sip.begin(session, tag, device)
        result = blade.relay_result(200, "Trying")
        result.update(call_id=state.call.call_id, node_id=self.nodeid)
        return result

    async def _dial(self, session: ServerSession, params: dict[str, Any]) -> dict[str, Any]:
        """calling.dial (§5.5): device groups in series, each group's devices in parallel."""
        if self.sip is None:
            raise ProtocolError("outbound calls need the SIP gateway (sip=...)", field="devices")
        tag, groups = parse_dial(params)
        self.sip.start_dial(session, tag, groups)
        return blade.relay_result(200, "Dialing")

    # -- connections and sessions -----------------------------------------------------------
    async def _connection(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else "/"
        route = self._routes.get(path.split("?", 1)[0])
        if route is not None:
            await route(ws)
            return
        connection = Connection(self, ws)
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)

    async def _connect(
        self, params: dict[str, Any], connection: Connection
    ) -> tuple[ServerSession, dict[str, Any]]:
        """blade.connect: check credentials (throttling failures), restore or open a session."""
        connect = blade.ConnectParams.parse(params)
        loop = asyncio.get_running_loop()
        if not self.credentials.check(connect.project, connect.token):
            delay = self._throttle.failure(connection.address, loop.time())
            await asyncio.sleep(delay)
            raise AuthenticationError("authentication failed: unknown project or wrong token")
        self._throttle.success(connection.address)
        session = self.sessions.get(connect.sessionid or "")
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
            session = ServerSession(connect.project, connect.agent, max_backlog=self.max_backlog)
            self.sessions[session.sessionid] = session
        session.attach(connection.send)
        result = blade.connect_result(
            sessionid=session.sessionid,
            nodeid=self.nodeid,
            project=session.project,
            signature=_signature(session.project),
            restored=restored,
        )
        return session, result

    def _detach(self, session: ServerSession, connection: Connection) -> None:
        """The socket is gone; keep the session (and its calls) for the resume grace window."""
        if session.send != connection.send:
            return  # already re-attached to a newer connection
        session.detach()
        if self._server is None or self.resume_grace <= 0:
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
        for call in list(self.calls.values()):
            if call.session is session:
                self._end_call(call, "hangup")
        session.backlog.clear()

    # -- requests -------------------------------------------------------------------------------
    async def _request(self, session: ServerSession, request: Request) -> dict[str, Any]:
        method = request.method
        if method == blade.PING:
            timestamp = request.params.get("timestamp")
            return {"timestamp": timestamp} if timestamp is not None else {}
        if method == blade.SUBSCRIPTION:
            sub = blade.SubscriptionParams.parse(request.params)
            self._check_protocol(session, sub.protocol, "params.protocol")
            session.subscribed = sub.command == "add"
            if session.subscribed:
                asyncio.get_running_loop().call_soon(session.flush)
            return {
                "protocol": sub.protocol,
                "command": sub.command,
                "subscribe_channels": list(sub.channels),
            }
        if method != blade.EXECUTE:
            raise UnknownMethodError(method)
        execute = blade.ExecuteParams.parse(request.params)
        if execute.method == "setup":
            if execute.protocol != blade.SETUP_PROTOCOL:
                raise ProtocolError(
                    'setup must name protocol "signalwire"', field="params.protocol"
                )
            protocol = session.protocol or session.new_protocol(_signature(session.project))
            return self._execute_result({"protocol": protocol})
        self._check_protocol(session, execute.protocol, "params.protocol")
        handler = self._handlers.get(execute.method)
        if handler is None:
            raise UnknownMethodError(execute.method)
        try:
            inner = await handler(session, execute.params)
        except NotFoundError as exc:
            inner = blade.relay_result(404, exc.message)
        except ProtocolError as exc:
            inner = blade.relay_result(400, str(exc))
        except LimitExceededError as exc:
            inner = blade.relay_result(429, str(exc))
        return self._execute_result(inner)

    def _execute_result(self, inner: dict[str, Any]) -> dict[str, Any]:
        return blade.execute_result(
            inner, requester_nodeid=self.nodeid, responder_nodeid=self.nodeid
        )

    @staticmethod
    def _check_protocol(session: ServerSession, protocol: str, field: str) -> None:
        if session.protocol is None:
            raise ProtocolError("run setup first", field=field)
        if protocol != session.protocol:
            raise ProtocolError("is not this session's protocol", field=field)

    def _call(self, session: ServerSession, ref: calling.CallRef) -> ServerCall:
        call = self.calls.get(ref.call_id)
        # Another project's call looks exactly like no call at all.
        if call is None or call.project != session.project or call.ended:
            raise NotFoundError(f"call {ref.call_id!r} not found")
        return call

    # -- calling.* handlers ---------------------------------------------------------------------
    async def _receive(self, session: ServerSession, params: dict[str, Any]) -> dict[str, Any]:
        receive = calling.ReceiveParams.parse(params)
        # The v2 SDK registers its handler only after this reply is processed; an offer sent
        # at once would be dropped, so a context becomes routable a moment later.
        ready_at = asyncio.get_running_loop().time() + CONTEXT_SETTLE_SECONDS
        for context in receive.contexts:
            session.contexts.setdefault(context, ready_at)
        self._receivers_changed.set()
        return blade.relay_result(
            200,
            "Receiving all inbound related to the requested relay contexts and available scopes",
        )

    async def _answer(self, session: ServerSession, params: dict[str, Any]) -> dict[str, Any]:
        call = self._call(session, calling.AnswerParams.parse(params).call)
        if call.state is not CallState.ANSWERED:
            call.session = session
            call.move_to(CallState.ANSWERED)
            if self.sip is not None:
                self.sip.answered(call)
            asyncio.get_running_loop().call_soon(self._emit_state, call)
        return blade.relay_result(200, "Answered")

    async def _end(self, session: ServerSession, params: dict[str, Any]) -> dict[str, Any]:
        end = calling.EndParams.parse(params)
        call = self._call(session, end.call)
        asyncio.get_running_loop().call_soon(self._end_call, call, end.reason)
        return blade.relay_result(200, "Disconnecting call")

    async def _play(self, session: ServerSession, params: dict[str, Any]) -> dict[str, Any]:
        play = calling.PlayParams.parse(params)
        call = self._call(session, play.call)
        self._check_control_id(call, play.control_id)
        items = self.loader.prepare(play.play)
        self.engine.start_play(call.call_id, play.control_id, items, play.volume)
        call.components[play.control_id] = Component("play")
        self._load(call, items, play.play)
        return blade.relay_result(200, "Playing")

    async def _play_and_collect(
        self, session: ServerSession, params: dict[str, Any]
    ) -> dict[str, Any]:
        prompt = calling.PlayAndCollectParams.parse(params)
        call = self._call(session, prompt.call)
        self._check_control_id(call, prompt.control_id)
        speech = prompt.collect.speech
        if speech is not None and not _supports(self.recognizer, speech.language):
            supported = ", ".join(self.recognizer.languages)
            raise ProtocolError(
                f"unsupported speech language {speech.language!r}; supported: {supported}",
                field="collect.speech.language",
            )
        if speech is not None:
            self.speech.prepare()
        items = self.loader.prepare(prompt.play)
        self.engine.start_prompt(
            call.call_id, prompt.control_id, items, prompt.collect, prompt.volume
        )
        call.components[prompt.control_id] = Component("prompt", prompt.collect)
        self._load(call, items, prompt.play)
        return blade.relay_result(200, "Playing")

    async def _stop(self, session: ServerSession, params: dict[str, Any]) -> dict[str, Any]:
        control = calling.ControlParams.parse(params)
        call = self._call(session, control.call)
        if control.control_id not in call.components:
            raise NotFoundError(f"control_id {control.control_id!r} not found")
        # Acknowledge first, then the terminal events (§5.2: a collect follows every stop).
        asyncio.get_running_loop().call_soon(
            lambda: self._dispatch(self.engine.stop(call.call_id, control.control_id))
        )
        return blade.relay_result(200, "Stopped")

    async def _volume(self, session: ServerSession, params: dict[str, Any]) -> dict[str, Any]:
        volume = calling.VolumeParams.parse(params)
        call = self._call(session, volume.call)
        if not self.engine.set_volume(call.call_id, volume.control_id, volume.volume):
            raise NotFoundError(f"control_id {volume.control_id!r} not found")
        return blade.relay_result(200, "Volume changed")

    def _check_control_id(self, call: ServerCall, control_id: str) -> None:
        if control_id in call.components:
            raise ProtocolError("is already in use on this call", field="control_id")
        if len(call.components) >= self.max_components_per_call:
            raise LimitExceededError(
                f"call already runs {len(call.components)} plays/prompts, the limit"
            )

    def _load(self, call: ServerCall, items: list[Any], media: Any) -> None:
        task = asyncio.create_task(self.loader.load(items, media))
        call.loaders.add(task)
        task.add_done_callback(call.loaders.discard)


def _supports(recognizer: Recognizer, language: str) -> bool:
    wanted = language.replace("_", "-").lower()
    return any(
        wanted == lang.lower() or wanted == lang.lower().split("-")[0]
        for lang in recognizer.languages
    )


def _signature(project: str) -> str:
    return hashlib.sha256(f"relaykit:{project}".encode()).hexdigest()[:32]
