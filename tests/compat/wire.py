"""A transparent WebSocket proxy that records every frame between a v2 app and the server.

The server keeps no frame log, so the conformance tests put this proxy in front of it: the app
connects to :attr:`WireRecorder.url`, every text frame is forwarded unchanged in both directions,
and each one is kept as a :class:`Frame` (direction, connection, time, parsed JSON). Tests wait
for frames with :meth:`WireRecorder.wait_for` and check the wire rules the unchanged
``signalwire`` 2.1.1 SDK depends on (protocol spec §0.1, §10 item 11) with
:meth:`WireRecorder.violations`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

C2S = "c2s"  # from the v2 app to the server
S2C = "s2c"
IN_FLIGHT_GRACE = 0.5  # a request younger than this may still be waiting for its answer


@dataclass(slots=True)
class Frame:
    seq: int
    conn: int
    direction: str
    t: float  # time.monotonic(), the same clock the apps report in
    raw: str
    msg: Any  # parsed JSON (None when the frame is not JSON)

    @property
    def method(self) -> str | None:
        return self.msg.get("method") if isinstance(self.msg, dict) else None

    @property
    def id(self) -> str | None:
        return self.msg.get("id") if isinstance(self.msg, dict) else None

    @property
    def params(self) -> dict[str, Any]:
        params = self.msg.get("params") if isinstance(self.msg, dict) else None
        return params if isinstance(params, dict) else {}

    @property
    def is_request(self) -> bool:
        return self.method is not None

    @property
    def is_response(self) -> bool:
        return isinstance(self.msg, dict) and self.method is None and "id" in self.msg

    @property
    def execute_method(self) -> str | None:
        """``params.method`` of a ``blade.execute`` (``calling.play_and_collect`` …)."""
        return self.params.get("method") if self.method == "blade.execute" else None

    @property
    def execute_params(self) -> dict[str, Any]:
        inner = self.params.get("params") if self.method == "blade.execute" else None
        return inner if isinstance(inner, dict) else {}

    @property
    def event_type(self) -> str | None:
        if self.method != "blade.broadcast":
            return None
        inner = self.params.get("params")
        return inner.get("event_type") if isinstance(inner, dict) else None

    @property
    def event(self) -> dict[str, Any]:
        """The event-specific params of a broadcast (§6: ``params.params.params``)."""
        inner = self.params.get("params")
        event = inner.get("params") if isinstance(inner, dict) else None
        return event if isinstance(event, dict) else {}

    @property
    def relay_code(self) -> str | None:
        """``result.result.code`` of a response (the RELAY status of a ``blade.execute``)."""
        result = self.msg.get("result") if isinstance(self.msg, dict) else None
        inner = result.get("result") if isinstance(result, dict) else None
        return inner.get("code") if isinstance(inner, dict) else None

    def __repr__(self) -> str:  # short enough for assertion messages
        text = self.raw if len(self.raw) <= 300 else self.raw[:300] + "…"
        return f"<#{self.seq} conn{self.conn} {self.direction} {text}>"


@dataclass(slots=True)
class ProxiedConnection:
    index: int
    opened_at: float
    closed_at: float | None = None
    upstream_error: str | None = None
    frames: list[Frame] = field(default_factory=list)


class WireRecorder:
    """``async with WireRecorder(server.url) as wire:`` then point the app at ``wire.url``."""

    def __init__(self, upstream_url: str) -> None:
        self.upstream_url = upstream_url
        self.frames: list[Frame] = []
        self.connections: list[ProxiedConnection] = []
        self._server: Server | None = None
        self._port = 0
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}"

    async def start(self) -> WireRecorder:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, compression=None, max_size=None, ping_interval=None
        )
        self._port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def __aenter__(self) -> WireRecorder:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- forwarding -----------------------------------------------------------------------------
    async def _handle(self, client: ServerConnection) -> None:
        conn = ProxiedConnection(len(self.connections), time.monotonic())
        self.connections.append(conn)
        self._notify()
        try:
            upstream = await connect(
                self.upstream_url,
                compression=None,
                max_size=None,
                ping_interval=None,
                open_timeout=5,
            )
        except Exception as exc:
            conn.upstream_error = repr(exc)
            conn.closed_at = time.monotonic()
            self._notify()
            await client.close(1011, "upstream unavailable")
            return
        try:
            await asyncio.gather(
                self._pump(conn, client, upstream, C2S), self._pump(conn, upstream, client, S2C)
            )
        finally:
            conn.closed_at = time.monotonic()
            self._notify()

    async def _pump(
        self,
        conn: ProxiedConnection,
        source: ServerConnection | ClientConnection,
        sink: ServerConnection | ClientConnection,
        direction: str,
    ) -> None:
        try:
            async for message in source:
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                self._record(conn, direction, text)
                await sink.send(message)
        except ConnectionClosed:
            pass
        finally:
            with contextlib.suppress(Exception):
                await sink.close()

    def _record(self, conn: ProxiedConnection, direction: str, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        frame = Frame(len(self.frames), conn.index, direction, time.monotonic(), text, msg)
        self.frames.append(frame)
        conn.frames.append(frame)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- queries --------------------------------------------------------------------------------
    async def wait_for(
        self, predicate: Callable[[Frame], bool], timeout: float = 10.0, *, since: int = 0
    ) -> Frame:
        """The first frame (from ``since`` on) that satisfies ``predicate``, waiting for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        checked = since
        while True:
            for frame in self.frames[checked:]:
                if predicate(frame):
                    return frame
            checked = max(checked, len(self.frames))
            changed = self._changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching frame on the wire within {timeout:g}s; last frames:\n"
                    + "\n".join(map(repr, self.frames[-12:]))
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def wait_count(
        self, predicate: Callable[[Frame], bool], count: int, timeout: float = 10.0
    ) -> list[Frame]:
        """Wait until ``count`` frames satisfy ``predicate``; returns them all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(found := [f for f in self.frames if predicate(f)]) < count:
            changed = self._changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"{len(found)} matching frames after {timeout:g}s, not {count}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        return found

    def response_to(self, request: Frame) -> Frame | None:
        for frame in self.frames[request.seq + 1 :]:
            if (
                frame.conn == request.conn
                and frame.direction != request.direction
                and frame.is_response
                and frame.id == request.id
            ):
                return frame
        return None

    async def wait_response(self, request: Frame, timeout: float = 10.0) -> Frame:
        return await self.wait_for(
            lambda f: (
                f.conn == request.conn
                and f.direction != request.direction
                and f.is_response
                and f.id == request.id
            ),
            timeout,
            since=request.seq + 1,
        )

    async def wait_execute(
        self, method: str, *, call_id: str | None = None, timeout: float = 10.0, since: int = 0
    ) -> tuple[Frame, Frame]:
        """The app's ``blade.execute`` of ``method`` (on ``call_id``) and the server's answer."""
        request = await self.wait_for(
            lambda f: (
                f.direction == C2S
                and f.execute_method == method
                and (call_id is None or f.execute_params.get("call_id") == call_id)
            ),
            timeout,
            since=since,
        )
        return request, await self.wait_response(request, timeout)

    async def wait_event(
        self, event_type: str, timeout: float = 10.0, *, since: int = 0, **match: Any
    ) -> Frame:
        """The first broadcast of ``event_type`` whose event params include ``match``."""
        return await self.wait_for(
            lambda f: (
                f.direction == S2C
                and f.event_type == event_type
                and all(f.event.get(k) == v for k, v in match.items())
            ),
            timeout,
            since=since,
        )

    async def wait_prompt_playing(self, call_id: str, timeout: float = 10.0) -> Frame:
        """The call's ``calling.play_and_collect`` request, once its media is playing."""
        request, answer = await self.wait_execute(
            "calling.play_and_collect", call_id=call_id, timeout=timeout
        )
        assert answer.relay_code == "200", answer
        control_id = request.execute_params["control_id"]
        await self.wait_event("calling.call.play", timeout, control_id=control_id, state="playing")
        return request

    def executes(self, method: str, *, call_id: str | None = None) -> list[Frame]:
        return [
            f
            for f in self.frames
            if f.direction == C2S
            and f.execute_method == method
            and (call_id is None or f.execute_params.get("call_id") == call_id)
        ]

    def events(
        self,
        event_type: str | None = None,
        *,
        call_id: str | None = None,
        control_id: str | None = None,
        conn: int | None = None,
    ) -> list[Frame]:
        return [
            f
            for f in self.frames
            if f.direction == S2C
            and f.method == "blade.broadcast"
            and (event_type is None or f.event_type == event_type)
            and (call_id is None or f.event.get("call_id") == call_id)
            and (control_id is None or f.event.get("control_id") == control_id)
            and (conn is None or f.conn == conn)
        ]

    def requests(self, method: str, *, direction: str = C2S) -> list[Frame]:
        return [f for f in self.frames if f.direction == direction and f.method == method]

    # -- the rules the v2 SDK depends on --------------------------------------------------------
    def violations(self) -> list[str]:
        """Every breach of the wire rules unchanged signalwire 2.1.1 needs (§0.1, §1.2, §10.11)."""
        problems: list[str] = []
        now = time.monotonic()
        for conn in self.connections:
            problems.extend(_check_connection(conn, now))
        return problems

    def assert_conformant(self) -> None:
        problems = self.violations()
        assert not problems, "wire rules broken:\n" + "\n".join(problems)


def _check_connection(conn: ProxiedConnection, now: float) -> Iterable[str]:
    frames = conn.frames
    end = conn.closed_at if conn.closed_at is not None else now
    requests: dict[str, Frame] = {}
    responses: dict[str, list[Frame]] = {}
    protocol: str | None = None
    collects: dict[str, list[Frame]] = {}
    ending_calls: dict[str, float] = {}
    ended_calls: set[str] = set()

    for f in frames:
        if f.msg is None or not isinstance(f.msg, dict):
            yield f"not a JSON object: {f!r}"
            continue
        if f.direction == C2S and f.is_request:
            if f.id in requests:
                yield f"the app reused request id {f.id}: {f!r}"
            requests[str(f.id)] = f
        elif f.direction == S2C and f.is_response:
            if f.id not in requests:
                yield f"a response to no pending request (crashes v2, §0.1.5): {f!r}"
            responses.setdefault(str(f.id), []).append(f)
            error = f.msg.get("error")
            if error is not None and not (
                isinstance(error, dict)
                and isinstance(error.get("code"), int)
                and isinstance(error.get("message"), str)
            ):
                yield f"an error without integer code and string message (§1.2): {f!r}"
            result = f.msg.get("result")
            inner = result.get("result") if isinstance(result, dict) else None
            if isinstance(inner, dict) and "code" in inner:
                if not isinstance(inner["code"], str):
                    yield f"a RELAY code that is not a string (§1.3): {f!r}"
                elif inner["code"] != "200" and not isinstance(inner.get("message"), str):
                    yield f"a failed RELAY result without message (§1.2): {f!r}"
            request = requests.get(str(f.id))
            if request is not None and request.execute_method == "setup" and inner:
                protocol = inner.get("protocol")
            if request is not None and request.method == "blade.ping" and "result" not in f.msg:
                yield f"blade.ping answered with an error: {f!r}"
        elif f.direction == S2C and f.method == "blade.broadcast":
            params = f.params
            if params.get("protocol") != protocol:
                yield f"a broadcast for another protocol (v2 drops it): {f!r}"
            if params.get("event") != "queuing.relay.events":
                yield f"a broadcast outside queuing.relay.events: {f!r}"
            yield from _check_event(f, collects, ending_calls, ended_calls)

    for rid, answered in responses.items():
        if len(answered) > 1:
            yield f"{len(answered)} responses to request {rid} (v2 crashes on the second)"
    for rid, request in requests.items():
        if rid not in responses and end - request.t > IN_FLIGHT_GRACE:
            yield f"no response to {request!r}"
    for call_id, at in ending_calls.items():
        if call_id not in ended_calls and end - at > IN_FLIGHT_GRACE:
            yield f"call {call_id} reached ending but never ended (v2 waits for ended, §0.1.8)"

    # A stop the server acknowledged is followed by a terminal collect (§5.2, §0.1.9).
    for rid, request in requests.items():
        if request.execute_method != "calling.play_and_collect.stop":
            continue
        answer = responses.get(rid, [None])[0]
        if answer is None or answer.relay_code != "200":
            continue
        control_id = request.execute_params.get("control_id")
        after = [c for c in collects.get(str(control_id), []) if c.seq > answer.seq]
        if not after and end - answer.t > IN_FLIGHT_GRACE:
            yield f"stop of {control_id} acknowledged but no calling.call.collect followed"


def _check_event(
    f: Frame,
    collects: dict[str, list[Frame]],
    ending_calls: dict[str, float],
    ended_calls: set[str],
) -> Iterable[str]:
    event = f.event
    if f.event_type == "calling.call.collect":
        control_id = str(event.get("control_id"))
        seen = collects.setdefault(control_id, [])
        if seen:
            yield f"a second collect event for {control_id} (v2 acts on the first only): {f!r}"
        seen.append(f)
        if event.get("final") is False or event.get("state") == "collecting":
            yield f"a non-final collect, which v2 takes as the end of the prompt (§8.2.1): {f!r}"
        result = event.get("result")
        if not isinstance(result, dict):
            yield f"a collect without result: {f!r}"
            return
        rparams = result.get("params")
        if result.get("type") == "digit" and not (
            isinstance(rparams, dict)
            and isinstance(rparams.get("digits"), str)
            and isinstance(rparams.get("terminator"), str)
        ):
            yield f"a digit result without digits and terminator (crashes v2, §0.1.7): {f!r}"
        if result.get("type") == "speech" and not (
            isinstance(rparams, dict)
            and isinstance(rparams.get("text"), str)
            and isinstance(rparams.get("confidence"), int | float)
        ):
            yield f"a speech result without text and confidence (crashes v2, §8.2.3): {f!r}"
    elif f.event_type == "calling.call.state":
        state = event.get("call_state")
        call_id = str(event.get("call_id"))
        if state == "ending":
            ending_calls[call_id] = f.t
        elif state == "ended":
            ended_calls.add(call_id)
    elif f.event_type == "calling.call.play" and event.get("state") not in (
        "playing",
        "finished",
        "error",
    ):
        yield f"a play state v2 does not know (§8.2.8): {f!r}"
