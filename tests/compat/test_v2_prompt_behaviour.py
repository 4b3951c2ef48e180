"""What a v2 app observes from prompts and plays: no input, async control, hang-ups, speech."""

from __future__ import annotations

import asyncio
import time

import pytest

from relaykit.testing.caller import VirtualCaller
from tests.helpers import WAIT

pytestmark = [pytest.mark.compat, pytest.mark.asyncio]


async def keys_detected(caller: VirtualCaller, count: int, timeout: float = WAIT) -> None:
    """Wait until the server has detected ``count`` keys on this call."""
    deadline = time.monotonic() + timeout
    while sum(e.text.startswith("detects key") for e in caller.transcript) < count:
        assert time.monotonic() < deadline, f"keys not detected: {caller.transcript}"
        await asyncio.sleep(0.02)


async def test_prompt_ringtone_with_no_input_gives_no_input(server, wire, v2_app):
    """Nobody presses: after the 1 s ringtone and the 0.5 s initial timeout, no_input."""
    app = await v2_app("ringtone_menu.py")
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    request = await wire.wait_prompt_playing(caller.call_id)
    assert request.execute_params["play"] == [
        {"type": "ringtone", "params": {"name": "us", "duration": 1.0}}
    ]
    assert request.execute_params["collect"] == {"digits": {"max": 4}, "initial_timeout": 0.5}

    result = await app.wait_event("result")
    assert result["successful"] is False
    assert (result["prompt_type"], result["result"], result["terminator"]) == (
        "no_input",
        None,
        None,
    )
    assert result["event_name"] == "no_input"
    assert (await app.wait_event("played"))["successful"] is True
    await caller.wait_for_state("ended")
    (ringtone, goodbye) = caller.heard
    assert (ringtone.kind, ringtone.label) == ("ringtone", "us")
    assert ringtone.end - ringtone.start == pytest.approx(1.0, abs=0.05)
    assert goodbye.text == "Goodbye."
    (collect,) = wire.events("calling.call.collect", call_id=caller.call_id)
    assert collect.event["result"]["type"] == "no_input"
    wire.assert_conformant()


async def test_prompt_async_volume_and_stop(server, wire, v2_app):
    """prompt_tts_async runs; volume(-6) and stop() are acknowledged; the action completes."""
    app = await v2_app("async_prompt.py")
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    started = await app.wait_event("started")
    assert (started["completed"], started["state"], started["prompt_type"]) == (
        False,
        "",
        "digits",
    )
    volume = await app.wait_event("volume")
    assert (volume["cls"], volume["successful"]) == ("PromptVolumeResult", True)
    assert (await app.wait_event("volume_out_of_range"))["successful"] is False

    await wire.wait_event("calling.call.play", control_id=started["control_id"], state="playing")
    await caller.press("12")
    await keys_detected(caller, 2)
    await app.go()
    stopped = await app.wait_event("stopped")
    assert (stopped["cls"], stopped["successful"]) == ("StopResult", True)
    result = await app.wait_event("result")
    assert (result["completed"], result["state"]) == (True, "no_input")
    assert result["successful"] is False
    # v2 reads digits only from a "digit" result, so the two keys pressed before the stop are
    # lost to a v2 app (they are on the wire, below); relaykit's own SDK keeps them.
    assert (result["prompt_type"], result["result"]) == ("no_input", None)
    assert (await app.wait_event("stop_again"))["successful"] is False

    control_id = started["control_id"]
    volumes = wire.executes("calling.play_and_collect.volume", call_id=caller.call_id)
    assert [v.execute_params["volume"] for v in volumes] == [-6.0, 100.0]
    assert '"volume":-6.0' in volumes[0].raw
    assert wire.response_to(volumes[0]).relay_code == "200"
    refused = wire.response_to(volumes[1])
    assert refused.relay_code != "200" or "error" in refused.msg
    stops = wire.executes("calling.play_and_collect.stop", call_id=caller.call_id)
    assert stops[0].execute_params == {
        "node_id": stops[0].execute_params["node_id"],
        "call_id": caller.call_id,
        "control_id": control_id,
    }
    assert wire.response_to(stops[0]).relay_code == "200"
    (collect,) = wire.events("calling.call.collect", control_id=control_id)
    assert collect.seq > wire.response_to(stops[0]).seq
    assert collect.event["result"]["type"] == "no_input"
    assert collect.event["result"]["params"] == {"digits": "12", "terminator": ""}
    assert wire.response_to(stops[1]).relay_code != "200"
    wire.assert_conformant()


async def test_caller_hangup_during_a_blocking_prompt_returns_it(server, wire, v2_app):
    """The caller hangs up mid-prompt: the app's prompt() returns at once, unsuccessful."""
    app = await v2_app("hangup_during_prompt.py")
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    request = await wire.wait_prompt_playing(caller.call_id)
    await caller.press("12")
    await keys_detected(caller, 2)
    hung_up_at = time.monotonic()
    await caller.hangup()

    result = await app.wait_event("result", timeout=5)
    assert result["t"] - hung_up_at < 2.0, "prompt() returned late"
    assert result["successful"] is False
    assert (result["prompt_type"], result["result"]) == ("error", None)
    ended = await app.wait_event("ended_event")
    assert ended["end_reason"] == "hangup"
    assert (await app.wait_event("played_after_hangup"))["successful"] is False

    control_id = request.execute_params["control_id"]
    (collect,) = wire.events("calling.call.collect", control_id=control_id)
    assert collect.event["result"]["type"] == "error"
    assert collect.event["result"]["params"] == {"digits": "12", "terminator": ""}
    states = wire.events("calling.call.state", call_id=caller.call_id)
    assert [s.event["call_state"] for s in states] == ["answered", "ending", "ended"]
    # Causal order: the call is ending, so the prompt ends, then the call has ended.
    assert states[1].seq < collect.seq < states[2].seq
    wire.assert_conformant()


async def test_answer_after_the_caller_hung_up_is_unsuccessful(server, wire, v2_app):
    """§8.2.7: a late answer() must not report success for a call that is gone."""
    app = await v2_app("late_answer.py")
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    await app.wait_event("call")
    await caller.hangup()
    await wire.wait_event("calling.call.state", call_id=caller.call_id, call_state="ended")
    await app.go()
    answered = await app.wait_event("answered")
    assert answered["successful"] is False
    assert answered["state"] == "ended"
    result = await app.wait_event("result")
    assert result["successful"] is False
    # v2 may already know the call ended and send nothing; if it asks, the server refuses.
    for answer in wire.executes("calling.answer", call_id=caller.call_id):
        assert wire.response_to(answer).relay_code == "404"
    wire.assert_conformant()


async def test_play_methods_and_play_async_stop(server, wire, v2_app, audio_url):
    """play_tts, play_audio, play_silence, play_ringtone, play(list), play_tts_async + stop."""
    app = await v2_app("player.py", "all", audio_url)
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    for name in ("tts", "audio", "silence", "ringtone", "list"):
        play = await app.wait_event("play", name=name)
        assert (play["successful"], play["event_name"]) == (True, "finished"), play
    assert (await app.wait_event("play_async"))["completed"] is False
    stopped = await app.wait_event("play_stopped")
    assert stopped["stop"] is True
    # The server ends a stopped play with "finished", which v2 counts as a successful play.
    assert (stopped["completed"], stopped["state"], stopped["successful"]) == (
        True,
        "finished",
        True,
    )
    assert (await app.wait_event("hangup"))["successful"] is True
    await caller.wait_for_state("ended")

    heard = [(h.kind, h.label) for h in caller.heard]
    assert heard[:6] == [
        ("tts", "Welcome"),
        ("audio", audio_url),
        ("silence", "0.3 s"),
        ("ringtone", "us"),
        ("tts", "one"),
        ("silence", "0.2 s"),
    ]
    assert heard[6][0] == "tts"
    assert caller.heard[4].volume == -3.0
    plays = wire.executes("calling.play", call_id=caller.call_id)
    assert [p.execute_params["play"] for p in plays[:5]] == [
        [{"type": "tts", "params": {"text": "Welcome", "gender": "female"}}],
        [{"type": "audio", "params": {"url": audio_url}}],
        [{"type": "silence", "params": {"duration": 0.3}}],
        [{"type": "ringtone", "params": {"name": "us", "duration": 0.5}}],
        [
            {"type": "tts", "params": {"text": "one"}},
            {"type": "silence", "params": {"duration": 0.2}},
        ],
    ]
    assert "volume" not in plays[0].execute_params  # v2 omits play volume 0
    assert plays[4].execute_params["volume"] == -3.0
    wire.assert_conformant()


async def test_nested_media_form_plays_despite_v2_double_wrapping(server, wire, v2_app, audio_url):
    """v2 turns {'type': 'audio', 'params': {'url': u}} into params.params.url on the wire."""
    app = await v2_app("player.py", "nested", audio_url)
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    play = await app.wait_event("play", name="nested")
    (request,) = wire.executes("calling.play", call_id=caller.call_id)
    assert request.execute_params["play"] == [
        {"type": "audio", "params": {"params": {"url": audio_url}}}
    ]
    assert play["successful"] is True
    assert [(h.kind, h.label) for h in caller.heard] == [("audio", audio_url)]


async def test_prompt_audio_both_mode_won_by_speech(server, wire, v2_app, audio_url):
    """prompt_audio in "both" mode with hints; the caller says "sales": a speech result."""
    app = await v2_app("speech_menu.py", audio_url)
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    request = await wire.wait_prompt_playing(caller.call_id)
    assert request.execute_params["collect"] == {
        "digits": {"max": 1},
        "speech": {"hints": ["sales", "support"]},
        "initial_timeout": 5,
    }
    await caller.say("sales")
    result = await app.wait_event("result")
    assert result["successful"] is True
    assert (result["prompt_type"], result["result"], result["terminator"]) == (
        "speech",
        "sales",
        None,
    )
    assert isinstance(result["confidence"], int | float)
    assert 0 <= result["confidence"] <= 100
    wire.assert_conformant()
