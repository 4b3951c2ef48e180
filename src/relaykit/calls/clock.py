"""The media clock: ticks the engine every 20 ms of loop time while any call exists."""

from __future__ import annotations

__all__ = ["MediaClock"]

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable

from ..media.engine import EngineEvent, MediaEngine
from ..media.frames import FRAME_SECONDS

log = logging.getLogger("relaykit.calls")

LATENESS_KEPT = 100_000  # ticks whose lateness is kept for benchmarks
_NO_FULL_COLLECTIONS = 1 << 30  # a third gc threshold that is never reached


class MediaClock:
    """Runs ``engine.tick()`` on a 20 ms grid and hands its events to ``dispatch``.

    A late tick catches up frame by frame (media time never skips). With ``inline_media`` a
    loop that was busy with inline work makes media time wait too, as a fast-forwarding test
    clock would. Health, for benchmarks: ``late_frames`` counts ticks more than a frame late;
    ``lateness`` holds how late each of the first 100,000 ticks ran, in seconds.

    With ``hold_gc`` the garbage collector's full collections wait while calls are up: one
    stops the whole process for as long as it takes to visit every live object (about 0.5 µs
    each here: 50-250 ms with a few thousand calls up), and the clock's ticks with it. Young
    objects are still collected as usual; a full collection runs when the last call has ended,
    and at most every ``gc_interval`` seconds while calls stay up (that one is a late tick or
    a few, once in a long while). This sets the process's gc thresholds: for a server that
    owns its process (``relaykit serve``, the benchmarks), not for one inside a test run.
    """

    def __init__(
        self,
        engine: MediaEngine,
        dispatch: Callable[[list[EngineEvent]], None],
        calls_present: asyncio.Event,
        *,
        inline_media: bool = False,
        hold_gc: bool = False,
        gc_interval: float = 300.0,
    ) -> None:
        self.engine = engine
        self.dispatch = dispatch
        self.calls_present = calls_present
        self.inline_media = inline_media
        self.hold_gc = hold_gc
        self.gc_interval = gc_interval
        self._gc_saved: tuple[int, int, int] | None = None
        self._gc_due = 0.0
        self.late_frames = 0
        self.lateness: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="relaykit-clock")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._release_gc()

    def _hold_gc(self, now: float) -> None:
        if self.hold_gc and self._gc_saved is None:
            self._gc_saved = gc.get_threshold()
            young, middle, _ = self._gc_saved
            gc.set_threshold(young, middle, _NO_FULL_COLLECTIONS)
            self._gc_due = now + self.gc_interval

    def _release_gc(self) -> None:
        if self._gc_saved is not None:
            gc.set_threshold(*self._gc_saved)
            self._gc_saved = None
            gc.collect()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not len(self.engine):
                self._release_gc()
                self.calls_present.clear()
                await self.calls_present.wait()
            start = loop.time()
            self._hold_gc(start)
            n = 0
            while len(self.engine):
                n += 1
                target = start + n * FRAME_SECONDS
                delay = target - loop.time()
                await asyncio.sleep(delay if delay > 0 else 0)
                late = loop.time() - target
                if late > FRAME_SECONDS:
                    self.late_frames += 1
                if len(self.lateness) < LATENESS_KEPT:
                    self.lateness.append(late)
                if self.inline_media and late > FRAME_SECONDS / 4:
                    # The loop was busy (inline media work): media time waits too, and this
                    # frame comes one frame from now, as on a fast-forwarding test clock.
                    start, n = start + late + FRAME_SECONDS, n - 1
                    continue
                try:
                    self.dispatch(self.engine.tick())
                except Exception:
                    log.exception("! media tick failed")
                if self._gc_saved is not None and loop.time() >= self._gc_due:
                    gc.collect()  # the rare full collection while calls stay up
                    self._gc_due = loop.time() + self.gc_interval
