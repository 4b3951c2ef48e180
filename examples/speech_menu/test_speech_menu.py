"""The speech menu, called by relaykit's virtual caller: speech, keys, and a recorded greeting."""

import pytest
from speech_menu import SpeechMenu

pytestmark = pytest.mark.asyncio


async def test_saying_sales_connects_to_sales(relay_server, relay_ivr):
    """The recorded greeting is recognised, then "sales" spoken by the caller is understood."""
    await relay_ivr(SpeechMenu)
    call = await relay_server.dial_in(context="menu")
    # an audio file: expect_prompt runs the speech recogniser on the recording
    await call.expect_prompt(contains="Thank you for calling Acme")
    await call.expect_prompt(contains="say sales or support")
    await call.say("sales")
    await call.expect_prompt(contains="connecting you to sales")
    await call.expect_hangup()


async def test_pressing_2_connects_to_support(relay_server, relay_call, relay_ivr):
    """Keys work in the same prompt: 2 means support."""
    await relay_ivr(SpeechMenu)
    call = await relay_call("menu")  # dialled in and answered
    await call.expect_prompt(contains="or press 1")
    await call.press("2")
    await call.expect_prompt(contains="connecting you to support")
    await call.expect_hangup()


@pytest.mark.relaykit(fast=True)  # ~25 s of call time in well under a second
async def test_silence_gets_a_second_chance_then_goodbye(relay_server, relay_ivr):
    """A silent caller hears the menu twice, then goodbye; the transcript tells the story."""
    await relay_ivr(SpeechMenu)
    call = await relay_server.dial_in(context="menu")
    await call.expect_prompt(contains="say sales or support")
    await call.expect_prompt(contains="did not understand", timeout=15)
    await call.expect_prompt(contains="say sales or support")
    await call.expect_prompt(contains="call again later", timeout=15)
    await call.expect_hangup()
    results = [e.text for e in call.transcript if e.text.startswith("prompt ends")]
    assert len(results) == 2 and all("no_input" in text for text in results)
