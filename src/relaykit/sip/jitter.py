"""A jitter buffer for one RTP stream: packets in, frames out in sequence. No socket, no clock.

:meth:`JitterBuffer.add` takes one packet's sequence number, timestamp and payload and returns
the frames that can now be released, oldest first. The buffer holds back ``depth`` packets:
a packet is released once ``depth`` packets are queued behind it, so reordering within that
window is undone; a packet still missing by then is declared lost and released as a
:class:`JitterFrame` with ``payload=None`` and the number of samples to conceal (from the RTP
timestamps). Late and duplicate packets are dropped and counted. A jump of more than
``capacity`` packets (a new stream, a sender restart) releases what is held and restarts.
:meth:`skip` marks a sequence number used by another payload type of the same stream
(RFC 4733 events), so it is not taken for a loss. :meth:`flush` releases everything (the
sender went quiet). :meth:`hand_over` and :meth:`take_back` let a caller keep a gapless run of
packets in its own arrays (the RTP hub does, for all its streams at once) and give it back.
"""

from __future__ import annotations

__all__ = ["JitterBuffer", "JitterFrame", "JitterRun"]

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JitterFrame:
    """A released frame: ``payload`` None means lost; ``samples`` is its length in samples."""

    timestamp: int
    payload: bytes | None
    samples: int


@dataclass(frozen=True, slots=True)
class JitterRun:
    """What a buffer holding a gapless run of audio packets is: the extended sequence number
    released next, the RTP timestamp expected next (None before the first release), and the
    held packets' (timestamp, payload) from that sequence number on."""

    next_sequence: int
    expected_timestamp: int | None
    packets: list[tuple[int, bytes]]


class JitterBuffer:
    """Args:
    depth: packets held back before the oldest is released (3 × 20 ms = 60 ms).
    capacity: the largest sequence jump still treated as loss rather than a restart.
    max_conceal: most samples reported for one loss (longer gaps are silence anyway).
    bytes_per_sample: payload bytes per sample (1 for G.711), to size frames.
    """

    def __init__(
        self,
        depth: int = 3,
        *,
        capacity: int = 64,
        max_conceal: int = 1600,
        bytes_per_sample: int = 1,
    ) -> None:
        if depth < 0 or capacity < 1:
            raise ValueError("depth must be >= 0 and capacity >= 1")
        self.depth = depth
        self.capacity = capacity
        self.max_conceal = max_conceal
        self.bytes_per_sample = bytes_per_sample
        self._packets: dict[int, tuple[int, bytes] | None] = {}  # None: skipped
        self._next: int | None = None  # extended sequence number expected next
        self._expected_ts: int | None = None
        self._last_samples = 160
        self.received = 0
        self.late = 0
        self.lost = 0
        self.restarts = 0

    def __len__(self) -> int:
        return len(self._packets)

    def skip(self, sequence: int) -> list[JitterFrame]:
        """A sequence number used by a packet of another payload type in the same stream
        (RFC 4733 events share the audio's SSRC and sequence space): not a loss."""
        return self._insert(sequence, None)

    def add(self, sequence: int, timestamp: int, payload: bytes) -> list[JitterFrame]:
        self.received += 1
        return self._insert(sequence, (timestamp, payload))

    def _insert(self, sequence: int, item: tuple[int, bytes] | None) -> list[JitterFrame]:
        if self._next is None:
            self._next = sequence
        delta = (sequence - self._next) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        ext = self._next + delta
        out: list[JitterFrame] = []
        if delta < 0 or ext in self._packets:
            if delta < -self.capacity:
                # far behind: the sender restarted its sequence; start over from here
                out += self.flush()
                self.restarts += 1
                self._next = ext = sequence
                self._expected_ts = None
            else:
                self.late += 1
                return out
        elif delta > self.capacity + len(self._packets):
            out += self.flush()
            self.restarts += 1
            self._next = ext
            self._expected_ts = None
        self._packets[ext] = item
        while len(self._packets) > self.depth:
            frame = self._release()
            if frame is not None:
                out.append(frame)
        return out

    def hand_over(self, payload_size: int) -> JitterRun | None:
        """If every held packet is audio of ``payload_size`` bytes, in sequence from the next
        one to release, and the last frame was that long too: the buffer's state, which it
        gives up (it is left empty until :meth:`take_back`). Otherwise None, and no change.
        A holder that adds the next sequence number's packet and releases the oldest once
        more than ``depth`` are held does exactly what :meth:`add` would."""
        samples = payload_size // self.bytes_per_sample
        if self._next is None or self._last_samples != samples:
            return None
        run: list[tuple[int, bytes]] = []
        for ext in range(self._next, self._next + len(self._packets)):
            item = self._packets.get(ext)
            if item is None or len(item[1]) != payload_size:
                return None
            run.append(item)
        self._packets = {}
        return JitterRun(self._next, self._expected_ts, run)

    def take_back(self, run: JitterRun) -> None:
        """Hold ``run`` again (from :meth:`hand_over`, as its holder left it)."""
        self._next = run.next_sequence
        self._expected_ts = run.expected_timestamp
        self._packets = {run.next_sequence + i: item for i, item in enumerate(run.packets)}

    def flush(self) -> list[JitterFrame]:
        """Release everything held, in order (with losses reported)."""
        out: list[JitterFrame] = []
        while self._packets:
            frame = self._release()
            if frame is not None:
                out.append(frame)
        return out

    def _release(self) -> JitterFrame | None:
        assert self._next is not None
        if self._next in self._packets:
            item = self._packets.pop(self._next)
            self._next += 1
            if item is None:
                return None  # a skipped (non-audio) sequence number
            ts, payload = item
            samples = len(payload) // self.bytes_per_sample
            self._last_samples = samples or self._last_samples
            self._expected_ts = (ts + samples) & 0xFFFFFFFF
            return JitterFrame(ts, payload, samples)
        first = min(self._packets)
        missing = first - self._next
        self.lost += missing
        self._next = first
        item = self._packets[first]
        if item is None:
            return None
        ts = item[0]
        gap: int | None = None
        if self._expected_ts is not None:
            gap = (ts - self._expected_ts) & 0xFFFFFFFF
            if gap >= 0x80000000:
                gap = None
        if gap is None:
            gap = missing * self._last_samples
        start = self._expected_ts if self._expected_ts is not None else ts
        self._expected_ts = ts
        if gap == 0:
            return None  # the timestamps say no audio is missing
        return JitterFrame(start, None, min(gap, self.max_conceal))
