"""The ``/caller`` WebSocket: the virtual caller for other processes (served beside RELAY).

A client authenticates with a project and token (the RELAY credentials, logged in by the same
:class:`~relaykit.server.auth.Logins` as RELAY clients: throttled, capped while not logged in,
within the login timeout), then places **one** inbound call into a context
*of that project*, drives it with the virtual caller's verbs and receives the call's transcript
live. Closing the socket hangs up. The wire format is described in
:mod:`relaykit.testing.remote`, whose :class:`~relaykit.testing.remote.RemoteCaller` is the
client.
"""

from __future__ import annotations

__all__ = ["MAX_AUDIO_SECONDS", "MAX_WAIT_SECONDS", "CallerEndpoint"]

import asyncio
import base64
import contextlib
import io
import json
import logging
import re
import wave
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection

from ..errors import AuthenticationError, CallEndedError, RelayTimeoutError
from ..media.frames import SAMPLE_RATE
from ..protocol.jsonrpc import bounded, valid_id
from ..testing.caller import Heard, VirtualCaller
from ..testing.expect import ExpectationError
from .auth import Logins, TryLater, Visitor
from .outbox import Outbox, websocket_writer

log = logging.getLogger("relaykit.server")

MAX_AUDIO_SECONDS = 300.0  # longest silence or audio one request may send
MAX_WAIT_SECONDS = 600.0  # longest timeout a request may ask for

DialIn = Callable[..., Awaitable[VirtualCaller]]


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
    """Serves ``/caller`` connections (registered by the server's wiring).

    Args:
        logins: the login policy (shared with RELAY logins).
        dial_in: places the call (``RelayServer.dial_in``).
        max_outbox, max_outbox_bytes: frames, and bytes, queued to a client that does not read
            before it is disconnected (one reply larger than the byte cap, a long recording,
            still goes out when nothing else waits).
    """

    def __init__(
        self,
        logins: Logins,
        dial_in: DialIn,
        *,
        max_outbox: int = 10_000,
        max_outbox_bytes: int = 16 << 20,
    ) -> None:
        self.logins = logins
        self.dial_in = dial_in
        self.max_outbox = max_outbox
        self.max_outbox_bytes = max_outbox_bytes

    async def __call__(self, ws: ServerConnection) -> None:
        session = _CallerSession(self, ws)
        try:
            await session.run()
        finally:
            session.close()


class _CallerSession:
    """One ``/caller`` socket: authentication, at most one call, requests in order."""

    def __init__(self, endpoint: CallerEndpoint, ws: ServerConnection) -> None:
        self.endpoint = endpoint
        self.ws = ws
        self.project: str | None = None
        self.caller: VirtualCaller | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._address = str(ws.remote_address[0]) if ws.remote_address else "unknown"
        self._outbox = Outbox(
            websocket_writer(ws),
            max_frames=endpoint.max_outbox,
            max_bytes=endpoint.max_outbox_bytes,
            on_overflow=self._too_slow,
        )
        self._closing: asyncio.Task[None] | None = None

    def send(self, message: dict[str, Any]) -> None:
        self._outbox.send(json.dumps(message, ensure_ascii=False))

    def _too_slow(self) -> None:
        log.warning("! /caller client %s is not reading; closing", self._address)
        self._close_soon(1008, "client too slow: outbox full")

    def _close_soon(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self.ws.close(code, reason))

    async def run(self) -> None:
        try:
            if not await self._authenticate():
                return
            async for frame in self.ws:
                if self._closing is not None:
                    break
                request_id: Any = None
                try:
                    request = json.loads(frame)
                    if not isinstance(request, dict) or not isinstance(
                        request.get("params", {}), dict
                    ):
                        raise _Refused("invalid", "a request is an object with object params")
                    # Echo a request id only if it is a short string or an integer.
                    request_id = request.get("id") if valid_id(request.get("id")) else None
                    result = await self._handle(
                        str(request.get("method")), request.get("params", {})
                    )
                except _Refused as exc:
                    message = bounded(str(exc))
                    self.send({"id": request_id, "error": {"kind": exc.kind, "message": message}})
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
            await self._outbox.drain(5)
            if self._closing is not None:
                with contextlib.suppress(Exception):
                    await self._closing
            else:
                await self.ws.close()

    def close(self) -> None:
        """The socket is gone: stop the transcript feed and hang up a call still up."""
        for task in self._tasks:
            task.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.caller is not None and not self.caller.ended:
            task = asyncio.get_running_loop().create_task(self.caller.hangup())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _authenticate(self) -> bool:
        logins = self.endpoint.logins
        try:
            visitor = logins.admit(self._address, lambda reason: self._close_soon(1013, reason))
        except TryLater as exc:
            self._close_soon(1013, str(exc))
            return False
        try:
            return await self._log_in(visitor, logins)
        finally:
            visitor.leave()

    async def _log_in(self, visitor: Visitor, logins: Logins) -> bool:
        try:
            frame = await asyncio.wait_for(self.ws.recv(), logins.timeout)
            request = json.loads(frame)
            params = request.get("params") if isinstance(request, dict) else None
            if request.get("method") != "auth" or not isinstance(params, dict):
                raise ValueError
        except (TimeoutError, ValueError, AttributeError):
            self._close_soon(1008, "authenticate first")
            return False
        except Exception:  # closed, or evicted to make room
            return False
        request_id = request.get("id") if valid_id(request.get("id")) else None
        project, token = params.get("project"), params.get("token")
        try:
            if not isinstance(project, str) or not isinstance(token, str):
                raise AuthenticationError("project and token must be strings")
            await logins.check(visitor, project, token)
        except TryLater as exc:
            self._close_soon(1013, str(exc))
            return False
        except AuthenticationError:
            log.info("! /caller authentication refused")
            self.send(
                {
                    "id": request_id,
                    "error": {"kind": "auth", "message": "unknown project or wrong token"},
                }
            )
            return False
        self.project = project
        self.send({"id": request_id, "result": {"project": self.project}})
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
            self.caller = await self.endpoint.dial_in(
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


def _heard_json(heard: Heard) -> dict[str, Any]:
    return {
        "kind": heard.kind,
        "label": heard.label,
        "start": heard.start,
        "end": heard.end,
        "volume": heard.volume,
    }


def _write_wav(target: Any, samples: np.ndarray) -> None:
    with wave.open(target, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(np.asarray(samples, dtype="<i2").tobytes())
