"""The jitter buffer: packets in, frames out in order; no socket, no clock."""

from __future__ import annotations

from relaykit.sip.jitter import JitterBuffer, JitterFrame, JitterRun


def packet(seq: int, size: int = 160) -> tuple[int, int, bytes]:
    return seq & 0xFFFF, (seq * size) & 0xFFFFFFFF, bytes([seq & 0xFF]) * size


def feed(buffer: JitterBuffer, seqs: list[int]) -> list[JitterFrame]:
    out: list[JitterFrame] = []
    for seq in seqs:
        out += buffer.add(*packet(seq))
    return out


def labels(frames: list[JitterFrame]) -> list[int | None]:
    return [None if f.payload is None else f.payload[0] for f in frames]


def test_in_order_packets_come_out_depth_packets_later():
    buffer = JitterBuffer(depth=3)
    assert feed(buffer, [0, 1, 2]) == []
    assert labels(feed(buffer, [3])) == [0]
    assert len(buffer) == 3


def test_reordered_packets_come_out_in_sequence():
    buffer = JitterBuffer(depth=3)
    frames = feed(buffer, [0, 2, 1, 4, 3, 5, 6]) + buffer.flush()
    assert labels(frames) == [0, 1, 2, 3, 4, 5, 6]
    assert buffer.lost == 0


def test_a_missing_packet_is_reported_lost_with_its_length():
    buffer = JitterBuffer(depth=2)
    frames = feed(buffer, [0, 1, 3, 4, 5]) + buffer.flush()
    assert labels(frames) == [0, 1, None, 3, 4, 5]
    lost = frames[2]
    assert (lost.samples, lost.timestamp) == (160, 2 * 160)
    assert buffer.lost == 1


def test_late_and_duplicate_packets_are_dropped():
    buffer = JitterBuffer(depth=1)
    frames = feed(buffer, [0, 1, 2, 1, 2, 0, 3])
    assert labels(frames) == [0, 1, 2]
    assert buffer.late == 3


def test_sequence_numbers_wrap_around():
    buffer = JitterBuffer(depth=2)
    frames = feed(buffer, [65533, 65534, 65535, 65536, 65537]) + buffer.flush()
    assert labels(frames) == [s & 0xFF for s in (65533, 65534, 65535, 0, 1)]
    assert buffer.lost == 0 and buffer.restarts == 0


def test_a_big_jump_restarts_the_stream_instead_of_concealing_it():
    buffer = JitterBuffer(depth=2, capacity=10)
    frames = feed(buffer, [0, 1, 2, 5000, 5001, 5002]) + buffer.flush()
    assert labels(frames) == [0, 1, 2, 5000 & 0xFF, 5001 & 0xFF, 5002 & 0xFF]
    assert buffer.restarts == 1 and buffer.lost == 0


def test_depth_zero_releases_every_packet_at_once():
    buffer = JitterBuffer(depth=0)
    assert labels(feed(buffer, [7])) == [7]


def test_sequence_numbers_of_interleaved_events_are_not_losses():
    """RFC 4733 events share the audio's sequence space: skipping them loses nothing."""
    buffer = JitterBuffer(depth=2)
    frames: list[JitterFrame] = []
    for seq in range(0, 12, 2):
        frames += buffer.add(seq, (seq // 2) * 160, bytes([seq]) * 160)
        frames += buffer.skip(seq + 1)
    frames += buffer.flush()
    assert labels(frames) == [0, 2, 4, 6, 8, 10]
    assert buffer.lost == 0


def test_a_lost_packet_whose_timestamps_show_no_gap_conceals_nothing():
    buffer = JitterBuffer(depth=1)
    frames = buffer.add(0, 0, b"a" * 160) + buffer.add(2, 160, b"b" * 160) + buffer.flush()
    assert [f.payload[:1] if f.payload else None for f in frames] == [b"a", b"b"]


def test_a_gapless_run_is_handed_over_and_taken_back_unchanged():
    """A holder that takes the run, adds the next packet and releases the oldest, as the RTP
    hub's steady path does, then gives it back: the buffer goes on as if it had kept it."""
    kept, handed = JitterBuffer(depth=3), JitterBuffer(depth=3)
    assert feed(kept, [0, 1, 2, 3]) == feed(handed, [0, 1, 2, 3])
    run = handed.hand_over(160)
    assert run is not None and len(handed) == 0
    assert [payload[0] for _, payload in run.packets] == [1, 2, 3]
    # the holder: packet 4 in, packet 1 out
    (released_ts, _), *held = run.packets
    _, ts, payload = packet(4)
    handed.take_back(
        JitterRun(run.next_sequence + 1, (released_ts + 160) & 0xFFFFFFFF, [*held, (ts, payload)])
    )
    assert labels(feed(kept, [4])) == [1]
    later = [5, 7, 6, 9, 8, 12]  # reordering and a loss: the buffers must agree on both
    assert feed(kept, later) + kept.flush() == feed(handed, later) + handed.flush()


def test_a_buffer_with_a_gap_or_another_size_keeps_its_packets():
    gap = JitterBuffer(depth=3)
    feed(gap, [0, 2])
    assert gap.hand_over(160) is None and len(gap) == 2
    short = JitterBuffer(depth=3)
    short.add(*packet(0, size=80))
    assert short.hand_over(160) is None and len(short) == 1
    assert JitterBuffer().hand_over(160) is None  # nothing heard yet: no sequence to follow
