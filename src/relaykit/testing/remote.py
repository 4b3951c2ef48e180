"""The virtual caller for other processes: the client of the ``/caller`` WebSocket.

Every :class:`~relaykit.server.app.RelayServer` answers ``ws://HOST:PORT/caller`` (served by
:mod:`relaykit.server.caller_endpoint`). A client
authenticates with a project and token (the RELAY credentials, checked in constant time), then
places **one** inbound call into a context *of that project*, drives it with the virtual
caller's verbs and receives the call's transcript live. Closing the socket hangs up.

Wire format: JSON text frames. Requests ``{"id": 1, "method": "press", "params": {...}}`` are
answered, in order, by ``{"id": 1, "result": ...}`` or ``{"id": 1, "error": {"kind": ...,
"message": ...}}``; the server also sends ``{"method": "transcript", "params": {"at", "actor",
"text"}}`` notifications. The first request must be ``auth`` (``project``, ``token``), within
the server's login timeout (10 s by default). Methods: ``dial`` (``context``, ``from``,
``to``, ``timeout``), ``wait_answered``, ``press``, ``say``, ``silence``, ``audio`` (base64
16 kHz int16 PCM; ``label`` names it in the transcript; ``wait: false`` queues it and answers
at once),
``expect_prompt``, ``expect_hangup``, ``wait_listening``, ``hangup``, ``heard``, ``log`` (the
event log) and ``recording`` (the stereo WAV, base64). Error kinds: ``auth``, ``invalid``,
``timeout``, ``expectation``, ``ended``, ``state``, ``internal``.

:class:`RemoteCaller` is the client (``relaykit call`` uses it); its methods mirror
:class:`~relaykit.testing.caller.VirtualCaller`'s.
"""

from __future__ import annotations

__all__ = ["AUDIO_CHUNK_SECONDS", "RemoteCaller"]

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from ..calls import TranscriptEntry
from ..errors import (
    AuthenticationError,
    CallEndedError,
    CommandError,
    RelayConnectionError,
    RelayError,
    RelayTimeoutError,
)
from ..media.frames import SAMPLE_RATE
from .expect import ExpectationError

log = logging.getLogger("relaykit.testing")

AUDIO_CHUNK_SECONDS = 8.0  # RemoteCaller sends audio in pieces this long (frames stay < 1 MiB)


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
        project: the project whose context will be called.
        token: that project's token.
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
