"""Call.ask: a prompt with min_digits, a validity check and retries, against a virtual caller."""

from __future__ import annotations

import asyncio

import pytest

from relaykit import Call
from tests.helpers import WAIT, outcome

pytestmark = pytest.mark.asyncio

PIN = "Please enter your four digit PIN, then press pound."
INVALID = "That PIN is not valid."


def pin_ivr(**options):
    async def ivr(call: Call):
        await call.answer()
        result = await call.ask(
            "digits",
            PIN,
            digits_max=4,
            digits_terminators="#",
            initial_timeout=2,
            invalid=INVALID,
            **options,
        )
        await call.hangup()
        return result

    return ivr


async def test_too_short_then_refused_then_valid_input_is_accepted_on_the_third_try(
    server, run_ivr
):
    """min_digits refuses 12#, the pattern refuses 9999#, 4271# passes; INVALID plays
    after each refused try and the PIN prompt each time before."""
    outcomes = await run_ivr(pin_ivr(min_digits=4, valid=r"4\d{3}", tries=3))
    caller = await server.dial_in(context="office")
    for keys in ("12#", "9999#", "4271#"):
        await caller.expect_prompt(contains="four digit PIN")
        await caller.press(keys)
        if keys != "4271#":
            await caller.expect_prompt(contains=INVALID)
    result = await outcome(outcomes)
    assert (result.successful, result.prompt_type, result.result) == (True, "digit", "4271")
    assert (result.terminator, result.reason, result.tries) == ("", "max_digits", 3)
    assert [a.result for a in result.attempts] == ["12", "9999", "4271"]
    assert [h.text for h in caller.heard if h.kind == "tts"] == [PIN, INVALID, PIN, INVALID, PIN]


async def test_the_last_refused_try_is_a_final_no_match_with_the_reason(server, run_ivr):
    """Every try fails: no_match, reason min_digits, the input kept; INVALID is not played
    after the last try."""
    outcomes = await run_ivr(pin_ivr(min_digits=4, tries=2))
    caller = await server.dial_in(context="office")
    for keys in ("1#", "23#"):
        await caller.expect_prompt(contains="four digit PIN")
        await caller.press(keys)
    result = await outcome(outcomes)
    assert not result.successful
    assert (result.prompt_type, result.reason, result.result) == ("no_match", "min_digits", "23")
    assert (result.event.name, result.tries) == ("no_match", 2)
    await caller.expect_hangup()
    assert [h.text for h in caller.heard if h.kind == "tts"] == [PIN, INVALID, PIN]


async def test_no_input_counts_as_a_failed_try(server, run_ivr):
    outcomes = await run_ivr(pin_ivr(tries=2))
    caller = await server.dial_in(context="office")
    await caller.expect_prompt(contains=INVALID, timeout=10)  # after the 2 s of silence
    await caller.expect_prompt(contains="four digit PIN")
    await caller.press("1234#")
    result = await outcome(outcomes)
    assert result.successful and result.result == "1234"
    assert [a.prompt_type for a in result.attempts] == ["no_input", "digit"]


async def test_a_function_checks_recognised_speech(server, run_ivr):
    async def ivr(call: Call):
        await call.answer()
        return await call.ask(
            "speech",
            "Say sales or support.",
            speech_hints=["sales", "support", "billing"],
            valid=lambda text: text in ("sales", "support"),
            tries=2,
            invalid="Sorry, we only have sales and support.",
        )

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.expect_prompt(contains="say sales or support")
    await caller.wait_listening()
    await caller.say("billing")
    # the answer waits for the recogniser, which a busy machine may keep for a while
    await caller.expect_prompt(contains="we only have sales and support", timeout=WAIT)
    await caller.expect_prompt(contains="say sales or support")
    await caller.wait_listening()
    await caller.say("support")
    result = await outcome(outcomes)
    assert (result.successful, result.prompt_type, result.result) == (True, "speech", "support")
    assert [a.result for a in result.attempts] == ["billing", "support"]


async def test_a_hang_up_stops_the_tries_at_once(server, run_ivr):
    outcomes = await run_ivr(pin_ivr(min_digits=4, tries=5))
    caller = await server.dial_in(context="office")
    await caller.expect_prompt(contains="four digit PIN")
    await caller.hangup()
    result = await asyncio.wait_for(outcome(outcomes), WAIT)
    assert not result.successful and result.tries == 1


async def test_options_that_cannot_work_are_refused_before_anything_is_sent(server, run_ivr):
    async def ivr(call: Call):
        await call.answer()
        errors = []
        for options in (
            {"tries": 0},
            {"min_digits": 5, "digits_max": 4},
            {"min_digits": 0},
            {"valid": "(unclosed"},
            {"invalid": [{"type": "nothing"}]},
        ):
            with pytest.raises(ValueError) as info:
                await call.ask("digits", "Hi", **options)
            errors.append(str(info.value))
        with pytest.raises(ValueError, match="min_digits needs prompt_type"):
            await call.ask("speech", "Hi", min_digits=2)
        await call.hangup()
        return errors

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    errors = await outcome(outcomes)
    assert errors[0].startswith("tries must be a whole number")
    assert errors[1] == "min_digits (5) is more than digits_max (4)"
    assert errors[3].startswith("valid is not a regular expression")
    assert "unknown media type 'nothing'" in errors[4]
    await caller.expect_hangup()
    assert caller.heard == []  # nothing was played: every check came first
