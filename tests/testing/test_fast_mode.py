"""The fast-forwarding clock gives the same conversation as real time (30 s of call audio)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

CONVERSATION = Path(__file__).with_name("conversation.py")
FRAME = 0.02


def actions(log: dict) -> list[tuple[str, str]]:
    """(actor, text) of each transcript entry; speech confidences left out (compared apart).

    espeak-ng keeps a little state between syntheses, so the caller's voice is not always
    bit-identical from run to run and the recogniser's confidence may move by a point.
    """
    return [
        (e["actor"], re.sub(r"'confidence': [0-9.]+", "'confidence': _", e["text"]))
        for e in log["transcript"]
    ]


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
    for r, f in zip(real["transcript"], fast["transcript"], strict=True):
        assert f["at"] == pytest.approx(r["at"], abs=1.5 * FRAME), (r, f)
    for r, f in zip(real["results"], fast["results"], strict=True):
        r_params, f_params = dict(r.get("params", {})), dict(f.get("params", {}))
        assert r_params.pop("confidence", 0) == pytest.approx(f_params.pop("confidence", 0), abs=2)
        assert (r["type"], r["reason"], r_params) == (f["type"], f["reason"], f_params)
    assert [r["type"] for r in real["results"]] == [
        "no_input",
        "digit",
        "digit",
        "no_match",
        "speech",
    ]
    assert [k["key"] for k in real["keys"]] == list("111#427#") == [k["key"] for k in fast["keys"]]
