"""A 30-second bank IVR conversation, run by tests in both clock modes (copied into pytester).

Greeting, a PIN prompt that times out, a wrong PIN, the right one, a speech menu that does not
understand "help" and then hears "balance", hold music, goodbye. On its own a test file: the
test writes the call's event log to $CONVERSATION_OUT.
"""

import json
import os

import pytest

from relaykit import Call, Consumer

PIN = "427"


class BankIvr(Consumer):
    contexts = ("bank",)

    async def on_incoming_call(self, call: Call) -> None:
        await call.answer()
        await call.play_tts("Welcome to Example Bank.")
        for _ in range(3):
            pin = await call.prompt_tts(
                "digits",
                "Please enter your PIN, then press pound.",
                digits_max=6,
                digits_terminators="#",
                initial_timeout=3.0,
            )
            if call.ended:
                return
            if pin.successful and pin.result == PIN:
                break
            await call.play_tts("Sorry, that did not work." if pin.successful else "No keys.")
        else:
            await call.hangup()
            return
        for _ in range(2):
            menu = await call.prompt_tts(
                "speech",
                "Say balance or transfer.",
                speech_hints=["balance", "transfer"],
                initial_timeout=3.0,
                end_silence_timeout=0.8,
            )
            if call.ended:
                return
            if menu.successful and menu.result == "balance":
                await call.play_tts("Your balance is 12 dollars. Please hold for an agent.")
                await call.play_ringtone("us", duration=5.0)
                break
            await call.play_tts("Sorry, I did not understand.")
        await call.play_tts("All agents are busy. Goodbye.")
        await call.hangup()


@pytest.mark.asyncio
async def test_conversation(relay_server, relay_ivr):
    await relay_ivr(BankIvr)
    call = await relay_server.dial_in(context="bank")
    await call.expect_prompt(contains="Welcome")
    await call.expect_prompt(contains="enter your PIN")
    await call.expect_prompt(contains="No keys", timeout=10)  # the initial timeout
    await call.expect_prompt(contains="enter your PIN")
    await call.press("111#")
    await call.expect_prompt(contains="did not work")
    await call.expect_prompt(contains="enter your PIN")
    await call.silence(1.0)
    await call.press("427#")
    await call.expect_prompt(contains="balance or transfer")
    await call.say("I would like to speak to a human being please")
    await call.expect_prompt(contains="did not understand", timeout=10)
    await call.expect_prompt(contains="balance or transfer")
    await call.say("balance")
    await call.expect_prompt(contains="12 dollars", timeout=10)
    await call.expect_prompt(contains="agents are busy", timeout=15)
    await call.expect_hangup()
    if out := os.environ.get("CONVERSATION_OUT"):
        with open(out, "w") as f:
            json.dump(call.event_log(), f)
