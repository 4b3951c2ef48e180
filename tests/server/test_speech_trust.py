"""Trustworthy speech end to end: rejection, min_confidence, engines, open transcripts.

Through the real server: the SDK's prompt, the worker processes, the caller's synthesised
voice. ``speech_min_confidence`` and ``speech_engine`` are relaykit extensions of
``collect.speech`` (the v2 SDK never sends them).
"""

from __future__ import annotations

import pytest

from relaykit import Call
from relaykit.media.whisper import whisper_available
from tests.helpers import outcome

pytestmark = pytest.mark.asyncio

MENU = "Say sales, support or billing"
HINTS = ["sales", "support", "billing"]


async def _ivr_result(server, run_ivr, prompt, said):
    async def ivr(call: Call):
        await call.answer()
        return await prompt(call)

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.wait_listening()
    await caller.say(said)
    return await outcome(outcomes)


async def test_a_word_off_the_menu_is_no_match_not_a_menu_word(server, run_ivr):
    result = await _ivr_result(
        server, run_ivr, lambda call: call.prompt_tts("speech", MENU, speech_hints=HINTS), "pizza"
    )
    assert (result.prompt_type, result.result) == ("no_match", None)
    assert not result.successful


async def test_min_confidence_per_prompt_turns_a_result_into_no_match(server, run_ivr):
    """The same answer is a result at the default threshold and no_match at 100."""
    thresholds = iter([None, 100])

    async def ivr(call: Call):
        await call.answer()
        return await call.prompt_tts(
            "speech", MENU, speech_hints=HINTS, speech_min_confidence=next(thresholds)
        )

    outcomes = await run_ivr(ivr)
    results = []
    for _ in range(2):  # one call per prompt: the answer cannot fall between two prompts
        caller = await server.dial_in(context="office")
        await caller.wait_answered()
        await caller.wait_listening()
        await caller.say("sales")
        results.append(await outcome(outcomes))
        await caller.hangup()
    heard, strict = results
    assert (heard.prompt_type, heard.result) == ("speech", "sales")
    assert 50 <= heard.confidence < 100
    assert strict.prompt_type == "no_match"


async def test_an_open_prompt_returns_a_transcript(server, run_ivr):
    """No hints: Whisper (or pocketsphinx's open vocabulary without the extra) transcribes."""
    result = await _ivr_result(
        server,
        run_ivr,
        lambda call: call.prompt_tts("speech", "How can I help?", end_silence_timeout=0.8),
        "I lost my credit card",
    )
    assert result.prompt_type == "speech"
    assert "card" in result.result.split()
    assert 0 <= result.confidence <= 100


@pytest.mark.skipif(not whisper_available(), reason="relaykit[whisper] missing")
async def test_a_prompt_can_ask_for_whisper_by_name(server, run_ivr):
    result = await _ivr_result(
        server,
        run_ivr,
        lambda call: call.prompt_tts(
            "speech", "Your account number?", speech_engine="whisper", speech_hints=["1234"]
        ),
        "please cancel my subscription",
    )
    assert result.prompt_type == "speech"
    assert "subscription" in result.result.split()


async def test_an_unknown_engine_is_a_clear_error(server, run_ivr):
    async def ivr(call: Call):
        await call.answer()
        return await call.prompt_tts_async("speech", MENU, speech_engine="google")  # type: ignore[arg-type]

    outcomes = await run_ivr(ivr)
    await server.dial_in(context="office")
    action = await outcome(outcomes)
    assert action.completed and not action.result.successful
    message = action.result.event.payload["message"]
    assert "collect.speech.engine" in message and "pocketsphinx" in message


async def test_an_unsupported_language_names_the_languages_there_are(server, run_ivr):
    async def ivr(call: Call):
        await call.answer()
        return await call.prompt_tts_async("speech", MENU, speech_language="es-ES")

    outcomes = await run_ivr(ivr)
    await server.dial_in(context="office")
    action = await outcome(outcomes)
    message = action.result.event.payload["message"]
    assert "es-ES" in message and "en-US" in message
