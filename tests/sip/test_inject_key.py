"""MediaEngine.inject_key: out-of-band keys reach prompts like detected ones, once per press."""

from __future__ import annotations

from relaykit.media.collector import PromptResultData
from relaykit.media.dtmf import generate_dtmf
from relaykit.media.engine import CollectOutputEvent, KeyDetected, MediaEngine
from relaykit.protocol.calling import Collect, DigitsCollect


def prompt_engine() -> MediaEngine:
    engine = MediaEngine()
    engine.add_call("c")
    collect = Collect(digits=DigitsCollect(max=5, terminators="#", digit_timeout=5.0))
    engine.start_prompt("c", "p", [], collect)
    return engine


def ticks(engine: MediaEngine, n: int) -> list:
    events = []
    for _ in range(n):
        events += engine.tick()
    return events


def result(events: list) -> PromptResultData | None:
    done = [e.output for e in events if isinstance(e, CollectOutputEvent)]
    finals = [o for o in done if isinstance(o, PromptResultData)]
    return finals[0] if finals else None


def test_injected_keys_complete_a_prompt():
    engine = prompt_engine()
    events = []
    for key in "42#":
        events += engine.inject_key("c", key)
        events += ticks(engine, 5)
    final = result(events)
    assert final is not None and final.params == {"digits": "42", "terminator": "#"}
    assert [e.key for e in events if isinstance(e, KeyDetected)] == ["4", "2", "#"]


def test_a_key_the_tone_detector_just_heard_is_not_injected_again():
    """In-band first, RFC 4733 copy 100 ms later: counted once; a later press counts again."""
    engine = prompt_engine()
    call = engine.get_call("c")
    assert call is not None
    call.push_inbound(generate_dtmf("4", tone_ms=100, gap_ms=60))
    ticks(engine, 5)  # the tone detector reports 4 after 30-40 ms
    assert [k for _, k in call.keys] == ["4"]
    ticks(engine, 3)
    assert engine.inject_key("c", "4") == []
    assert [e.key for e in engine.inject_key("c", "2") if isinstance(e, KeyDetected)] == ["2"]
    ticks(engine, 15)  # 300 ms later the same key is a new press
    assert [e.key for e in engine.inject_key("c", "4") if isinstance(e, KeyDetected)] == ["4"]
    assert [k for _, k in call.keys] == ["4", "2", "4"]


def test_injecting_into_an_unknown_call_does_nothing():
    assert MediaEngine().inject_key("nope", "1") == []
