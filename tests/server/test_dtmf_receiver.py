"""Issue 12's keys that were not heard, end to end: an IVR's digit prompt, the real server, a
caller sending generated tones with twist and at low level."""

from __future__ import annotations

import pytest

from relaykit import Call
from relaykit.media.dtmf import generate_dtmf
from tests.helpers import outcome

pytestmark = pytest.mark.asyncio


async def _digits_heard(server, run_ivr, samples):
    async def ivr(call: Call):
        await call.answer()
        return await call.prompt_tts(
            "digits", "Enter your code, then press pound", digits_max=10, digits_terminators="#"
        )

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.send_audio(samples)
    result = await outcome(outcomes)
    return result.prompt_type, result.result, result.terminator


@pytest.mark.parametrize("twist_db", [-8.0, -6.0, 4.0])
async def test_keys_with_twist_in_the_window_are_heard(server, run_ivr, twist_db):
    """The high group 6 dB (and 8 dB) weaker or 4 dB stronger than the low group: every key."""
    keys = generate_dtmf("1357*9#", tone_ms=80, gap_ms=80, level_dbfs=-14.0, twist_db=twist_db)
    assert await _digits_heard(server, run_ivr, keys) == ("digit", "1357*9", "#")


@pytest.mark.parametrize("twist_db", [0.0, -3.0])
async def test_a_low_level_key_string_is_heard_key_for_key(server, run_ivr, twist_db):
    """0*0 at -33 dBFS per tone (-30 dBFS in all), also with the high group 3 dB down."""
    keys = generate_dtmf("0*0#", tone_ms=80, gap_ms=80, level_dbfs=-33.0, twist_db=twist_db)
    assert await _digits_heard(server, run_ivr, keys) == ("digit", "0*0", "#")
