"""The virtual caller's expectations: expect_prompt, expect_hangup, wait_listening, event log."""

from __future__ import annotations

import json

import pytest
import soundfile

from relaykit import Call, Consumer
from relaykit.media.tts import EspeakTts
from relaykit.testing import ExpectationError

pytestmark = [pytest.mark.asyncio, pytest.mark.relaykit(fast=True)]


@pytest.fixture(scope="module")
def greeting(tmp_path_factory) -> str:
    """file:// URL of a recording that says "Thank you for calling Acme." """
    path = tmp_path_factory.mktemp("audio") / "greeting.wav"
    samples = EspeakTts().synthesize("Thank you for calling Acme.", gender="female")
    soundfile.write(path, samples, 16000, subtype="PCM_16")
    return path.as_uri()


def ivr(script):
    """A Consumer on context "office" that answers, then runs ``script(call)``."""

    class Ivr(Consumer):
        contexts = ("office",)

        async def on_incoming_call(self, call: Call) -> None:
            await call.answer()
            await script(call)

    return Ivr


async def dial(relay_server, relay_ivr, script):
    await relay_ivr(ivr(script))
    return await relay_server.dial_in(context="office")


async def test_expect_prompt_ignores_case_and_punctuation_and_returns_the_prompt(
    relay_server, relay_ivr
):
    """ "3-digit pin then" finds "your 3 digit PIN, then"; the result has the text and times."""

    async def script(call):
        await call.play_tts("Welcome.")
        await call.play_tts("Please enter your 3 digit PIN, then press pound.")

    call = await dial(relay_server, relay_ivr, script)
    heard = await call.expect_prompt(contains="3-digit pin then")
    assert heard.kind == "tts"
    assert heard.text == "Please enter your 3 digit PIN, then press pound."
    assert heard.start > 0 and heard.end is None  # returned as it starts playing


async def test_each_prompt_matches_once(relay_server, relay_ivr):
    """Two expect_prompt calls for the same text wait for two plays of it."""

    async def script(call):
        for text in ("Say sales.", "Hello.", "Say sales."):
            await call.play_tts(text)

    call = await dial(relay_server, relay_ivr, script)
    first = await call.expect_prompt(contains="sales")
    second = await call.expect_prompt(contains="sales")
    assert second.start > call.heard[0].end > first.start
    with pytest.raises(ExpectationError, match="matched by an earlier expect_prompt"):
        await call.expect_prompt(contains="hello", timeout=1)


async def test_matches_takes_a_regular_expression(relay_server, relay_ivr):
    """matches= is searched in the TTS text, case-insensitively."""
    call = await dial(relay_server, relay_ivr, lambda c: c.play_tts("Your balance is 12 dollars."))
    heard = await call.expect_prompt(matches=r"balance is \d+ dollars")
    assert heard.text == "Your balance is 12 dollars."


async def test_a_prompt_that_never_comes_fails_with_what_was_played(relay_server, relay_ivr):
    """The message names the expectation, the call time waited and each prompt with its times."""
    call = await dial(relay_server, relay_ivr, lambda c: c.play_tts("Welcome to Acme."))
    with pytest.raises(ExpectationError) as failure:
        await call.expect_prompt(contains="balance", timeout=3)
    message = str(failure.value)
    assert message.startswith(
        "expect_prompt(contains='balance'): nothing matching was played in 3 s of call time"
    )
    assert "The IVR played:\n    0.00 –   1.2" in message
    assert "tts      'Welcome to Acme.'" in message
    assert message.endswith("Call state: answered")


async def test_a_call_that_ends_first_fails_the_expectation_at_once(relay_server, relay_ivr):
    """When the IVR hangs up before the prompt, expect_prompt says so."""

    async def script(call):
        await call.play_tts("Goodbye.")
        await call.hangup()

    call = await dial(relay_server, relay_ivr, script)
    with pytest.raises(ExpectationError, match=r"the call ended \(hangup\) before a matching"):
        await call.expect_prompt(contains="menu", timeout=60)


async def test_audio_prompts_are_checked_with_the_speech_recogniser(
    relay_server, relay_ivr, greeting
):
    """A recording that says "Thank you for calling Acme." matches that phrase and no other."""
    call = await dial(relay_server, relay_ivr, lambda c: c.play_audio(greeting))
    heard = await call.expect_prompt(contains="thank you for calling acme")
    assert heard.kind == "audio" and heard.url == greeting


async def test_an_audio_prompt_that_says_something_else_is_reported_as_such(
    relay_server, relay_ivr, greeting
):
    """The failure message says the recogniser did not hear the phrase in the recording."""
    call = await dial(relay_server, relay_ivr, lambda c: c.play_audio(greeting))
    with pytest.raises(ExpectationError) as failure:
        await call.expect_prompt(contains="please enter your account number", timeout=3)
    assert "greeting.wav  (speech recognition: does not say" in str(failure.value)


async def test_url_finds_an_audio_prompt_by_file_name(relay_server, relay_ivr, greeting):
    """url= matches the audio URL; no recognition needed."""
    call = await dial(relay_server, relay_ivr, lambda c: c.play_audio(greeting))
    heard = await call.expect_prompt(url="greeting.wav", recognize=False)
    assert heard.kind == "audio"


async def test_expect_hangup_returns_the_reason(relay_server, relay_ivr):
    """The IVR hanging up ends expect_hangup with the end reason."""

    async def script(call):
        await call.play_tts("Goodbye.")
        await call.hangup()

    call = await dial(relay_server, relay_ivr, script)
    assert await call.expect_hangup() == "hangup"
    assert call.ended


async def test_expect_hangup_fails_with_the_last_events_when_the_call_stays_up(
    relay_server, relay_ivr
):
    """An IVR that never hangs up fails expect_hangup with what happened."""
    call = await dial(relay_server, relay_ivr, lambda c: c.play_tts("Please hold."))
    with pytest.raises(ExpectationError) as failure:
        await call.expect_hangup(timeout=4)
    message = str(failure.value)
    assert message.startswith("expect_hangup(): the call is still answered after 4 s")
    assert "ivr  plays tts 'Please hold.'" in message


async def test_wait_listening_waits_until_a_prompt_collects_input(relay_server, relay_ivr):
    """Keys pressed after wait_listening are collected, even after a long introduction."""

    async def script(call):
        await call.play_tts("Welcome to the long introduction of our company.")
        result = await call.prompt_tts("digits", "Press a key.", digits_max=1)
        await call.play_tts(f"You pressed {result.result}.")

    call = await dial(relay_server, relay_ivr, script)
    await call.wait_listening()
    await call.press("5")
    await call.expect_prompt(contains="you pressed 5")


async def test_save_wav_writes_the_event_log_beside_the_recording(
    relay_server, relay_ivr, tmp_path
):
    """call.json has the prompts, the caller's actions, detected keys, results and states."""

    async def script(call):
        await call.prompt_tts("digits", "Enter your PIN.", digits_max=3)
        await call.hangup()

    call = await dial(relay_server, relay_ivr, script)
    await call.expect_prompt(contains="PIN")
    await call.press("427")
    await call.expect_hangup()
    wav = call.save_wav(tmp_path / "call.wav")
    log = json.loads(wav.with_suffix(".json").read_text())
    assert log["format"] == "relaykit-call-log/2"
    assert log["wav"] == "call.wav"
    assert (log["context"], log["state"], log["end_reason"]) == ("office", "ended", "hangup")
    events = log["events"]

    def of(kind):
        return [e for e in events if e["kind"] == kind]

    assert [e["label"] for e in of("media.started")] == ["Enter your PIN."]
    assert [e["label"] for e in of("media.ended")] == ["Enter your PIN."]
    assert [(e["action"], e["label"]) for e in of("caller.acted")] == [("press", "427")]
    assert [e["key"] for e in of("key.detected")] == ["4", "2", "7"]
    assert [(e["result_type"], e["params"], e["reason"]) for e in of("prompt.ended")] == [
        ("digit", {"digits": "427", "terminator": ""}, "max_digits")
    ]
    assert [(e["state"], e["end_reason"]) for e in of("call.state")] == [
        ("answered", None),
        ("ending", "hangup"),
        ("ended", "hangup"),
    ]
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    assert log["duration"] == pytest.approx(len(call.recording()) / 16000)


async def test_a_transcript_listener_can_be_removed(relay_server, relay_ivr):
    """on_transcript returns a function that stops the feed."""
    call = await dial(relay_server, relay_ivr, lambda c: c.play_tts("One."))
    seen = []
    remove = call.on_transcript(seen.append)
    await call.expect_prompt(contains="one")
    remove()
    count = len(seen)
    await call.hangup()
    assert count >= 3 and len(seen) == count
