"""Speech and both-mode prompts end to end: the caller speaks with our TTS voice."""

from __future__ import annotations

import asyncio

import pytest

from relaykit import Call
from tests.helpers import WAIT, outcome

pytestmark = pytest.mark.asyncio

MENU = "Say sales or support"


async def _ivr_result(server, run_ivr, prompt, script):
    async def ivr(call: Call):
        await call.answer()
        return await prompt(call)

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await script(caller)
    return await outcome(outcomes), caller


def _say_once_the_prompt_plays(text):
    """The caller's script: wait until the prompt is heard (its TTS may take a while on a
    loaded machine), then speak over it."""

    async def script(caller):
        await caller.expect_prompt("welcome", timeout=WAIT)
        await caller.say(text)

    return script


async def test_speech_with_hints_recognises_the_menu_word(server, run_ivr):
    """'sales' spoken by the caller comes back as speech 'sales' with a 0-100 confidence."""
    result, _caller = await _ivr_result(
        server,
        run_ivr,
        lambda call: call.prompt_tts("speech", MENU, speech_hints=["sales", "support"]),
        lambda caller: caller.say("sales"),
    )
    assert result.successful
    assert (result.prompt_type, result.result, result.terminator) == ("speech", "sales", None)
    assert 0 <= result.confidence <= 100
    assert result.reason == "end_silence"


async def test_speech_recognises_digits_spoken_with_digit_hints(server, run_ivr):
    """A spoken PIN with a digit-string hint comes back as digits."""
    result, _ = await _ivr_result(
        server,
        run_ivr,
        lambda call: call.prompt_tts("speech", "Say your PIN", speech_hints=["1234"]),
        lambda caller: caller.say("four two one"),
    )
    assert (result.prompt_type, result.result) == ("speech", "421")


async def test_speech_without_hints_never_hangs(server, run_ivr):
    """Free speech gives a speech result or no_match, never nothing."""
    result, _ = await _ivr_result(
        server,
        run_ivr,
        lambda call: call.prompt_tts("speech", "Tell me something"),
        lambda caller: caller.say("the weather is lovely in the garden today"),
    )
    assert result.prompt_type in ("speech", "no_match")


async def test_silence_on_a_speech_prompt_is_no_input(server, run_ivr):
    """Nobody speaks: no_input after the initial timeout."""
    result, _ = await _ivr_result(
        server,
        run_ivr,
        lambda call: call.prompt_tts("speech", MENU, initial_timeout=0.5),
        lambda caller: caller.silence(0.1),
    )
    assert (result.prompt_type, result.reason) == ("no_input", "initial_timeout")


async def test_speech_timeout_ends_a_long_utterance(server, run_ivr):
    """speech_timeout caps the utterance; the reason says so."""
    result, _ = await _ivr_result(
        server,
        run_ivr,
        lambda call: call.prompt_tts(
            "speech", MENU, speech_timeout=0.6, speech_hints=["sales", "support"]
        ),
        lambda caller: caller.say("support support support support support support"),
    )
    assert result.reason == "speech_timeout"
    assert result.prompt_type in ("speech", "no_match")


async def test_both_mode_won_by_digits(server, run_ivr):
    """In both mode a key press wins and ends speech collection."""
    result, _ = await _ivr_result(
        server,
        run_ivr,
        lambda call: call.prompt_tts("both", MENU, digits_max=1, speech_hints=["sales"]),
        lambda caller: caller.press("2"),
    )
    assert (result.prompt_type, result.result) == ("digit", "2")


async def test_both_mode_won_by_speech(server, run_ivr):
    """In both mode speech completes first when the caller speaks."""
    result, _ = await _ivr_result(
        server,
        run_ivr,
        lambda call: call.prompt_tts("both", MENU, digits_max=1, speech_hints=["sales", "support"]),
        lambda caller: caller.say("support"),
    )
    assert (result.prompt_type, result.result) == ("speech", "support")


async def test_speech_start_barges_in_on_the_prompt(server, run_ivr):
    """Speaking during the prompt stops its media."""
    long_prompt = "Welcome. " * 12 + MENU
    result, caller = await _ivr_result(
        server,
        run_ivr,
        lambda call: call.prompt_tts("speech", long_prompt, speech_hints=["sales", "support"]),
        _say_once_the_prompt_plays("sales"),
    )
    assert result.result == "sales"
    (prompt,) = caller.heard
    assert prompt.end is not None and prompt.end < 3.0, "the long prompt was cut short"
    assert any("barge-in" in e.text for e in caller.transcript)


async def test_unsupported_speech_language_is_a_clear_error(server, run_ivr):
    """speech_language it-IT is refused with a message naming the field."""

    async def ivr(call: Call):
        await call.answer()
        action = await call.prompt_tts_async("speech", MENU, speech_language="it-IT")
        return action

    outcomes = await run_ivr(ivr)
    await server.dial_in(context="office")
    action = await outcome(outcomes)
    assert action.completed and not action.result.successful
    assert "collect.speech.language" in action.result.event.payload["message"]


async def test_partial_results_arrive_in_order_before_the_final(server, run_ivr):
    """With partial_results, digit partials grow key by key and never complete the prompt."""
    partials: list[dict] = []

    async def ivr(call: Call):
        await call.answer()
        action = await call.prompt_tts_async(
            "digits", "PIN please", digits_max=3, partial_results=True
        )
        action.on_partial = partials.append
        streamed = [p async for p in action.partials()]
        await action.wait(WAIT)
        return action, streamed

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.press("123")
    action, streamed = await outcome(outcomes)
    assert action.result.result == "123"
    assert [p["params"]["digits"] for p in streamed] == ["1", "12", "123"]
    assert [p["params"]["digits"] for p in partials] == ["1", "12", "123"]


async def test_start_of_input_arrives_once_when_asked(server, run_ivr):
    """send_start_of_input gives exactly one start_of_input event before the final."""
    seen: list[str] = []

    async def ivr(call: Call):
        call.on("prompt", lambda p: seen.append(p["result"]["type"]))
        await call.answer()
        return await call.prompt_tts("digits", "PIN please", digits_max=2, send_start_of_input=True)

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.press("45")
    result = await outcome(outcomes)
    assert result.result == "45"
    assert seen == ["start_of_input", "digit"]


async def test_stop_after_speech_was_heard_keeps_the_partial_text(server, run_ivr):
    """Stopping mid-utterance with partial results keeps the text heard so far."""

    async def ivr(call: Call):
        await call.answer()
        action = await call.prompt_tts_async(
            "speech",
            MENU,
            partial_results=True,
            end_silence_timeout=5,
            speech_hints=["sales", "support"],
        )
        async for _partial in action.partials():
            break
        await action.stop()
        return action

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    speaking = asyncio.ensure_future(caller.say("support"))
    action = await outcome(outcomes)
    await speaking
    result = action.result
    assert (result.prompt_type, result.reason) == ("no_input", "stopped")
    assert result.result == "support"
