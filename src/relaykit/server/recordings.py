"""``GET /recordings/<name>``: the files of ``calling.record``, on the server's own port.

A recording's name is an unguessable token (the URL is the credential, as a signed URL would
be); anything else is 404, and a recording still being made is 409.
"""

from __future__ import annotations

__all__ = ["PREFIX", "RecordingRoute"]

import asyncio

from websockets.http11 import Request

from ..calls.recordings import CONTENT_TYPES, RecordingStore
from .http import HttpReply

PREFIX = "/recordings/"


class RecordingRoute:
    """The HTTP handler for :data:`PREFIX` (``server.http.add(PREFIX, route)``)."""

    def __init__(self, store: RecordingStore) -> None:
        self.store = store

    async def __call__(self, request: Request) -> HttpReply:
        name = request.path.split("?", 1)[0][len(PREFIX) :]
        recording = self.store.lookup(name)
        if recording is None:
            return HttpReply.text(404, "no such recording")
        if not recording.closed:
            return HttpReply.text(409, "still recording; fetch it once it has finished")
        try:
            body = await asyncio.to_thread(recording.path.read_bytes)
        except OSError:
            return HttpReply.text(404, "no such recording")
        return HttpReply(200, body, CONTENT_TYPES[recording.format])
