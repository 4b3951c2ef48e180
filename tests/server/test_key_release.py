"""A key's tone does not leak into the next prompt: PIN then a speech question, end to end.

The ``#`` ends the digit prompt about 40 ms into its tone; the IVR asks its speech question at
once, while the caller still holds the key. The rest of the tone must not count as speech.
"""

from __future__ import annotations

import pytest

from relaykit import Call
from tests.helpers import outcome

pytestmark = pytest.mark.asyncio

TONES_MS = [100, 250, 500]
QUESTION = "Say sales or support"


async def _pin_then_question(server, run_ivr, script):
    async def ivr(call: Call):
        await call.answer()
        pin = await call.prompt_tts(
            "digits", "Enter your code, then press pound", digits_max=8, digits_terminators="#"
        )
        answer = await call.prompt_tts(
            "speech", QUESTION, speech_hints=["sales", "support"], initial_timeout=1.0
        )
        return pin, answer

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await script(caller)
    (pin, answer) = await outcome(outcomes)
    assert (pin.prompt_type, pin.result, pin.terminator) == ("digit", "12", "#")
    return answer, caller


def _question_began_during_the_pound_tone(caller) -> bool:
    (press,) = [a for a in caller.actions if a.kind == "press"]
    pound_tone_end = press.end - 0.1  # the caller's press ends with a 100 ms gap
    (question,) = [h for h in caller.heard if h.text == QUESTION]
    return question.start < pound_tone_end


@pytest.mark.parametrize("tone_ms", TONES_MS)
async def test_silence_after_a_held_pound_key_is_no_input(server, run_ivr, tone_ms):
    """12# with tones of 100-500 ms, then silence: the speech question ends in no_input."""

    async def script(caller):
        await caller.press("12#", tone_ms=tone_ms)

    answer, caller = await _pin_then_question(server, run_ivr, script)
    assert (answer.prompt_type, answer.reason) == ("no_input", "initial_timeout")
    if tone_ms >= 500:  # the IVR answers well within 400 ms: the tone did reach the question
        assert _question_began_during_the_pound_tone(caller)
    (question,) = [h for h in caller.heard if h.text == QUESTION]
    barge_ins = [e for e in caller.transcript if "barge-in" in e.text and e.at >= question.start]
    assert barge_ins == [], "the question was cut short"


@pytest.mark.parametrize("tone_ms", TONES_MS)
async def test_a_word_after_a_held_pound_key_is_recognised(server, run_ivr, tone_ms):
    """12# with tones of 100-500 ms, then 'sales': the speech question hears the word."""

    async def script(caller):
        await caller.press("12#", tone_ms=tone_ms)
        await caller.say("sales")

    answer, caller = await _pin_then_question(server, run_ivr, script)
    assert (answer.prompt_type, answer.result) == ("speech", "sales")
    assert answer.reason == "end_silence"
    if tone_ms >= 500:
        assert _question_began_during_the_pound_tone(caller)
    # the question was cut short by the word, not by the tone before it
    (question,) = [h for h in caller.heard if h.text == QUESTION]
    (say,) = [a for a in caller.actions if a.kind == "say"]
    barge_ins = [e.at for e in caller.transcript if "barge-in" in e.text and e.at >= question.start]
    assert barge_ins and barge_ins[0] >= say.start
