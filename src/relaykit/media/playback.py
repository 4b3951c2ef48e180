"""Outbound media: a playlist of items rendered frame by frame, with a live dB volume.

Items are described first and filled with samples when the loader (TTS, file, URL) is done;
until then the playback renders silence and waits, so slow media never blocks the clock.
"""

from __future__ import annotations

__all__ = ["MediaItem", "Playback", "PlaybackState"]

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from .frames import SAMPLE_RATE, SAMPLES_PER_FRAME, db_to_gain


class PlaybackState(Enum):
    """Where a playlist is: loading its first item, playing, or done one of three ways."""

    LOADING = "loading"  # first item not ready yet
    PLAYING = "playing"
    FINISHED = "finished"
    ERROR = "error"
    STOPPED = "stopped"


@dataclass(slots=True)
class MediaItem:
    """One entry of a playlist. ``label`` is what a listener would call it (the TTS text, URL…)."""

    kind: str
    label: str
    samples: np.ndarray | None = None
    error: str | None = None
    started_at: float | None = None  # call-relative seconds, set by the engine
    ended_at: float | None = None

    @property
    def ready(self) -> bool:
        return self.samples is not None or self.error is not None

    @property
    def duration(self) -> float | None:
        return None if self.samples is None else len(self.samples) / SAMPLE_RATE


@dataclass(slots=True)
class Playback:
    """A playlist being played into one call; the engine calls :meth:`render` once per frame."""

    control_id: str
    items: list[MediaItem]
    volume_db: float = 0.0
    state: PlaybackState = PlaybackState.LOADING
    error: str | None = None
    index: int = 0
    offset: int = 0
    gain: float = field(init=False)

    def __post_init__(self) -> None:
        self.gain = db_to_gain(self.volume_db)

    @property
    def done(self) -> bool:
        return self.state in (PlaybackState.FINISHED, PlaybackState.ERROR, PlaybackState.STOPPED)

    @property
    def current(self) -> MediaItem | None:
        return self.items[self.index] if self.index < len(self.items) else None

    def set_volume(self, db: float) -> None:
        self.volume_db = db
        self.gain = db_to_gain(db)

    def fast_frame(self) -> np.ndarray | None:
        """This frame as a view of the current item, when nothing else can happen in it:
        playing, unity gain, and the item goes on past this frame. Else None (use render)."""
        if (
            self.state is not PlaybackState.PLAYING
            or self.gain != 1.0
            or self.index >= len(self.items)
        ):
            return None
        item = self.items[self.index]
        samples = item.samples
        end = self.offset + SAMPLES_PER_FRAME
        if samples is None or item.started_at is None or end >= len(samples):
            return None
        frame = samples[self.offset : end]
        self.offset = end
        return frame

    def render(self, out: np.ndarray, now: float) -> list[MediaItem]:
        """Add this frame's samples (scaled by the gain) into ``out`` (float32, one frame).

        Returns the items that started in this frame; item end times and the playback state are
        updated in place.
        """
        started: list[MediaItem] = []
        pos = 0
        while pos < SAMPLES_PER_FRAME and not self.done:
            item = self.current
            if item is None:
                self.state = PlaybackState.FINISHED
                break
            if not item.ready:
                break  # wait for the loader; silence meanwhile
            if item.error is not None:
                self.state = PlaybackState.ERROR
                self.error = item.error
                break
            if self.state is PlaybackState.LOADING:
                self.state = PlaybackState.PLAYING
            assert item.samples is not None
            if item.started_at is None:
                item.started_at = now + pos / SAMPLE_RATE
                started.append(item)
            take = min(SAMPLES_PER_FRAME - pos, len(item.samples) - self.offset)
            if take > 0 and self.gain > 0.0:
                chunk = item.samples[self.offset : self.offset + take]
                out[pos : pos + take] += chunk.astype(np.float32) * self.gain
            pos += max(take, 0)
            self.offset += max(take, 0)
            if self.offset >= len(item.samples):
                item.ended_at = now + pos / SAMPLE_RATE
                self.index += 1
                self.offset = 0
                if self.index >= len(self.items):
                    self.state = PlaybackState.FINISHED
        return started

    def stop(self, now: float) -> None:
        if self.done:
            return
        item = self.current
        if item is not None and item.started_at is not None and item.ended_at is None:
            item.ended_at = now
        self.state = PlaybackState.STOPPED
