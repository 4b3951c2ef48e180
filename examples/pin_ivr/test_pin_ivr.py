"""The PIN IVR, called by relaykit's virtual caller (fixtures from relaykit's pytest plugin)."""

import pytest
from pin_ivr import PinIvr

pytestmark = pytest.mark.asyncio


async def test_the_right_pin_is_accepted(relay_server, relay_ivr):
    """427# gets "PIN is correct", then the IVR hangs up."""
    await relay_ivr(PinIvr)
    call = await relay_server.dial_in(context="office")
    await call.expect_prompt(contains="PIN", timeout=5)
    await call.press("427#")
    await call.expect_prompt(contains="your PIN is correct")
    assert await call.expect_hangup() == "hangup"


async def test_a_wrong_pin_is_asked_again(relay_server, relay_ivr):
    """A wrong PIN is refused and the PIN is asked for again; the second try works."""
    await relay_ivr(PinIvr)
    call = await relay_server.dial_in(context="office")
    await call.expect_prompt(contains="enter your PIN")
    await call.press("999#")
    await call.expect_prompt(contains="not correct")
    await call.expect_prompt(contains="enter your PIN")
    await call.press("427#")
    await call.expect_prompt(contains="correct. Goodbye")
    await call.expect_hangup()


@pytest.mark.relaykit(fast=True)  # ~25 s of call time in well under a second
async def test_three_silent_tries_end_the_call(relay_server, relay_ivr):
    """A caller who presses nothing hears the PIN prompt three times, then goodbye."""
    await relay_ivr(PinIvr)
    call = await relay_server.dial_in(context="office")
    for _ in range(3):
        await call.expect_prompt(contains="enter your PIN")
        await call.expect_prompt(contains="did not get any keys", timeout=10)
    await call.expect_prompt(contains="Too many attempts")
    await call.expect_hangup()
    texts = [h.text for h in call.heard]
    assert texts.count("Please enter your PIN, then press pound.") == 3
