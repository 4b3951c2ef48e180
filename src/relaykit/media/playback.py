"""Outbound media: a playlist of items rendered frame by frame, with a live dB volume.

Items are described first and filled when the loader (TTS, file, URL) is done; until then the
playback renders silence and waits, so slow media never blocks the clock. An item holds either
an array of samples (speech, a decoded file) or a :class:`SampleSource` that makes its samples
on demand (silence, a ringtone's cadence), so an hour of ringing costs one cadence cycle.

The playback releases each item as soon as it is done with it (played, stopped, or never to be
played): a loaded item drops its samples and gives its budget back (``on_release``).
"""

from __future__ import annotations

__all__ = ["MediaItem", "Playback", "PlaybackState", "SampleSource"]

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import numpy as np

from .frames import SAMPLE_RATE, SAMPLES_PER_FRAME, db_to_gain


class SampleSource(Protocol):
    """Samples made on demand: ``len()`` of them in all, 16 kHz int16."""

    def __len__(self) -> int: ...

    def read(self, start: int, count: int) -> np.ndarray:
        """Samples ``start`` to ``start + count`` (fewer at the end); may be a read-only view."""
        ...


class PlaybackState(Enum):
    """Where a playlist is: loading its first item, playing, or done one of three ways."""

    LOADING = "loading"  # first item not ready yet
    PLAYING = "playing"
    FINISHED = "finished"
    ERROR = "error"
    STOPPED = "stopped"


@dataclass(slots=True)
class MediaItem:
    """One entry of a playlist. ``label`` is what a listener would call it (the TTS text, URL…).

    ``samples`` (an array) or ``source`` (made on demand) is set once loaded. ``keep``: the
    samples outlive the playback until the call ends (the virtual caller checks what audio
    prompts say).
    """

    kind: str
    label: str
    samples: np.ndarray | None = None
    error: str | None = None
    started_at: float | None = None  # call-relative seconds, set by the engine
    ended_at: float | None = None
    source: SampleSource | None = None
    keep: bool = False
    released: bool = False
    on_release: Callable[[], None] | None = None

    @property
    def ready(self) -> bool:
        return self.samples is not None or self.source is not None or self.error is not None

    @property
    def duration(self) -> float | None:
        if self.samples is not None:
            return len(self.samples) / SAMPLE_RATE
        if self.source is not None:
            return len(self.source) / SAMPLE_RATE
        return None

    def size(self) -> int:
        """Samples in all (0 until loaded)."""
        if self.samples is not None:
            return len(self.samples)
        return 0 if self.source is None else len(self.source)

    def read(self, start: int, count: int) -> np.ndarray:
        if self.samples is not None:
            return self.samples[start : start + count]
        assert self.source is not None
        return self.source.read(start, count)

    def release(self, *, call_ended: bool = False) -> None:
        """The playback is done with this item: run ``on_release`` (the loader's budget
        charge) and drop the samples it paid for.

        A kept item waits for the end of the call, and then keeps its samples (for the caller).
        """
        if self.released or (self.keep and not call_ended):
            return
        self.released = True
        if self.on_release is None:
            return  # made by hand, not loaded: the samples are the maker's
        callback, self.on_release = self.on_release, None
        if not self.keep:
            self.samples = None
            self.source = None
        callback()


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
        end = self.offset + SAMPLES_PER_FRAME
        if item.started_at is None or not item.ready or end >= item.size():
            return None
        frame = item.read(self.offset, SAMPLES_PER_FRAME)
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
                self._release_rest()
                break
            if self.state is PlaybackState.LOADING:
                self.state = PlaybackState.PLAYING
            if item.started_at is None:
                item.started_at = now + pos / SAMPLE_RATE
                started.append(item)
            size = item.size()
            take = min(SAMPLES_PER_FRAME - pos, size - self.offset)
            if take > 0 and self.gain > 0.0:
                chunk = item.read(self.offset, take)
                out[pos : pos + take] += chunk.astype(np.float32) * self.gain
            pos += max(take, 0)
            self.offset += max(take, 0)
            if self.offset >= size:
                item.ended_at = now + pos / SAMPLE_RATE
                item.release()
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
        self._release_rest()

    def _release_rest(self) -> None:
        for item in self.items[self.index :]:
            item.release()
