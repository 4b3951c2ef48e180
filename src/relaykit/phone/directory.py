"""Every call of the node, as the pages see it: live calls and the last ended ones, per project.

The directory follows each call's log from its creation (``CallService.on_new_call``) and hands
every event to the pages of the call's project. An ended call is kept (the last ``keep_ended``
of each project) so its recording and timeline can still be downloaded; older ones are let go.
"""

from __future__ import annotations

__all__ = ["CallDirectory", "Entry", "Follower"]

import asyncio
import io
import time
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..calls import Call, CallEvent, CallOffered, CallService, CallStateChanged
from ..media.frames import SAMPLE_RATE
from ..testing.caller import call_event_log
from ..testing.timeline import timeline_figure

Follower = Callable[["Entry", CallEvent], None]

TIMELINE_DPI = 110  # the picture is shown in the page; smaller than the CLI's


@dataclass(eq=False, slots=True)
class Entry:
    """One call in the directory."""

    call: Call
    started: float  # wall-clock seconds (for display only)
    via: str = ""
    unsubscribe: Callable[[], None] | None = None
    timeline: bytes | None = None  # the PNG, once drawn (ended calls only)


class CallDirectory:
    """Tracks the calls of ``service`` for the pages.

    Args:
        service: the call interface.
        keep_ended: ended calls kept per project (their recordings and timelines).
    """

    def __init__(self, service: CallService, *, keep_ended: int = 20) -> None:
        if keep_ended < 0:
            raise ValueError("keep_ended must be 0 or more")
        self.recorded = service.record_calls
        self.keep_ended = keep_ended
        self._entries: dict[str, Entry] = {}
        self._ended: dict[str, deque[str]] = {}
        self._followers: dict[str, list[Follower]] = {}
        self._drawing: asyncio.Lock | None = None  # one timeline drawn at a time (CPU)
        for call in service:
            self._added(call)
        self._stop_watching = service.on_new_call(self._added)

    def close(self) -> None:
        """Stop following calls (the server stops)."""
        self._stop_watching()
        for entry in self._entries.values():
            if entry.unsubscribe is not None:
                entry.unsubscribe()
        self._entries.clear()
        self._ended.clear()
        self._followers.clear()

    # -- reading ----------------------------------------------------------------------------------
    def calls(self, project: str) -> list[Entry]:
        """The project's live and kept calls, oldest first."""
        return [e for e in self._entries.values() if e.call.project == project]

    def find(self, project: str, call_id: str) -> Entry | None:
        """The call ``call_id`` if it is ``project``'s (another project's call is None)."""
        entry = self._entries.get(call_id)
        return entry if entry is not None and entry.call.project == project else None

    def follow(self, project: str, follower: Follower) -> Callable[[], None]:
        """``follower(entry, event)`` for every event of ``project``'s calls from now on;
        returns a function that stops it."""
        followers = self._followers.setdefault(project, [])
        followers.append(follower)

        def stop() -> None:
            if follower in followers:
                followers.remove(follower)

        return stop

    @staticmethod
    def summary(entry: Entry) -> dict[str, Any]:
        """What the call list shows of a call (JSON-ready)."""
        call = entry.call
        return {
            "call_id": call.call_id,
            "context": call.context,
            "from": call.from_number,
            "to": call.to_number,
            "direction": call.direction,
            "via": entry.via,
            "state": call.state.value,
            "end_reason": call.end_reason if call.ended else None,
            "started": round(entry.started, 3),
        }

    # -- files of ended calls ---------------------------------------------------------------------
    def wav(self, entry: Entry) -> bytes:
        """The call's stereo recording as a WAV file (left: caller, right: IVR)."""
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(entry.call.media.recording().astype("<i2").tobytes())
        return buffer.getvalue()

    async def timeline_png(self, entry: Entry) -> bytes:
        """The call's timeline picture (PNG), drawn off the event loop once and kept."""
        if entry.timeline is None:
            if self._drawing is None:
                self._drawing = asyncio.Lock()
            async with self._drawing:
                if entry.timeline is None:
                    log = call_event_log(entry.call)
                    recording = entry.call.media.recording() if self.recorded else None
                    entry.timeline = await asyncio.to_thread(_draw, log, recording)
        return entry.timeline

    # -- following --------------------------------------------------------------------------------
    def _added(self, call: Call) -> None:
        entry = Entry(call, time.time())
        self._entries[call.call_id] = entry
        entry.unsubscribe = call.log.subscribe(lambda event: self._event(entry, event))

    def _event(self, entry: Entry, event: CallEvent) -> None:
        if isinstance(event, CallOffered):
            entry.via = event.via
        elif isinstance(event, CallStateChanged) and event.state == "ended":
            self._retire(entry)
        for follower in list(self._followers.get(entry.call.project, ())):
            follower(entry, event)

    def _retire(self, entry: Entry) -> None:
        """The call ended: keep it among the project's last ended calls."""
        if entry.unsubscribe is not None:
            entry.unsubscribe()
            entry.unsubscribe = None
        kept = self._ended.setdefault(entry.call.project, deque())
        kept.append(entry.call.call_id)
        while len(kept) > self.keep_ended:
            self._entries.pop(kept.popleft(), None)


def _draw(log: dict[str, Any], recording: np.ndarray | None) -> bytes:
    buffer = io.BytesIO()
    timeline_figure(log, recording).savefig(buffer, format="png", dpi=TIMELINE_DPI)
    return buffer.getvalue()
