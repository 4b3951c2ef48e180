"""RTP legs: bind a SIP call's RTP socket to its :class:`CallMedia`.

Outbound
    The media engine hands each call's 20 ms frame (16 kHz) to ``CallMedia.on_outbound``
    during its tick. The leg only queues it; right after the tick the :class:`RtpHub`
    resamples every queued frame to 8 kHz in one batch, G.711-encodes them and sends one
    packet per call. Packets are therefore paced by the media clock, and their RTP
    timestamps are the media clock too (160 per engine frame): a frame the engine did not
    render (nothing playing) is simply not sent, and the next packet carries the marker bit
    (RFC 3551 §4.1 silence suppression).

Sockets
    Each leg has its own non-blocking UDP socket, but no asyncio transport: the hub reads
    every leg's socket in one pass at the start of each media tick (one poll of a
    ``selectors`` selector, epoll on Linux, says which have packets; a leg's packets are read
    one per round until no socket has more), and
    sends each tick's packets right after it. Inbound audio is consumed only at a tick's start
    anyway, so this adds no delay, and it costs one wake-up of the event loop per tick instead
    of one per packet (50,000 a second at 1000 calls).

Inbound
    Packets go through a per-leg :class:`JitterBuffer`; what it releases waits for the next
    media tick, at whose start (``MediaEngine.on_tick_start``) every leg's frames are decoded
    with one table lookup per codec and length, upsampled to 16 kHz in one batch, and queued
    with ``MediaEngine.push_frames``, so the engine reads them as one array. On the steady
    path (in-sequence 20 ms audio from the latched address, see :class:`RtpHub`) the hub
    keeps the buffer itself, in arrays over all legs, and does the same with no Python per
    packet beyond its ``recvfrom``. A backlog beyond
    ``max_backlog`` seconds (a sender whose clock runs fast) is dropped. RFC 4733 telephone
    events become keys once two packets of the event agree (:class:`TelephoneEvents`: event
    0-15, one key per event timestamp, junk and lone packets ignored), and the in-band audio
    they cover is muted so the tone detector does not count the same press again.

Symmetric RTP (comedia), and who may be heard
    A phone behind NAT sends from an address its SDP does not name, and hears only what is
    sent back there. The leg therefore *latches*: it takes the peer's media from one source
    address and sends its own media to that address. The rule:

    1. Packets from exactly the SDP's address (IP and port) are always taken, and latch the
       leg for good (``locked``): from then on no other source is heard.
    2. Until then, the first valid RTP packet (version 2, the negotiated payload types) from
       the IP address of the SDP or of the SIP signalling (``peer_ips``), on any port, latches
       the leg to that exact source (a phone behind NAT); rule 1 may still replace it.
    3. Every other packet — another IP, another port once latched — is ignored and counted in
       ``ignored``: it is neither heard, nor taken for keys, nor followed.

    Before the leg has latched, the far end has not shown that it receives at the SDP's
    address, which anyone may write into an INVITE: the leg sends there only one packet every
    ``_PROBE_EVERY`` frames, and no more than ``_PROBES`` of them, then waits silently for the
    peer's first packet. A peer that sends first (as phones do) hears everything.
"""

from __future__ import annotations

__all__ = ["RtpHub", "RtpLeg"]

import asyncio
import ipaddress
import itertools
import logging
import secrets
import selectors
import socket
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from ..media.engine import CallMedia, MediaEngine
from .g711 import Codec
from .jitter import JitterBuffer, JitterFrame, JitterRun
from .resample import HISTORY, UP_HISTORY, downsample2, upsample2
from .rtp import DtmfEvent, RtpPacket, TelephoneEvents, is_rtcp

log = logging.getLogger("relaykit.sip.rtp")

SAMPLES_8K = 160  # per 20 ms packet
_MUTE_TAIL = 320  # samples of audio muted after an RFC 4733 event ends (40 ms)
_IDLE_FLUSH = 0.06  # seconds without packets before the jitter buffer is emptied
_PLAIN = struct.Struct("!xBHI")  # a plain RTP header: marker/payload type, sequence, timestamp
_PROBE_EVERY = 10  # before latching, send one frame in this many (200 ms apart)…
_PROBES = 25  # …and this many in all (5 s); then nothing until the peer's first packet
_READ_ROUNDS = 8  # packets read per socket per tick at most (a flood waits in the kernel)
_IDLE_EVERY = 3  # ticks between checks for legs that went quiet
_MAX_DATAGRAM = 2048
_DEPTH = 3  # the jitter depth of the steady path (JitterBuffer's default)
_RING = _DEPTH + 1  # packets a steady stream's ring holds: the depth and the one arriving
_PACKET = 12 + SAMPLES_8K  # a steady packet: plain header, 20 ms of G.711
_U32 = 0xFFFFFFFF


class RtpLeg:
    """The RTP side of one call: a UDP socket, a jitter buffer, a codec."""

    def __init__(self, hub: RtpHub, sock: socket.socket) -> None:
        self.hub = hub
        self.sock: socket.socket | None = sock
        self.port: int = sock.getsockname()[1]
        self.media: CallMedia | None = None
        self.codec: Codec | None = None
        self.telephone_event: int | None = None
        self.remote: tuple[str, int] | None = None
        self.signalled: tuple[str, int] | None = None  # the SDP's address
        self.peer_ips: frozenset[str] = frozenset()
        self.on_key: Callable[[str], None] | None = None
        self.jitter = JitterBuffer()
        self.slot = -1  # the leg's row in the hub's per-stream arrays (set by RtpHub.watch)
        self.active = False
        self.latched = False
        self.locked = False
        self.probes = 0
        self.received = 0
        self.ignored = 0
        self.bad_packets = 0
        self.dropped_backlog = 0
        self.send_errors = 0
        self.keys_received: list[str] = []
        self._events = TelephoneEvents()
        self._event_ts: int | None = None
        self._mute_start: int | None = None
        self._mute_end: int | None = None  # None while the event lasts

    @classmethod
    async def open(cls, hub: RtpHub, host: str) -> RtpLeg:
        """A leg on a new socket bound to ``host`` (an IP address or a name) and a free port."""
        try:
            family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
            address: Any = (host, 0)
        except ValueError:
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(host, 0, type=socket.SOCK_DGRAM)
            family, address = infos[0][0], infos[0][4]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        leg = cls(hub, sock)
        hub.watch(leg)
        return leg

    def start(
        self,
        media: CallMedia,
        codec: Codec,
        telephone_event: int | None,
        remote: tuple[str, int],
        on_key: Callable[[str], None] | None = None,
        *,
        signalling_ip: str | None = None,
    ) -> None:
        """Media flows from now on (the call is answered). ``remote`` is the SDP's address,
        ``signalling_ip`` where the SIP messages came from (see the module's latching rule)."""
        self.media = media
        self.codec = codec
        self.telephone_event = telephone_event
        self.signalled = remote
        self.peer_ips = frozenset(ip for ip in (remote[0], signalling_ip) if ip)
        if not self.latched:
            self.remote = remote
        self.on_key = on_key
        self.active = True
        self.hub.legs.add(self)
        self.hub.started(self)
        hub = self.hub
        media.on_outbound = lambda frame: hub.queue_out(self, frame)

    def close(self) -> None:
        self.active = False
        if self.media is not None:
            self.media.on_outbound = None
        self.hub.legs.discard(self)
        if self.sock is not None:
            self.hub.unwatch(self)
            self.sock.close()
            self.sock = None

    # -- outbound ----------------------------------------------------------------------------
    def _probe(self, index: int) -> bool:
        """Before latching: whether frame ``index`` goes out (as a probe, see the module)."""
        if self.probes >= _PROBES or index % _PROBE_EVERY:
            return False
        self.probes += 1
        return True

    # -- inbound -----------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: Any, now: float) -> None:
        if not self.active or is_rtcp(data):
            return
        if len(data) >= 12 and data[0] == 0x80:  # version 2 with no padding, extension, CSRC
            second, sequence, timestamp = _PLAIN.unpack_from(data)
            pt, payload = second & 0x7F, data[12:]
        else:
            try:
                packet = RtpPacket.parse(data)
            except ValueError:
                self.bad_packets += 1
                return
            pt, payload = packet.payload_type, packet.payload
            sequence, timestamp = packet.sequence_number, packet.timestamp
        assert self.codec is not None
        if pt != self.codec.payload_type and pt != self.telephone_event:
            return  # comfort noise, other codecs: ignored
        if not self._heard_from((addr[0], addr[1])):
            self.ignored += 1
            return
        self.received += 1
        self.hub.heard(self, now)
        if pt == self.codec.payload_type:
            for frame in self.jitter.add(sequence, timestamp, payload):
                self.hub.queue_in(self, frame)
        else:
            for frame in self.jitter.skip(sequence):
                self.hub.queue_in(self, frame)
            self._event(timestamp, payload)

    def _heard_from(self, source: tuple[str, int]) -> bool:
        """Whether a valid packet from ``source`` is taken (latching as the module says)."""
        if self.latched and source == self.remote:
            return True
        if source == self.signalled:
            self.remote = source
            self.latched = self.locked = True
            return True
        if self.latched or source[0] not in self.peer_ips:
            return False
        self.remote = source
        self.latched = True
        return True

    def _event(self, ts: int, payload: bytes) -> None:
        try:
            event = DtmfEvent.parse(payload)
            key = self._events.feed(ts, payload)
        except ValueError:
            self.bad_packets += 1
            return
        if event.key is None:
            return  # not a DTMF event
        if ts != self._event_ts:
            self._event_ts = ts
            self._mute_start = ts
            self._mute_end = None
        if event.end and ts == self._mute_start:
            self._mute_end = (ts + event.duration + _MUTE_TAIL) & 0xFFFFFFFF
        self.hub.mute(self, self._mute_start, self._mute_end)
        if key is not None:
            self.keys_received.append(key)
            if self.on_key is not None:
                self.on_key(key)

    def muted(self, frame: JitterFrame) -> bool:
        """Does ``frame`` fall inside an RFC 4733 event (whose tone we must not detect)?"""
        if self._mute_start is None:
            return False
        since = (frame.timestamp - self._mute_start) & 0xFFFFFFFF
        if since >= 0x80000000:
            # the frame starts before the event: muted if it overlaps the event's start
            return (self._mute_start - frame.timestamp) & 0xFFFFFFFF < frame.samples
        if self._mute_end is None:
            return since < 8000 * 5  # event still running (at most 5 s)
        return since < (self._mute_end - self._mute_start) & 0xFFFFFFFF

    def flush_idle(self) -> None:
        """The peer went quiet: release what the jitter buffer holds."""
        for frame in self.jitter.flush():
            self.hub.queue_in(self, frame)


class RtpHub:
    """Does the RTP work of every leg in batches, once per media tick.

    What the batches need of each stream (the resamplers' filter histories, the outbound RTP
    header's sequence number, timestamp base, SSRC and last frame, the jitter buffer of a
    steady stream) lives in arrays with one row per leg (``RtpLeg.slot``), so a tick gathers
    and updates them with one indexing each.

    The steady path: a leg whose jitter buffer holds a gapless run of 20 ms audio packets
    (:meth:`JitterBuffer.hand_over`) keeps it in the hub's ring arrays instead. A tick's
    packets from the latched address, plain RTP of the audio payload type and the next
    sequence number are then checked, buffered and released for all legs at once, round by
    round, with no Python per packet beyond its ``recvfrom``. Any other packet (the first
    ones, events, a loss, reordering, another source) gives the leg's run back to its
    :class:`JitterBuffer` and goes through :meth:`RtpLeg.datagram_received`, as do the leg's
    later packets of the tick; the leg comes back to the steady path as soon as its buffer is
    a gapless run again.

    Args:
        engine: the server's media engine (its frame counter gives RTP timestamps).
        max_backlog: seconds of caller audio allowed to queue in the engine before packets
            are dropped (a clock-drift guard).
    """

    def __init__(self, engine: MediaEngine, *, max_backlog: float = 0.3) -> None:
        self.engine = engine
        self.max_backlog = max_backlog
        self.legs: set[RtpLeg] = set()
        self._out_legs: list[RtpLeg] = []
        self._out_frames: list[np.ndarray] = []
        self._out_index: list[int] = []  # the engine frame each was rendered in
        self._in: list[tuple[RtpLeg, JitterFrame, bool]] = []  # (leg, frame, muted)
        self._steady_in: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # epoll on Linux, kqueue on macOS: one poll says which legs' sockets have packets
        self._poll = selectors.DefaultSelector()
        self._closed = False
        self._free: list[int] = []  # rows of closed legs, to reuse
        self._rows = 0  # rows handed out
        self._leg_at: list[RtpLeg | None] = []
        self._down = np.zeros((0, HISTORY), dtype=np.float32)  # downsampler histories
        self._up = np.zeros((0, UP_HISTORY), dtype=np.float32)  # upsampler histories
        self._sequence = np.zeros(0, dtype=np.int64)  # the next packet's sequence number
        self._ts_base = np.zeros(0, dtype=np.int64)  # RTP timestamp of engine frame 0
        self._ssrc = np.zeros(0, dtype=np.int64)
        self._last = np.zeros(0, dtype=np.int64)  # engine frame of the last packet sent (-2)
        self._pt = np.zeros(0, dtype=np.int64)  # the audio payload type (-1: not started)
        self._last_rx = np.zeros(0, dtype=np.float64)  # loop time of the last packet taken
        self._mute_start = np.zeros(0, dtype=np.int64)  # RFC 4733 event's timestamp (-1: none)
        self._mute_len = np.zeros(0, dtype=np.int64)  # ... and how long its audio is muted
        # the steady path's jitter buffers: a ring of packets per row
        self._steady = np.zeros(0, dtype=bool)
        self._jb_next = np.zeros(0, dtype=np.int64)  # extended sequence number released next
        self._jb_held = np.zeros(0, dtype=np.int64)  # packets held from there on
        self._jb_expected = np.zeros(0, dtype=np.int64)  # RTP timestamp expected next (-1)
        self._ring = np.zeros((0, _RING, SAMPLES_8K), dtype=np.uint8)
        self._ring_ts = np.zeros((0, _RING), dtype=np.int64)
        self._ticks = 0
        self.batches = 0
        self.packets = 0  # packets read (for benchmarks)
        self.steady_packets = 0  # ... and of them, taken on the steady path
        self._unhook = engine.on_tick_start(self._on_tick)

    def loop_time(self) -> float:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        self._unhook()
        for key in list(self._poll.get_map().values()):
            key.data.close()
        self._closed = True
        self._poll.close()

    def watch(self, leg: RtpLeg) -> None:
        """Give ``leg`` its row (a new stream) and read its socket at every tick from now on."""
        assert leg.sock is not None
        if self._free:
            slot = self._free.pop()
        else:
            slot = self._rows
            self._rows += 1
            if slot == len(self._ssrc):
                self._grow(max(64, 2 * slot))
        self._down[slot] = 0.0
        self._up[slot] = 0.0
        self._sequence[slot] = secrets.randbits(16)
        self._ts_base[slot] = secrets.randbits(32)
        self._ssrc[slot] = secrets.randbits(32)
        self._last[slot] = -2
        self._pt[slot] = -1
        self._last_rx[slot] = -_IDLE_FLUSH
        self._mute_start[slot] = -1
        self._steady[slot] = False
        self._jb_held[slot] = 0
        leg.slot = slot
        self._leg_at[slot] = leg
        self._poll.register(leg.sock, selectors.EVENT_READ, leg)

    def _grow(self, rows: int) -> None:
        def grown(a: np.ndarray) -> np.ndarray:
            b = np.zeros((rows, *a.shape[1:]), dtype=a.dtype)
            b[: len(a)] = a
            return b

        for name in _ROW_ARRAYS:
            setattr(self, name, grown(getattr(self, name)))
        self._leg_at += [None] * (rows - len(self._leg_at))

    def unwatch(self, leg: RtpLeg) -> None:
        assert leg.sock is not None
        if self._closed:
            return
        try:
            self._poll.unregister(leg.sock)
        except KeyError:  # not watched
            return
        self._steady[leg.slot] = False
        self._leg_at[leg.slot] = None
        self._free.append(leg.slot)

    # -- what legs tell the hub --------------------------------------------------------------
    def started(self, leg: RtpLeg) -> None:
        """``leg`` starts (or restarts) media with its codec."""
        assert leg.codec is not None
        self._spill(leg)
        self._pt[leg.slot] = leg.codec.payload_type

    def heard(self, leg: RtpLeg, now: float) -> None:
        """``leg`` took a packet at loop time ``now`` (its jitter buffer is flushed once it
        has been quiet for a while)."""
        self._last_rx[leg.slot] = now

    def mute(self, leg: RtpLeg, start: int | None, end: int | None) -> None:
        """The RFC 4733 event whose audio is muted on ``leg`` (see :meth:`RtpLeg.muted`)."""
        self._mute_start[leg.slot] = -1 if start is None else start
        if start is not None:
            self._mute_len[leg.slot] = 8000 * 5 if end is None else (end - start) & _U32

    def _spill(self, leg: RtpLeg) -> None:
        """Give a steady leg's run back to its jitter buffer (for a packet off the steady
        path)."""
        slot = leg.slot
        if not self._steady[slot]:
            return
        self._steady[slot] = False
        first, held = int(self._jb_next[slot]), int(self._jb_held[slot])
        rows = [(first + i) % _RING for i in range(held)]
        packets = [(int(self._ring_ts[slot, r]), self._ring[slot, r].tobytes()) for r in rows]
        expected = int(self._jb_expected[slot])
        leg.jitter.take_back(JitterRun(first, None if expected < 0 else expected, packets))
        self._jb_held[slot] = 0

    def _settle(self, leg: RtpLeg) -> None:
        """Take ``leg``'s jitter buffer onto the steady path if it holds a gapless run."""
        slot = leg.slot
        if self._steady[slot] or not leg.active or leg.jitter.depth != _DEPTH:
            return
        run = leg.jitter.hand_over(SAMPLES_8K)
        if run is None:
            return
        first = run.next_sequence
        for i, (ts, payload) in enumerate(run.packets):
            self._ring[slot, (first + i) % _RING] = np.frombuffer(payload, dtype=np.uint8)
            self._ring_ts[slot, (first + i) % _RING] = ts
        self._jb_next[slot] = first
        self._jb_held[slot] = len(run.packets)
        expected = run.expected_timestamp
        self._jb_expected[slot] = -1 if expected is None else expected
        self._steady[slot] = True

    # -- the tick ----------------------------------------------------------------------------
    def _on_tick(self) -> None:
        now = self.loop_time()
        self._read(now)
        self._ticks += 1
        if self._ticks % _IDLE_EVERY == 0:
            self._flush_idle(now)
        self._flush_in()

    def _read(self, now: float) -> None:
        """Every packet waiting on any leg's socket: each round reads one packet from each
        socket the poll says has some, until none has (or ``_READ_ROUNDS``: a flood waits)."""
        poll = self._poll
        legs: list[RtpLeg] = []
        datas: list[bytes] = []
        sources: list[Any] = []
        slots: list[int] = []
        latched: list[bool] = []  # from the address the leg latched to
        rounds = [0]  # where each round's packets start
        for _ in range(_READ_ROUNDS):
            ready = poll.select(0)
            if not ready:
                break
            for key, _ in ready:
                leg: RtpLeg = key.data
                try:
                    data, addr = leg.sock.recvfrom(_MAX_DATAGRAM)  # type: ignore[union-attr]
                except OSError:  # nothing after all, or an ICMP error left by an earlier send
                    continue
                legs.append(leg)
                datas.append(data)
                sources.append(addr)
                slots.append(leg.slot)
                latched.append(leg.latched and addr == leg.remote)
            rounds.append(len(legs))
        if legs:
            self.packets += len(legs)
            self._take(legs, datas, sources, slots, latched, rounds, now)

    def _take(
        self,
        legs: list[RtpLeg],
        datas: list[bytes],
        sources: list[Any],
        slot_list: list[int],
        latched: list[bool],
        rounds: list[int],
        now: float,
    ) -> None:
        """One tick's packets: the steady ones in arrays, round by round (a round has at most
        one packet per leg), then the others one by one. Once a leg has a packet off the
        steady path, its later packets of the tick are off it too, so each leg's packets are
        taken in the order they came."""
        n = len(legs)
        slots = np.array(slot_list, dtype=np.intp)
        maybe = np.array(latched, dtype=bool)
        maybe &= np.fromiter(map(len, datas), dtype=np.intp, count=n) == _PACKET
        steady = np.zeros(n, dtype=bool)
        off = np.zeros(self._rows, dtype=bool)  # legs with a packet off the steady path
        for lo, hi in itertools.pairwise(rounds):
            if lo == hi:
                continue
            rows = slots[lo:hi]
            ok = maybe[lo:hi] & self._steady[rows] & ~off[rows]
            chosen = np.flatnonzero(ok)
            if len(chosen):
                part = datas[lo:hi] if len(chosen) == hi - lo else [datas[lo + i] for i in chosen]
                raw = np.frombuffer(b"".join(part), dtype=np.uint8).reshape(-1, _PACKET)
                at = rows[chosen]
                sequence = raw[:, 2].astype(np.int64) << 8 | raw[:, 3]
                fits = (
                    (raw[:, 0] == 0x80)
                    & ((raw[:, 1] & 0x7F) == self._pt[at])
                    & (sequence == (self._jb_next[at] + self._jb_held[at]) & 0xFFFF)
                )
                ok[chosen[~fits]] = False
                if fits.any():
                    self._buffer(at[fits], raw[fits], now)
            off[rows[~ok]] = True
            steady[lo:hi] = ok
        taken = np.flatnonzero(steady).tolist()
        self.steady_packets += len(taken)
        for i in taken:
            leg = legs[i]
            leg.received += 1
            leg.jitter.received += 1
        if len(taken) == n:
            return
        touched: dict[RtpLeg, None] = {}
        for i in np.flatnonzero(~steady).tolist():
            leg = legs[i]
            if leg.sock is None:  # closed by an earlier packet's key handler
                continue
            self._spill(leg)
            leg.datagram_received(datas[i], sources[i], now)
            touched[leg] = None
        for leg in touched:
            self._settle(leg)

    def _buffer(self, rows: np.ndarray, packets: np.ndarray, now: float) -> None:
        """Steady packets (one per row, each the next of its stream) into the rows' rings;
        the oldest of a ring holding more than the jitter depth is released."""
        stamps = (
            packets[:, 4].astype(np.int64) << 24
            | packets[:, 5].astype(np.int64) << 16
            | packets[:, 6].astype(np.int64) << 8
            | packets[:, 7]
        )
        at = (self._jb_next[rows] + self._jb_held[rows]) % _RING
        self._ring[rows, at] = packets[:, 12:]
        self._ring_ts[rows, at] = stamps
        self._last_rx[rows] = now
        held = self._jb_held[rows] + 1
        full = held > _DEPTH
        self._jb_held[rows] = held - full
        out = rows[full]
        if not len(out):
            return
        oldest = self._jb_next[out] % _RING
        codes, released = self._ring[out, oldest], self._ring_ts[out, oldest]
        self._jb_next[out] += 1
        self._jb_expected[out] = (released + SAMPLES_8K) & _U32
        self._steady_in.append((out, codes, released))

    def _flush_idle(self, now: float) -> None:
        """Release what the jitter buffers of legs that went quiet hold."""
        rows = self._rows
        quiet = now - self._last_rx[:rows] > _IDLE_FLUSH
        quiet &= ~(self._steady[:rows] & (self._jb_held[:rows] == 0))
        for slot in np.flatnonzero(quiet).tolist():
            leg = self._leg_at[slot]
            if leg is None or not leg.active:
                continue
            self._spill(leg)
            if len(leg.jitter):
                leg.flush_idle()
            self._settle(leg)

    # -- outbound ----------------------------------------------------------------------------
    def queue_out(self, leg: RtpLeg, frame: np.ndarray) -> None:
        """Called from inside the engine tick; the batch is sent right after it."""
        if not self._out_legs:
            asyncio.get_running_loop().call_soon(self._flush_out)
        self._out_legs.append(leg)
        self._out_frames.append(frame)
        self._out_index.append(self.engine.frame)

    def _flush_out(self) -> None:
        legs, frames, index = self._out_legs, self._out_frames, self._out_index
        self._out_legs, self._out_frames, self._out_index = [], [], []
        live = [
            i
            for i, leg in enumerate(legs)
            if leg.active and leg.sock is not None and leg.remote is not None
        ]
        if not live:
            return
        if len(live) < len(legs):
            legs = [legs[i] for i in live]
            frames = [frames[i] for i in live]
            index = [index[i] for i in live]
        self.batches += 1
        slots = np.array([leg.slot for leg in legs], dtype=np.intp)
        out, self._down[slots] = downsample2(np.stack(frames), self._down[slots])
        # before latching, only a probe now and then (see the module)
        sending = [i for i, leg in enumerate(legs) if leg.latched or leg._probe(index[i])]
        if not sending:
            return
        frame_index = np.array(index, dtype=np.int64)
        if len(sending) < len(legs):
            legs = [legs[i] for i in sending]
            out, slots, frame_index = out[sending], slots[sending], frame_index[sending]
        k = len(legs)
        pt = self._pt[slots]
        packets = np.empty((k, 12 + out.shape[1]), dtype=np.uint8)
        for rows, first in _codec_rows(pt):
            codec = legs[first].codec
            assert codec is not None
            packets[rows, 12:] = codec.encode(out[rows])
        # the 12-byte headers (RFC 3550 §5.1), every packet's at once
        sequence = self._sequence[slots]
        marker = frame_index != self._last[slots] + 1  # a new talkspurt
        packets[:, 0] = 0x80
        packets[:, 1] = pt | marker << 7
        packets[:, 2:4] = sequence.astype(">u2").view(np.uint8).reshape(k, 2)
        stamp = (self._ts_base[slots] + frame_index * SAMPLES_8K) & _U32
        packets[:, 4:8] = stamp.astype(">u4").view(np.uint8).reshape(k, 4)
        packets[:, 8:12] = self._ssrc[slots].astype(">u4").view(np.uint8).reshape(k, 4)
        self._last[slots] = frame_index
        self._sequence[slots] = (sequence + 1) & 0xFFFF
        data = packets.tobytes()
        size = packets.shape[1]
        for i, leg in enumerate(legs):
            try:
                leg.sock.sendto(data[i * size : (i + 1) * size], leg.remote)  # type: ignore[union-attr,arg-type]
            except OSError:  # a full send buffer or an ICMP error: the packet is lost, as on a net
                leg.send_errors += 1

    # -- inbound -----------------------------------------------------------------------------
    def queue_in(self, leg: RtpLeg, frame: JitterFrame) -> None:
        """A frame released by ``leg``'s jitter buffer: decoded at the next tick's start."""
        self._in.append((leg, frame, frame.payload is None or leg.muted(frame)))

    def _flush_in(self) -> None:
        steady, self._steady_in = self._steady_in, []
        for released in steady:
            self._decode_steady(*released)
        batch, self._in = self._in, []
        by_kind: dict[tuple[int, int], list[tuple[RtpLeg, JitterFrame, bool]]] = {}
        for leg, frame, silent in batch:
            if leg.active and leg.codec is not None and frame.samples:
                key = (leg.codec.payload_type, frame.samples)
                by_kind.setdefault(key, []).append((leg, frame, silent))
        for (_, size), group in by_kind.items():
            samples = self._decode(group, size)
            # one stream may have several frames in a batch: upsample them in order
            rows = list(range(len(group)))
            while rows:
                seen: set[int] = set()
                now_rows: list[int] = []
                later: list[int] = []
                for i in rows:
                    (later if id(group[i][0]) in seen else now_rows).append(i)
                    seen.add(id(group[i][0]))
                legs = [group[i][0] for i in now_rows]
                slots = np.array([leg.slot for leg in legs], dtype=np.intp)
                self._upsample(legs, slots, samples[now_rows])
                rows = later

    def _decode_steady(self, rows: np.ndarray, codes: np.ndarray, stamps: np.ndarray) -> None:
        """Frames released on the steady path: one per row, 20 ms each."""
        at = self._leg_at
        live = [
            (i, leg) for i, slot in enumerate(rows.tolist()) if (leg := at[slot]) and leg.active
        ]
        if not live:
            return
        legs = [leg for _, leg in live]
        if len(live) < len(rows):  # closed since
            keep = [i for i, _ in live]
            rows, codes, stamps = rows[keep], codes[keep], stamps[keep]
        # what RtpLeg.muted says, for every row at once
        start = self._mute_start[rows]
        since = (stamps - start) & _U32
        muted = (start >= 0) & np.where(
            since >= 0x80000000,
            (start - stamps) & _U32 < SAMPLES_8K,  # the frame overlaps the event's start
            since < self._mute_len[rows],
        )
        samples = np.empty(codes.shape, dtype=np.int16)
        for group, first in _codec_rows(self._pt[rows]):
            codec = legs[first].codec
            assert codec is not None
            samples[group] = codec.decode(codes[group])
        samples[muted] = 0
        self._upsample(legs, rows, samples)

    @staticmethod
    def _decode(group: list[tuple[RtpLeg, JitterFrame, bool]], size: int) -> np.ndarray:
        """The group's frames (one codec, ``size`` samples each) as int16 rows; lost, muted or
        malformed frames are silence."""
        samples = np.zeros((len(group), size), dtype=np.int16)
        heard = [
            i
            for i, (_, frame, silent) in enumerate(group)
            if not silent and frame.payload is not None and len(frame.payload) == size
        ]
        if heard:
            codec = group[heard[0]][0].codec
            assert codec is not None
            payloads = b"".join(group[i][1].payload or b"" for i in heard)
            samples[heard] = codec.decode(payloads).reshape(len(heard), size)
        return samples

    def _upsample(self, legs: list[RtpLeg], slots: np.ndarray, chunks: np.ndarray) -> None:
        """``chunks`` row i (8 kHz) is the next audio of ``legs[i]`` (row ``slots[i]``; each
        leg once)."""
        out, self._up[slots] = upsample2(chunks, self._up[slots])
        keep: list[int] = []
        medias: list[CallMedia] = []
        for i, leg in enumerate(legs):
            media = leg.media
            if media is None:
                continue
            if media.inbound_pending > self.max_backlog:
                leg.dropped_backlog += 1
                continue
            keep.append(i)
            medias.append(media)
        if medias:
            self.engine.push_frames(medias, out if len(keep) == len(legs) else out[keep])


def _codec_rows(pt: np.ndarray) -> list[tuple[slice | np.ndarray, int]]:
    """A batch's rows per codec (by payload type ``pt``), each with one row of that codec:
    the whole batch at once when it has one codec, as it usually has."""
    if (pt == pt[0]).all():
        return [(slice(None), 0)]
    groups: list[tuple[slice | np.ndarray, int]] = []
    for code in np.unique(pt).tolist():
        rows = np.flatnonzero(pt == code)
        groups.append((rows, int(rows[0])))
    return groups


# RtpHub's arrays with one row per leg (grown together)
_ROW_ARRAYS = (
    "_down", "_up", "_sequence", "_ts_base", "_ssrc", "_last", "_pt", "_last_rx",
    "_mute_start", "_mute_len", "_steady", "_jb_next", "_jb_held", "_jb_expected", "_ring",
    "_ring_ts",
)  # fmt: skip
