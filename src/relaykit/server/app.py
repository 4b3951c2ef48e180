"""RelayServer: the local RELAY v2 server (WebSocket, blade handshake, calling, media clock)."""

from __future__ import annotations

__all__ = ["RelayServer"]

import asyncio
import contextlib
import hashlib
import hmac
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, ServerConnection, serve

from ..errors import (
    AuthenticationError,
    ErrorCode,
    NotFoundError,
    ProtocolError,
    RelayError,
    RelayTimeoutError,
    UnknownMethodError,
)
from ..media.asr import PocketsphinxRecognizer, Recognizer
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
from ..protocol import Malformed, Peer, ReplyReceived, RequestReceived, blade, calling
from ..protocol.jsonrpc import Request
from .calls import CallState, Component, ServerCall
from .media_loader import MediaLoader
from .sessions import ServerSession

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
        record_calls: keep both audio channels of every call (for WAVs and timelines).
        max_message_size: largest WebSocket frame accepted, in bytes.
        ping_interval: seconds between the server's own ``blade.ping``s (None: never).

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
        record_calls: bool = True,
        max_message_size: int = 1 << 20,
        ping_interval: float | None = 30.0,
        fetch_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.credentials = dict(credentials or {})
        self.record_calls = record_calls
        self.max_message_size = max_message_size
        self.ping_interval = ping_interval
        self.nodeid = str(uuid.uuid4())
        self.space_id = str(uuid.uuid4())
        self.recognizer = recognizer if recognizer is not None else PocketsphinxRecognizer()
        self.engine = MediaEngine(vad_factory=VoiceActivityDetector)
        self.loader = MediaLoader(
            tts if tts is not None else EspeakTts(), fetch_timeout=fetch_timeout
        )
        self.calls: dict[str, ServerCall] = {}
        self.sessions: dict[str, ServerSession] = {}
        self.late_frames = 0
        self.lateness: list[float] = []  # recent per-tick lateness samples, seconds
        self._server: Server | None = None
        self._clock_task: asyncio.Task[None] | None = None
        self._calls_present = asyncio.Event()
        self._receivers_changed = asyncio.Event()
        self._rr = 0
        # Extra WebSocket paths beside RELAY on "/" (e.g. the remote caller API).
        self._routes: dict[str, Callable[[ServerConnection], Awaitable[None]]] = {}
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
        }

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
        log.info("= RELAY server listening on %s", self.url)
        return self

    async def stop(self) -> None:
        """End every call, close every connection, stop the clock. Idempotent."""
        if self._server is None:
            return
        for call in list(self.calls.values()):
            self._end_call(call, "hangup")
        server, self._server = self._server, None
        server.close()
        await server.wait_closed()
        if self._clock_task is not None:
            self._clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock_task
            self._clock_task = None

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
            project = next(iter(self.credentials))
        session = await self._wait_receiver(project, context, timeout)
        media = self.engine.add_call(str(uuid.uuid4()), record=self.record_calls)
        call = ServerCall(
            project,
            context,
            from_number,
            to_number,
            self.nodeid,
            media,
            call_id=media.call_id,
            session=session,
        )
        self.calls[call.call_id] = call
        self._calls_present.set()
        caller = VirtualCaller(self, call)
        call.note(0.0, "call", f"{from_number} calls {to_number}; offered to context {context!r}")
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
        return caller

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
            candidates = [s for at, s in ready_at if at <= now]
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
        """Run the recogniser on an utterance in a worker thread, then hand back the text."""
        if not event.final:
            if event.control_id in call.partials_running:
                return  # the previous snapshot is still being decoded; skip this one
            call.partials_running.add(event.control_id)
        else:
            seconds = len(event.audio) / 16000
            call.note(event.at, "ivr", f"hears {seconds:.1f}s of speech ({event.reason})")

        def decode() -> tuple[str | None, float]:
            utterance = self.recognizer.open(language=event.language, hints=event.hints)
            try:
                utterance.feed(event.audio)
                if not event.final:
                    return utterance.partial(), 0.0
                result = utterance.finish()
            finally:
                utterance.close()
            return (None, 0.0) if result is None else (result.text, result.confidence)

        async def run() -> None:
            try:
                text, confidence = await asyncio.to_thread(decode)
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
        self._emit(
            call,
            calling.CALL_STATE,
            calling.call_state_event(
                call_id=call.call_id,
                node_id=call.node_id,
                call_state=call.state.value,
                from_number=call.from_number,
                to_number=call.to_number,
                direction=call.direction,
                end_reason=call.end_reason
                if call.state in (CallState.ENDING, CallState.ENDED)
                else None,
            ),
        )

    def _end_call(self, call: ServerCall, reason: str) -> None:
        """Terminate components, then ``ending`` and ``ended``; every waiter wakes up."""
        if call.ended:
            return
        call.end_reason = reason
        self._dispatch(self.engine.end_call(call.call_id))
        for task in call.loaders:
            task.cancel()
        call.move_to(CallState.ENDING)
        self._emit_state(call)
        call.move_to(CallState.ENDED)
        self._emit_state(call)
        call.components.clear()
        self.calls.pop(call.call_id, None)

    # -- connections ----------------------------------------------------------------------------
    async def _connection(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else "/"
        route = self._routes.get(path.split("?", 1)[0])
        if route is not None:
            await route(ws)
            return
        peer = Peer()
        session: ServerSession | None = None
        outbox: asyncio.Queue[str | None] = asyncio.Queue()

        def send(text: str) -> None:
            outbox.put_nowait(text)

        async def writer() -> None:
            while (text := await outbox.get()) is not None:
                try:
                    await ws.send(text)
                except Exception:
                    return

        writer_task = asyncio.create_task(writer())
        pinger_task = asyncio.create_task(self._pinger(peer, send)) if self.ping_interval else None
        try:
            async for frame in ws:
                incoming = peer.receive(frame)
                if isinstance(incoming, Malformed):
                    log.info("! malformed frame: %s", incoming.error)
                    if incoming.reply is not None:
                        send(incoming.reply)
                    continue
                if isinstance(incoming, ReplyReceived):
                    continue  # answers to our pings
                if not isinstance(incoming, RequestReceived):
                    continue  # a stray reply: nothing to do
                request = incoming.request
                try:
                    if request.method == blade.CONNECT:
                        if session is not None:
                            raise ProtocolError("already connected", field="method")
                        session = self._authenticate(request.params)
                        session.send = send
                        reply = peer.respond(
                            request,
                            blade.connect_result(
                                sessionid=session.sessionid,
                                nodeid=self.nodeid,
                                project=session.project,
                                signature=_signature(session.project),
                                restored=False,
                            ),
                        )
                    elif session is None:
                        raise AuthenticationError("blade.connect must come first")
                    else:
                        result = await self._request(session, request)
                        reply = peer.respond(request, result)
                except RelayError as exc:
                    reply = peer.respond_error(request, int(exc.code), str(exc))
                    if reply is not None:
                        send(reply)
                    if isinstance(exc, AuthenticationError):
                        log.info("! authentication refused: %s", exc)
                        break
                    continue
                except Exception:
                    log.exception("! %s failed", request.method)
                    reply = peer.respond_error(
                        request, ErrorCode.INTERNAL_ERROR, "internal server error; see server log"
                    )
                if reply is not None:
                    send(reply)
        except Exception:
            log.debug("! connection closed abruptly", exc_info=True)
        finally:
            if pinger_task is not None:
                pinger_task.cancel()
            if session is not None:
                self._detach(session)
            outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer_task, 5)
            await ws.close()

    async def _pinger(self, peer: Peer, send: Callable[[str], None]) -> None:
        loop = asyncio.get_running_loop()
        last: str | None = None
        assert self.ping_interval is not None
        while True:
            await asyncio.sleep(self.ping_interval)
            if last is not None:
                peer.forget(last)  # v2 SDKs never answer a server ping (§3.3)
            last, text = peer.request(blade.PING, {"timestamp": loop.time()})
            send(text)

    def _authenticate(self, params: dict[str, Any]) -> ServerSession:
        connect = blade.ConnectParams.parse(params)
        expected = self.credentials.get(connect.project)
        # Compare against something even for unknown projects, so timing says nothing.
        ok = (
            hmac.compare_digest((expected or "\0invalid").encode(), connect.token.encode())
            and expected is not None
        )
        if not ok:
            raise AuthenticationError("authentication failed: unknown project or wrong token")
        session = ServerSession(connect.project, connect.agent)
        self.sessions[session.sessionid] = session
        return session

    def _detach(self, session: ServerSession) -> None:
        session.send = None
        self.sessions.pop(session.sessionid, None)
        for call in list(self.calls.values()):
            if call.session is session:
                self._end_call(call, "hangup")

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

    @staticmethod
    def _check_control_id(call: ServerCall, control_id: str) -> None:
        if control_id in call.components:
            raise ProtocolError("is already in use on this call", field="control_id")

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
