"""The page's WebSocket (``/phone/ws``) and its HTTP files: the browser phone's adapter.

Wire format: JSON text frames both ways, and binary frames of 16 kHz little-endian int16 audio
(page → server: the microphone; server → page: what the IVR plays, one 20 ms frame each).

Page → server (``type`` names the message):

- ``auth`` ``{project, token}``: first, within :data:`AUTH_TIMEOUT` seconds; failures are
  throttled like RELAY logins and close the socket.
- ``dial`` ``{context, from?, to?}``: place one inbound call into a context of the project.
- ``key`` ``{key}``: one of ``0-9 * # A-D``, sent as a DTMF tone in the call's audio.
- ``hangup``; ``watch`` ``{call_id}``: follow one call's timeline (the page's own call is
  followed as soon as it is placed).

Server → page: ``ready`` ``{project, calls}`` (the project's call list); ``call`` ``{call}`` (a
call appeared or changed state); ``placed`` ``{call_id}``; ``timeline`` ``{call, events}``
then ``event`` ``{call_id, event}`` for the followed call (each event is
:meth:`CallEvent.to_dict` plus ``text``, its transcript line or null); ``error`` ``{kind,
message}``.

A page sees only its own project's calls: another project's call id is "not found", on the
socket and for downloads alike.
"""

from __future__ import annotations

__all__ = [
    "AUTH_TIMEOUT",
    "DIAL_TIMEOUT",
    "MAX_AUDIO_FRAMES",
    "MAX_MESSAGES",
    "MAX_MIC_BYTES",
    "Phone",
    "Throttle",
]

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request

from ..calls import CallEvent, CallOffered, CallService, CallStateChanged, describe
from ..errors import RelayTimeoutError
from .directory import CallDirectory, Entry
from .line import PhoneLine
from .web import DOWNLOADS, PageFiles, Reply, download_target

log = logging.getLogger("relaykit.phone")

AUTH_TIMEOUT = 10.0  # seconds a new page socket has to log in (the page logs in on open)
DIAL_TIMEOUT = 5.0  # seconds to wait for an IVR of the context to take the call
MAX_AUDIO_FRAMES = 25  # IVR audio frames (0.5 s) waiting for a slow page; beyond, dropped
MAX_MESSAGES = 5000  # JSON messages waiting for a page that does not read; beyond, closed
MAX_MIC_BYTES = 6400  # largest microphone frame (0.2 s)
MAX_FIELD = 128  # longest context or number


class Throttle(Protocol):
    """Slows down failed logins per remote address (the server's, shared with RELAY)."""

    def failure(self, address: str, now: float) -> float:
        """Record a failure; seconds to wait before refusing it."""

    def success(self, address: str) -> None: ...


class Phone:
    """The browser phone of a server: the page's files, downloads and WebSocket sessions.

    Args:
        service: the call interface.
        check: ``check(project, token)`` is True for valid credentials.
        throttle: slows down failed logins.
        keep_ended: ended calls kept per project for their recordings and timelines.
        dial_timeout: seconds a call from a page waits for an IVR of its context.
    """

    def __init__(
        self,
        service: CallService,
        check: Callable[[str, str], bool],
        throttle: Throttle,
        *,
        keep_ended: int = 20,
        dial_timeout: float = DIAL_TIMEOUT,
    ) -> None:
        self.service = service
        self.dial_timeout = dial_timeout
        self.check = check
        self.throttle = throttle
        self.directory = CallDirectory(service, keep_ended=keep_ended)
        self.pages = PageFiles()

    def close(self) -> None:
        """The server stops: forget the calls (the sockets are closed by the server)."""
        self.directory.close()

    # -- HTTP -------------------------------------------------------------------------------------
    async def http(self, request: Request) -> Reply:
        """Answer a GET below ``/phone``: a page file, or a file of an ended call."""
        path = request.path.split("?", 1)[0]
        page = self.pages.reply(path)
        if page is not None:
            return page
        target = download_target(path)
        if target is None:
            return Reply.text(404, "not found")
        project = await self._authorize(request.headers.get("Authorization", ""))
        if project is None:
            return Reply.text(401, "log in first", **{"WWW-Authenticate": "Bearer"})
        call_id, name = target
        entry = self.directory.find(project, call_id)
        if entry is None:
            return Reply.text(404, "call not found")
        if not entry.call.ended:
            return Reply.text(409, "the call is still up; its files are ready when it ends")
        if not self.directory.recorded and name == "recording.wav":
            return Reply.text(404, "this server does not record calls")
        body = (
            self.directory.wav(entry)
            if name == "recording.wav"
            else await self.directory.timeline_png(entry)
        )
        disposition = f'attachment; filename="call-{call_id[:8]}-{name}"'
        return Reply(200, body, DOWNLOADS[name], {"Content-Disposition": disposition})

    async def _authorize(self, header: str) -> str | None:
        """The project of ``Authorization: Bearer base64(project:token)``, or None."""
        scheme, _, value = header.partition(" ")
        project, token = "", ""
        if scheme.lower() == "bearer":
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                project, _, token = (
                    base64.b64decode(value.strip(), validate=True).decode().partition(":")
                )
        if project and self.check(project, token):
            return project
        # Downloads carry no remote address here: failures share one throttle record.
        await asyncio.sleep(self.throttle.failure("phone-downloads", _now()))
        return None

    # -- WebSocket --------------------------------------------------------------------------------
    async def serve(self, ws: ServerConnection) -> None:
        """Run one page's socket until it closes."""
        session = _PageSession(self, ws)
        try:
            await session.run()
        finally:
            session.close()


def _now() -> float:
    return asyncio.get_running_loop().time()


class _Sender:
    """Writes a page's frames in order from one task; never blocks the caller.

    Audio beyond :data:`MAX_AUDIO_FRAMES` waiting is dropped (a late frame is worth nothing);
    a page that lets :data:`MAX_MESSAGES` messages pile up is disconnected.
    """

    def __init__(self, ws: ServerConnection) -> None:
        self._ws = ws
        self._queue: deque[str | bytes] = deque()
        self._audio = 0
        self._ready = asyncio.Event()
        self.dropped_audio = 0
        self.closed = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    def text(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        if len(self._queue) - self._audio >= MAX_MESSAGES:
            log.warning("! phone page is not reading; closing")
            self.close()
            asyncio.get_running_loop().create_task(self._ws.close(1008, "page too slow"))
            return
        self._queue.append(json.dumps(message, ensure_ascii=False))
        self._ready.set()

    def audio(self, frame: bytes) -> None:
        if self.closed:
            return
        if self._audio >= MAX_AUDIO_FRAMES:
            self.dropped_audio += 1
            return
        self._audio += 1
        self._queue.append(frame)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._task.cancel()

    async def _run(self) -> None:
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                while self._queue:
                    item = self._queue.popleft()
                    if isinstance(item, bytes):
                        self._audio -= 1
                    await self._ws.send(item)
        except ConnectionClosed:
            self.closed = True


class _Refused(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _field(message: dict[str, Any], name: str, default: str | None = None) -> str:
    value = message.get(name, default)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_FIELD:
        raise _Refused("invalid", f"{name}: a non-empty string of at most {MAX_FIELD} characters")
    return value.strip()


class _PageSession:
    """One page's socket: login, at most one call at a time, its project's calls."""

    def __init__(self, phone: Phone, ws: ServerConnection) -> None:
        self.phone = phone
        self.ws = ws
        self.project: str | None = None
        self.line: PhoneLine | None = None
        self.watched: str | None = None
        self._dialing: asyncio.Task[None] | None = None
        self._stop_following: Callable[[], None] | None = None
        self._address = str(ws.remote_address[0]) if ws.remote_address else "unknown"
        self.sender = _Sender(ws)

    async def run(self) -> None:
        try:
            if not self._same_origin():
                await self.ws.close(1008, "the phone's socket is for its own page only")
                return
            if not await self._log_in():
                return
            async for frame in self.ws:
                if isinstance(frame, bytes):
                    self._microphone(frame)
                    continue
                try:
                    message = json.loads(frame)
                    if not isinstance(message, dict):
                        raise _Refused("invalid", "a message is a JSON object")
                    self._handle(message)
                except _Refused as exc:
                    self._error(exc.kind, str(exc))
                except json.JSONDecodeError:
                    self._error("invalid", "not JSON")
        except ConnectionClosed:
            pass

    def close(self) -> None:
        """The socket is gone: stop following, hang up the page's call."""
        if self._stop_following is not None:
            self._stop_following()
            self._stop_following = None
        if self._dialing is not None:
            self._dialing.cancel()
        if self.line is not None:
            self.line.hang_up()
        self.sender.close()

    # -- login ------------------------------------------------------------------------------------
    def _same_origin(self) -> bool:
        """Browsers send Origin: only the phone's own page may open its socket."""
        request = self.ws.request
        if request is None:
            return False
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser
        host = request.headers.get("Host", "")
        return origin in (f"http://{host}", f"https://{host}")

    async def _log_in(self) -> bool:
        try:
            frame = await asyncio.wait_for(self.ws.recv(), AUTH_TIMEOUT)
            message = json.loads(frame)
            if not isinstance(message, dict) or message.get("type") != "auth":
                raise ValueError
        except (TimeoutError, ValueError):
            await self.ws.close(1008, "log in first")
            return False
        project, token = message.get("project"), message.get("token")
        ok = isinstance(project, str) and isinstance(token, str)
        ok = self.phone.check(str(project), str(token)) and ok
        throttle = self.phone.throttle
        if not ok:
            await asyncio.sleep(throttle.failure(self._address, _now()))
            log.info("! phone login refused")
            refusal = {"type": "error", "kind": "auth", "message": "unknown project or wrong token"}
            await self.ws.send(json.dumps(refusal))
            await self.ws.close(1008, "unknown project or wrong token")
            return False
        throttle.success(self._address)
        self.project = str(project)
        directory = self.phone.directory
        self._stop_following = directory.follow(self.project, self._on_event)
        calls = [directory.summary(e) for e in directory.calls(self.project)]
        self.sender.text({"type": "ready", "project": self.project, "calls": calls})
        return True

    # -- requests ---------------------------------------------------------------------------------
    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "dial":
            self._dial(message)
        elif kind == "key":
            key = message.get("key")
            if self.line is None:
                raise _Refused("state", "no call: dial first")
            try:
                self.line.press(key if isinstance(key, str) else "")
            except ValueError as exc:
                raise _Refused("invalid", str(exc)) from None
        elif kind == "hangup":
            if self._dialing is not None:
                self._dialing.cancel()
            if self.line is not None:
                self.line.hang_up()
        elif kind == "watch":
            self._watch(_field(message, "call_id"))
        else:
            raise _Refused("invalid", f"unknown message type {kind!r}")

    def _dial(self, message: dict[str, Any]) -> None:
        if self._dialing is not None or (self.line is not None and not self._line_over()):
            raise _Refused("state", "this phone is already in a call: hang up first")
        context = _field(message, "context")
        from_number = _field(message, "from", "+15551230000")
        to_number = _field(message, "to", "+15559870000")
        line = PhoneLine(self.phone.service, self.sender.audio)
        self.line = line
        self._dialing = asyncio.get_running_loop().create_task(
            self._place(line, context, from_number, to_number)
        )

    def _line_over(self) -> bool:
        call = None if self.line is None else self.line.call
        return call is not None and call.ended

    async def _place(self, line: PhoneLine, context: str, from_number: str, to: str) -> None:
        assert self.project is not None
        try:
            call = await self.phone.service.offer(
                project=self.project,
                context=context,
                from_number=from_number,
                to_number=to,
                timeout=self.phone.dial_timeout,
                leg=line,
                via="phone",
            )
        except RelayTimeoutError:
            self.line = None
            self._error(
                "no_ivr",
                f"no IVR takes calls to context {context!r} of project {self.project!r} "
                f"(waited {self.phone.dial_timeout:g} s): start one, or check the context",
            )
            return
        except asyncio.CancelledError:
            self.line = None
            raise
        finally:
            self._dialing = None
        line.call = call
        self.sender.text({"type": "placed", "call_id": call.call_id})
        self._watch(call.call_id)

    def _watch(self, call_id: str) -> None:
        assert self.project is not None
        entry = self.phone.directory.find(self.project, call_id)
        if entry is None:
            raise _Refused("not_found", "call not found")
        self.watched = call_id
        events = [_event_json(event) for event in entry.call.log]
        self.sender.text(
            {"type": "timeline", "call": self.phone.directory.summary(entry), "events": events}
        )

    def _microphone(self, frame: bytes) -> None:
        if len(frame) % 2 or len(frame) > MAX_MIC_BYTES:
            self._error("invalid", f"audio: 16-bit samples, at most {MAX_MIC_BYTES} bytes a frame")
        elif self.line is not None:
            self.line.microphone(frame)

    # -- to the page ------------------------------------------------------------------------------
    def _on_event(self, entry: Entry, event: CallEvent) -> None:
        if isinstance(event, CallOffered | CallStateChanged):
            self.sender.text({"type": "call", "call": CallDirectory.summary(entry)})
        if entry.call.call_id == self.watched:
            self.sender.text(
                {"type": "event", "call_id": entry.call.call_id, "event": _event_json(event)}
            )

    def _error(self, kind: str, message: str) -> None:
        self.sender.text({"type": "error", "kind": kind, "message": message})


def _event_json(event: CallEvent) -> dict[str, Any]:
    return {**event.to_dict(), "text": describe(event)}
