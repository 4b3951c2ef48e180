"""The fast-forwarding clock gives the same conversation as real time (30 s of call audio)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CONVERSATION = Path(__file__).with_name("conversation.py")
FRAME = 0.02


def actions(log: dict) -> list[dict]:
    """Each event of the call's log without its ids and times, speech confidences left out
    (compared apart).

    espeak-ng keeps a little state between syntheses, so the caller's voice is not always
    bit-identical from run to run and the recogniser's confidence may move by a point.
    """
    kept = []
    for event in log["events"]:
        ids = ("call_id", "node_id", "control_id", "at", "end")
        event = {k: v for k, v in event.items() if k not in ids}
        if isinstance(event.get("params"), dict):
            event["params"] = {k: v for k, v in event["params"].items() if k != "confidence"}
        kept.append(event)
    return kept


def of(log: dict, kind: str) -> list[dict]:
    return [e for e in log["events"] if e["kind"] == kind]


def run_conversation(pytester: pytest.Pytester, monkeypatch, *args: str) -> dict:
    """Run conversation.py in a fresh pytest process; return the call's event log."""
    out = pytester.path / f"log{len(args)}.json"
    monkeypatch.setenv("CONVERSATION_OUT", str(out))
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=1)
    return json.loads(out.read_text())


def test_the_fast_clock_gives_the_same_conversation_as_real_time(pytester, monkeypatch):
    """Same prompts, keys, speech, results and states in the same order; times within a frame."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_conversation=CONVERSATION.read_text())
    real = run_conversation(pytester, monkeypatch)
    fast = run_conversation(pytester, monkeypatch, "--relaykit-fast")

    assert real["duration"] > 25  # a long conversation, really played in real time
    assert actions(real) == actions(fast)
    for r, f in zip(real["events"], fast["events"], strict=True):
        assert f["at"] == pytest.approx(r["at"], abs=1.5 * FRAME), (r, f)
    for r, f in zip(of(real, "prompt.ended"), of(fast, "prompt.ended"), strict=True):
        r_conf = (r["params"] or {}).get("confidence", 0)
        f_conf = (f["params"] or {}).get("confidence", 0)
        assert r_conf == pytest.approx(f_conf, abs=2)
    assert [r["result_type"] for r in of(real, "prompt.ended")] == [
        "no_input",
        "digit",
        "digit",
        "no_match",
        "speech",
    ]
    keys = [k["key"] for k in of(real, "key.detected")]
    assert keys == list("111#427#") == [k["key"] for k in of(fast, "key.detected")]
