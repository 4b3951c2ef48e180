"""The virtual caller for other processes: a ``/caller`` WebSocket beside RELAY, and its client.

Every :class:`~relaykit.server.app.RelayServer` answers ``ws://HOST:PORT/caller``. A client
authenticates with a project and token (the RELAY credentials, checked in constant time), then
places **one** inbound call into a context *of that project*, drives it with the virtual
caller's verbs and receives the call's transcript live. Closing the socket hangs up.

Wire format: JSON text frames. Requests ``{"id": 1, "method": "press", "params": {...}}`` are
answered, in order, by ``{"id": 1, "result": ...}`` or ``{"id": 1, "error": {"kind": ...,
"message": ...}}``; the server also sends ``{"method": "transcript", "params": {"at", "actor",
"text"}}`` notifications. The first request must be ``auth`` (``project``, ``token``), within
:data:`AUTH_TIMEOUT` seconds. Methods: ``dial`` (``context``, ``from``, ``to``, ``timeout``),
``wait_answered``, ``press``, ``say``, ``silence``, ``audio`` (base64 16 kHz int16 PCM;
``label`` names it in the transcript; ``wait: false`` queues it and answers at once),
``expect_prompt``, ``expect_hangup``, ``wait_listening``, ``hangup``, ``heard``, ``log`` (the
event log) and ``recording`` (the stereo WAV, base64). Error kinds: ``auth``, ``invalid``,
``timeout``, ``expectation``, ``ended``, ``state``, ``internal``.

:class:`RemoteCaller` is the client (``relaykit call`` uses it); its methods mirror
:class:`~relaykit.testing.caller.VirtualCaller`'s.
"""

from __future__ import annotations

__all__ = [
    "AUDIO_CHUNK_SECONDS",
    "AUTH_TIMEOUT",
    "MAX_AUDIO_SECONDS",
    "CallerEndpoint",
    "RemoteCaller",
]

import asyncio
import base64
import contextlib
import io
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection

from ..errors import (
    AuthenticationError,
    CallEndedError,
    CommandError,
    RelayConnectionError,
    RelayError,
    RelayTimeoutError,
)
from ..media.frames import SAMPLE_RATE
from ..server.calls import TranscriptEntry
from .expect import ExpectationError

if TYPE_CHECKING:
    from ..server.app import RelayServer
    from .caller import VirtualCaller

log = logging.getLogger("relaykit.server")

AUTH_TIMEOUT = 10.0  # seconds a new /caller socket has to authenticate
MAX_AUDIO_SECONDS = 300.0  # longest silence or audio one request may send
MAX_WAIT_SECONDS = 600.0  # longest timeout a request may ask for
AUDIO_CHUNK_SECONDS = 8.0  # RemoteCaller sends audio in pieces this long (frames stay < 1 MiB)


class _Refused(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _number(params: dict[str, Any], name: str, default: float, maximum: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= maximum:
        raise _Refused("invalid", f"params.{name}: must be a number from 0 to {maximum:g}")
    return float(value)


def _text(params: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise _Refused("invalid", f"params.{name}: must be a non-empty string")
    return value


class CallerEndpoint:
    """Serves ``/caller`` connections for ``server`` (registered by the server itself)."""

    def __init__(self, server: RelayServer) -> None:
        self.server = server

    async def __call__(self, ws: ServerConnection) -> None:
        session = _CallerSession(self.server, ws)
        try:
            await session.run()
        finally:
            session.close()


class _CallerSession:
    """One ``/caller`` socket: authentication, at most one call, requests in order."""

    def __init__(self, server: RelayServer, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.project: str | None = None
        self.caller: VirtualCaller | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._address = str(ws.remote_address[0]) if ws.remote_address else "unknown"

    def send(self, message: dict[str, Any]) -> None:
        self._outbox.put_nowait(json.dumps(message, ensure_ascii=False))

    async def _writer(self) -> None:
        while (text := await self._outbox.get()) is not None:
            try:
                await self.ws.send(text)
            except Exception:
                return

    async def run(self) -> None:
        writer = asyncio.create_task(self._writer())
        try:
            if not await self._authenticate():
                return
            async for frame in self.ws:
                request_id: Any = None
                try:
                    request = json.loads(frame)
                    if not isinstance(request, dict) or not isinstance(
                        request.get("params", {}), dict
                    ):
                        raise _Refused("invalid", "a request is an object with object params")
                    request_id = request.get("id")
                    result = await self._handle(
                        str(request.get("method")), request.get("params", {})
                    )
                except _Refused as exc:
                    self.send({"id": request_id, "error": {"kind": exc.kind, "message": str(exc)}})
                except json.JSONDecodeError:
                    self.send({"id": None, "error": {"kind": "invalid", "message": "not JSON"}})
                except Exception:
                    log.exception("! /caller request failed")
                    self.send(
                        {
                            "id": request_id,
                            "error": {"kind": "internal", "message": "see the server log"},
                        }
                    )
                else:
                    self.send({"id": request_id, "result": result})
        except Exception:
            log.debug("! /caller connection closed abruptly", exc_info=True)
        finally:
            self._outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 5)
            await self.ws.close()

    def close(self) -> None:
        """The socket is gone: stop the transcript feed and hang up a call still up."""
        for task in self._tasks:
            task.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.caller is not None and not self.caller.ended:
            self.server.hangup_from_caller(self.caller._call)

    async def _authenticate(self) -> bool:
        try:
            frame = await asyncio.wait_for(self.ws.recv(), AUTH_TIMEOUT)
            request = json.loads(frame)
            params = request.get("params") if isinstance(request, dict) else None
            if request.get("method") != "auth" or not isinstance(params, dict):
                raise ValueError
        except (TimeoutError, ValueError, AttributeError):
            with contextlib.suppress(Exception):
                await self.ws.close(1008, "authenticate first")
            return False
        project, token = params.get("project"), params.get("token")
        ok = isinstance(project, str) and isinstance(token, str)
        ok = self.server.credentials.check(str(project), str(token)) and ok
        throttle = getattr(self.server, "_throttle", None)
        if not ok:
            if throttle is not None:
                delay = throttle.failure(self._address, asyncio.get_running_loop().time())
                await asyncio.sleep(delay)
            log.info("! /caller authentication refused")
            self.send(
                {
                    "id": request.get("id"),
                    "error": {"kind": "auth", "message": "unknown project or wrong token"},
                }
            )
            return False
        if throttle is not None:
            throttle.success(self._address)
        self.project = str(project)
        self.send({"id": request.get("id"), "result": {"project": self.project}})
        return True

    def _call(self) -> VirtualCaller:
        if self.caller is None:
            raise _Refused("state", "dial first")
        return self.caller

    async def _handle(self, method: str, params: dict[str, Any]) -> Any:
        try:
            return await self._dispatch(method, params)
        except ExpectationError as exc:
            raise _Refused("expectation", str(exc)) from exc
        except RelayTimeoutError as exc:
            raise _Refused("timeout", str(exc)) from exc
        except CallEndedError as exc:
            raise _Refused("ended", str(exc)) from exc
        except (ValueError, TypeError) as exc:
            raise _Refused("invalid", str(exc)) from exc

    async def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        if method == "dial":
            if self.caller is not None:
                raise _Refused("state", "this connection has already placed its call")
            context = _text(params, "context")
            assert context is not None and self.project is not None
            extra = {
                key: value
                for key, name in (("from_number", "from"), ("to_number", "to"))
                if (value := _text(params, name, required=False)) is not None
            }
            timeout = _number(params, "timeout", 5.0, MAX_WAIT_SECONDS)
            # The authenticated project only: another project's contexts are out of reach.
            self.caller = await self.server.dial_in(
                context, project=self.project, timeout=timeout, **extra
            )
            self._unsubscribe = self.caller.on_transcript(
                lambda e: self.send(
                    {
                        "method": "transcript",
                        "params": {"at": e.at, "actor": e.actor, "text": e.text},
                    }
                )
            )
            return {"call_id": self.caller.call_id}
        caller = self._call()
        if method == "wait_answered":
            await caller.wait_answered(_number(params, "timeout", 5.0, MAX_WAIT_SECONDS))
            return {"state": caller.state}
        if method == "press":
            digits = _text(params, "digits")
            assert digits is not None
            if not re.fullmatch(r"[0-9*#A-Da-d]{1,128}", digits):
                raise _Refused("invalid", "params.digits: 1 to 128 of 0-9 * # A-D")
            await caller.press(digits)
            return {}
        if method == "say":
            text = _text(params, "text")
            assert text is not None
            if len(text) > 1000:
                raise _Refused("invalid", "params.text: at most 1000 characters")
            await caller.say(
                text,
                language=_text(params, "language", required=False),
                gender=_text(params, "gender", required=False),
            )
            return {}
        if method == "silence":
            await caller.silence(_number(params, "seconds", 1.0, MAX_AUDIO_SECONDS))
            return {}
        if method == "audio":
            pcm = _text(params, "pcm")
            assert pcm is not None
            try:
                samples = np.frombuffer(base64.b64decode(pcm, validate=True), dtype="<i2")
            except ValueError as exc:
                raise _Refused("invalid", "params.pcm: base64 of 16-bit PCM") from exc
            if len(samples) > MAX_AUDIO_SECONDS * SAMPLE_RATE:
                raise _Refused("invalid", f"params.pcm: at most {MAX_AUDIO_SECONDS:g} s")
            label = _text(params, "label", required=False)
            sending = caller.send_audio(samples.astype(np.int16), label=label)
            if params.get("wait", True):
                await sending
            else:  # queued behind earlier audio; the next chunk follows without a gap
                task = asyncio.ensure_future(sending)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return {}
        if method == "expect_prompt":
            heard = await caller.expect_prompt(
                _text(params, "contains", required=False),
                matches=_text(params, "matches", required=False),
                url=_text(params, "url", required=False),
                timeout=_number(params, "timeout", 5.0, MAX_WAIT_SECONDS),
                recognize=bool(params.get("recognize", True)),
            )
            return _heard_json(heard)
        if method == "expect_hangup":
            reason = await caller.expect_hangup(_number(params, "timeout", 10.0, MAX_WAIT_SECONDS))
            return {"end_reason": reason}
        if method == "wait_listening":
            await caller.wait_listening(_number(params, "timeout", 5.0, MAX_WAIT_SECONDS))
            return {}
        if method == "hangup":
            await caller.hangup()
            return {}
        if method == "heard":
            return [_heard_json(h) for h in caller.heard]
        if method == "log":
            return caller.event_log()
        if method == "recording":
            buffer = io.BytesIO()
            _write_wav(buffer, caller.recording())
            return {"wav": base64.b64encode(buffer.getvalue()).decode()}
        raise _Refused("invalid", f"unknown method {method!r}")


def _heard_json(heard: Any) -> dict[str, Any]:
    return {
        "kind": heard.kind,
        "label": heard.label,
        "start": heard.start,
        "end": heard.end,
        "volume": heard.volume,
    }


def _write_wav(target: Any, samples: np.ndarray) -> None:
    import wave

    with wave.open(target, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(np.asarray(samples, dtype="<i2").tobytes())


_ERRORS: dict[str, Callable[[str], RelayError]] = {
    "auth": AuthenticationError,
    "timeout": RelayTimeoutError,
    "expectation": ExpectationError,
    "ended": CallEndedError,
}


class RemoteCaller:
    """A virtual caller on a server in another process, through its ``/caller`` WebSocket.

    Args:
        url: the server's RELAY URL (``ws://127.0.0.1:8080``); ``/caller`` is added.
        project, token: credentials of the project whose context will be called.
        on_transcript: called with each :class:`TranscriptEntry` as the call goes on.
        open_timeout: seconds to connect and authenticate.

    Use as ``async with RemoteCaller(url, project, token) as caller: await caller.dial(...)``.
    Methods raise what :class:`VirtualCaller`'s raise (:class:`ExpectationError`,
    :class:`RelayTimeoutError`, :class:`CallEndedError`), :class:`AuthenticationError` for bad
    credentials, :class:`RelayConnectionError` when the connection is lost.
    """

    def __init__(
        self,
        url: str,
        project: str,
        token: str,
        *,
        on_transcript: Callable[[TranscriptEntry], None] | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/") + "/caller"
        self.project = project
        self._token = token
        self.on_transcript = on_transcript
        self.open_timeout = open_timeout
        self.transcript: list[TranscriptEntry] = []
        self.call_id: str | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._closed_error: RelayConnectionError | None = None

    async def __aenter__(self) -> RemoteCaller:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the socket and authenticate."""
        try:
            self._ws = await connect(
                self.url, open_timeout=self.open_timeout, max_size=None, compression=None
            )
        except (OSError, TimeoutError, Exception) as exc:
            raise RelayConnectionError(f"cannot connect to {self.url}: {exc}") from exc
        self._reader = asyncio.create_task(self._read())
        try:
            await asyncio.wait_for(
                self._request("auth", {"project": self.project, "token": self._token}),
                self.open_timeout,
            )
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the socket (which hangs up a call still up). Idempotent."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for frame in self._ws:
                message = json.loads(frame)
                if message.get("method") == "transcript":
                    p = message["params"]
                    entry = TranscriptEntry(float(p["at"]), str(p["actor"]), str(p["text"]))
                    self.transcript.append(entry)
                    if self.on_transcript is not None:
                        self.on_transcript(entry)
                    continue
                future = self._pending.pop(message.get("id"), None)
                if future is None or future.done():
                    continue
                if "error" in message:
                    error = message["error"]
                    kind, text = str(error.get("kind")), str(error.get("message"))
                    future.set_exception(_ERRORS.get(kind, CommandError)(text))
                else:
                    future.set_result(message.get("result"))
        except Exception as exc:
            log.debug("! /caller client read failed: %s", exc)
        finally:
            self._closed_error = RelayConnectionError("the /caller connection is closed")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(self._closed_error)
            self._pending.clear()

    async def _request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        if self._ws is None or self._closed_error is not None:
            raise self._closed_error or RelayConnectionError("not connected")
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        message = {"id": self._next_id, "method": method, "params": params or {}}
        try:
            await self._ws.send(json.dumps(message))
        except Exception as exc:
            self._pending.pop(self._next_id, None)
            raise RelayConnectionError(f"the /caller connection is closed: {exc}") from exc
        return await future

    # -- the caller's verbs ---------------------------------------------------------------------
    async def dial(
        self,
        context: str,
        from_number: str | None = None,
        to_number: str | None = None,
        *,
        timeout: float = 5.0,
    ) -> str:
        """Place the call into ``context`` of this project; returns the call id."""
        params: dict[str, Any] = {"context": context, "timeout": timeout}
        if from_number is not None:
            params["from"] = from_number
        if to_number is not None:
            params["to"] = to_number
        result = await self._request("dial", params)
        self.call_id = str(result["call_id"])
        return self.call_id

    async def wait_answered(self, timeout: float = 5.0) -> None:
        await self._request("wait_answered", {"timeout": timeout})

    async def press(self, digits: str) -> None:
        await self._request("press", {"digits": digits})

    async def say(
        self, text: str, *, language: str | None = None, gender: str | None = None
    ) -> None:
        params = {"text": text}
        params.update({k: v for k, v in (("language", language), ("gender", gender)) if v})
        await self._request("say", params)

    async def silence(self, seconds: float) -> None:
        await self._request("silence", {"seconds": seconds})

    async def send_audio(self, samples: np.ndarray, *, label: str | None = None) -> None:
        """Send 16 kHz int16 mono audio; returns once it has been played into the call.

        Long audio goes in chunks of :data:`AUDIO_CHUNK_SECONDS`, queued back to back.
        """
        pcm = np.asarray(samples, dtype="<i2").reshape(-1)
        step = round(AUDIO_CHUNK_SECONDS * SAMPLE_RATE)
        starts = range(0, max(len(pcm), 1), step)
        for n, start in enumerate(starts):
            chunk = pcm[start : start + step].tobytes()
            params: dict[str, Any] = {"pcm": base64.b64encode(chunk).decode()}
            if n == 0 and label is not None:
                params["label"] = label
            if n < len(starts) - 1:
                params["wait"] = False
            await self._request("audio", params)

    async def play_wav(self, path: str | Path) -> None:
        """Send a local recording (any format soundfile reads, any rate)."""
        from ..media.sources import load_audio

        samples = await asyncio.to_thread(load_audio, str(path))
        await self.send_audio(samples, label=Path(path).name)

    async def expect_prompt(
        self,
        contains: str | None = None,
        *,
        matches: str | None = None,
        url: str | None = None,
        timeout: float = 5.0,
        recognize: bool = True,
    ) -> dict[str, Any]:
        """As :meth:`VirtualCaller.expect_prompt`; returns the matching item as a dict."""
        params: dict[str, Any] = {"timeout": timeout, "recognize": recognize}
        params.update(
            {k: v for k, v in (("contains", contains), ("matches", matches), ("url", url)) if v}
        )
        result: dict[str, Any] = await self._request("expect_prompt", params)
        return result

    async def expect_hangup(self, timeout: float = 10.0) -> str:
        result = await self._request("expect_hangup", {"timeout": timeout})
        return str(result["end_reason"])

    async def wait_listening(self, timeout: float = 5.0) -> None:
        await self._request("wait_listening", {"timeout": timeout})

    async def hangup(self) -> None:
        await self._request("hangup")

    async def heard(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._request("heard")
        return result

    async def event_log(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("log")
        return result

    async def save_wav(self, path: str | Path) -> Path:
        """Fetch the recording and the event log; write the WAV and the JSON beside it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        recording = await self._request("recording")
        path.write_bytes(base64.b64decode(recording["wav"]))
        log_data = await self.event_log()
        log_data["wav"] = path.name
        path.with_suffix(".json").write_text(json.dumps(log_data, indent=1, ensure_ascii=False))
        return path
