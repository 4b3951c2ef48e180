"""Phones calling in, played by SIPp (Debian's sip-tester): real SIP, real RTP, RFC 2833 keys."""

from __future__ import annotations

import pytest

from relaykit import Call
from tests.helpers import outcome
from tests.sip.peers import run_sipp

pytestmark = pytest.mark.asyncio

PIN_PROMPT = "Please enter your 3 digit PIN, then press pound"


async def test_sipp_call_completes_a_pin_prompt_with_rfc2833_keys(server, run_ivr, tmp_path):
    """SIPp calls, presses 4 2 7 # as RFC 2833 events; the IVR gets 427 and hangs up (BYE)."""

    async def ivr(call: Call):
        await call.answer()
        result = await call.prompt_tts("digits", PIN_PROMPT, digits_max=8, digits_terminators="#")
        await call.play_tts(f"You entered {' '.join(result.result or '')}")
        await call.hangup()
        return result

    outcomes = await run_ivr(ivr)
    run = await run_sipp("uac_pin_rfc2833.xml", server.sip.port, tmp_path)
    result = await outcome(outcomes)
    assert run.returncode == 0, run.explain()
    assert (result.result, result.terminator, result.reason) == ("427", "#", "terminator")


async def test_caller_bye_ends_the_prompt_with_hangup(server, run_ivr, tmp_path):
    """SIPp hangs up during the prompt: the prompt ends in error/hangup, end_reason hangup."""

    async def ivr(call: Call):
        await call.answer()
        result = await call.prompt_tts("digits", PIN_PROMPT * 3, digits_max=3)
        await call.wait_for("ended", timeout=5)
        return result, call.end_reason

    outcomes = await run_ivr(ivr)
    run = await run_sipp("uac_caller_hangs_up.xml", server.sip.port, tmp_path)
    result, end_reason = await outcome(outcomes)
    assert run.returncode == 0, run.explain()
    assert (result.prompt_type, result.reason, result.successful) == ("error", "hangup", False)
    assert end_reason == "hangup"


async def test_cancel_before_answer_ends_the_call_with_cancel(server, run_ivr, tmp_path):
    """SIPp cancels while ringing: 200 to CANCEL, 487 to INVITE; the IVR sees end_reason cancel."""

    async def ivr(call: Call):
        await call.wait_for("ended", timeout=10)
        return call.state, call.end_reason

    outcomes = await run_ivr(ivr)
    run = await run_sipp("uac_cancel.xml", server.sip.port, tmp_path)
    assert run.returncode == 0, run.explain()
    assert await outcome(outcomes) == ("ended", "cancel")


async def test_ivr_ending_an_unanswered_call_as_busy_sends_486(server, run_ivr, tmp_path):
    """calling.end with reason busy before the answer is a 486 Busy Here to the phone."""

    async def ivr(call: Call):
        result = await call.hangup("busy")
        return result.reason

    outcomes = await run_ivr(ivr)
    run = await run_sipp("uac_busy.xml", server.sip.port, tmp_path)
    assert run.returncode == 0, run.explain()
    assert await outcome(outcomes) == "busy"
