"""TelephoneEvents: RFC 4733 packets in, each press once out; junk and lone packets give nothing."""

from __future__ import annotations

import random

from relaykit.sip.rtp import DtmfEvent, TelephoneEvents


def press(
    events: TelephoneEvents, key: str, ts: int, *, packets: int = 5, first_duration: int = 160
) -> list[str]:
    """One event as phones send it: growing durations, then the end packet three times."""
    keys = []
    for i in range(packets):
        duration = first_duration + i * 160
        keys.append(events.feed(ts, bytes(DtmfEvent.for_key(key, duration=duration))))
    end = bytes(DtmfEvent.for_key(key, end=True, duration=first_duration + packets * 160))
    keys += [events.feed(ts, end) for _ in range(3)]
    return [k for k in keys if k is not None]


def test_each_event_gives_its_key_once_however_many_packets_repeat_it() -> None:
    events = TelephoneEvents()
    assert press(events, "4", 1000) == ["4"]
    assert press(events, "2", 3000) == ["2"]
    assert press(events, "#", 5000) == ["#"]


def test_a_first_packet_of_duration_zero_is_confirmed_by_the_next() -> None:
    """SIPp's RFC 2833 pcaps start with duration 0 (as RFC 4733 allows)."""
    assert press(TelephoneEvents(), "7", 54720, first_duration=0) == ["7"]


def test_events_in_any_timestamp_order_count_and_late_copies_do_not() -> None:
    """A sender replaying recorded events (SIPp) may go back in time: a new timestamp is a new
    key. A retransmitted packet of an event already counted is not."""
    events = TelephoneEvents()
    assert press(events, "4", 37120) == ["4"]
    assert press(events, "2", 23200) == ["2"]
    assert press(events, "4", 37120) == []  # the first event again, late


def test_lone_packets_and_codes_above_15_give_no_key() -> None:
    """One packet per timestamp (junk, a spoofed packet) and events 16-255 are ignored."""
    events = TelephoneEvents()
    for ts in range(0, 160 * 50, 160):
        assert events.feed(ts, bytes(DtmfEvent(ts // 160 % 16, end=True, duration=800))) is None
    for code in (16, 32, 99, 255):  # well-formed events, but not DTMF
        assert events.feed(100_000 + code, bytes(DtmfEvent(code, duration=160))) is None
        assert events.feed(100_000 + code, bytes(DtmfEvent(code, duration=320))) is None


def test_random_junk_payloads_give_no_keys() -> None:
    """10,000 random event payloads, each at its own timestamp: no key."""
    rng = random.Random(4733)
    events = TelephoneEvents()
    keys = [
        events.feed(rng.getrandbits(32), rng.randbytes(rng.choice((4, 8, 16))))
        for _ in range(10_000)
    ]
    assert not [k for k in keys if k is not None]


def test_packets_that_disagree_about_their_event_give_no_key() -> None:
    """Two packets at one timestamp with different codes, or a shrinking duration: no key."""
    events = TelephoneEvents()
    events.feed(800, bytes(DtmfEvent(1, duration=320)))
    assert events.feed(800, bytes(DtmfEvent(2, duration=480))) is None
    events.feed(1600, bytes(DtmfEvent(3, duration=640)))
    assert events.feed(1600, bytes(DtmfEvent(3, duration=320))) is None


def test_a_long_event_split_into_segments_is_one_key() -> None:
    """RFC 4733 §2.5.2.3: a press longer than the 16-bit duration goes on in a new segment
    whose timestamp is the old one plus its duration; still one key."""
    events = TelephoneEvents()
    keys = [events.feed(10_000, bytes(DtmfEvent(5, duration=d))) for d in (160, 32_000, 65_535)]
    keys += [events.feed(10_000 + 65_535, bytes(DtmfEvent(5, duration=d))) for d in (160, 320)]
    assert [k for k in keys if k] == ["5"]
    assert press(events, "5", 200_000) == ["5"]  # a later, separate press of the same key
