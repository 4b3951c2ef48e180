"""Digit prompts end to end: our SDK's IVR, the real server, a caller pressing real DTMF."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import soundfile

from relaykit import Call
from relaykit.media.frames import SAMPLE_RATE
from tests.helpers import WAIT, outcome

pytestmark = pytest.mark.asyncio

PIN_PROMPT = "Please enter your PIN, then press pound"


async def test_pin_with_terminator_returns_digits_and_the_terminator(server, run_ivr):
    """A terminator key ends entry; it is reported as the terminator, not as a digit."""

    async def ivr(call: Call):
        await call.answer()
        return await call.prompt_tts("digits", PIN_PROMPT, digits_max=10, digits_terminators="#")

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.press("427#")
    result = await outcome(outcomes)
    assert result.successful
    assert (result.prompt_type, result.result, result.terminator) == ("digit", "427", "#")
    assert result.type == "digit"
    assert result.reason == "terminator"
    assert result.event.payload["params"] == {"digits": "427", "terminator": "#"}


async def test_max_digits_ends_the_prompt_with_an_empty_terminator(server, run_ivr):
    """With max 3 and terminator #, 427# gives 427 and no terminator (§5.1.2)."""

    async def ivr(call: Call):
        await call.answer()
        return await call.prompt_tts("digits", PIN_PROMPT, digits_max=3, digits_terminators="#")

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.press("427#")
    result = await outcome(outcomes)
    assert (result.result, result.terminator, result.reason) == ("427", "", "max_digits")


async def test_digit_timeout_returns_the_digits_so_far(server, run_ivr):
    """When the caller stops pressing, the digit timeout returns what was entered."""

    async def ivr(call: Call):
        await call.answer()
        return await call.prompt(
            "digits", [{"type": "silence", "duration": 0.2}], digits_max=8, digits_timeout=0.6
        )

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.press("42")
    result = await outcome(outcomes)
    assert (result.prompt_type, result.result, result.terminator) == ("digit", "42", "")
    assert result.reason == "digit_timeout"


async def test_no_input_after_initial_timeout_counted_from_the_end_of_the_media(server, run_ivr):
    """Silence from the caller gives no_input; the timer starts when the media ends."""

    async def ivr(call: Call):
        await call.answer()
        return await call.prompt(
            "digits", [{"type": "silence", "duration": 0.6}], digits_max=4, initial_timeout=0.4
        )

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    result = await outcome(outcomes)
    assert not result.successful
    assert (result.prompt_type, result.result, result.reason) == (
        "no_input",
        None,
        "initial_timeout",
    )
    media_start = caller.heard[0].start
    ended = next(e.at for e in caller.transcript if e.text.startswith("prompt ends"))
    # On the media clock (exact frames): 0.6 s of media, then 0.4 s of waiting.
    assert ended - media_start == pytest.approx(1.0, abs=0.05)


async def test_keys_pressed_during_the_media_barge_in_and_count(server, run_ivr):
    """The first key stops the prompt's playback, and the keys are collected."""

    async def ivr(call: Call):
        await call.answer()
        return await call.prompt_ringtone("digits", "us", duration=10, digits_max=2)

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.silence(0.3)
    await caller.press("55")
    result = await outcome(outcomes)
    assert result.result == "55"
    (ringtone,) = caller.heard
    assert ringtone.end is not None and ringtone.end < 2.0, "the 10 s ringtone was cut short"


async def test_stop_mid_prompt_completes_the_action_and_keeps_captured_digits(server, run_ivr):
    """stop() is acknowledged, the action completes, and digits pressed so far are kept."""
    pressed = asyncio.Event()

    async def ivr(call: Call):
        await call.answer()
        action = await call.prompt_tts_async("digits", PIN_PROMPT, digits_max=6)
        await asyncio.wait_for(pressed.wait(), WAIT)
        stop = await action.stop()
        return stop, action

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.press("12")
    pressed.set()
    stop, action = await outcome(outcomes)
    assert stop.successful
    assert action.completed
    result = action.result
    assert not result.successful
    assert (result.prompt_type, result.reason, result.result) == ("no_input", "stopped", "12")
    assert action.state == "no_input"


def _tone_wav(path, seconds: float = 4.0, freq: float = 1000.0) -> str:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    soundfile.write(path, (0.25 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SAMPLE_RATE)
    return path.as_uri()


def _frame_levels_db(channel: np.ndarray) -> np.ndarray:
    frames = channel[: len(channel) // 320 * 320].reshape(-1, 320).astype(np.float64)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-9))


async def test_volume_mid_prompt_changes_the_level_the_caller_hears(server, run_ivr, tmp_path):
    """volume(-6) mid-prompt lowers the recorded IVR channel by 6 dB (±1 dB)."""
    url = _tone_wav(tmp_path / "tone.wav")
    changed = asyncio.Event()

    async def ivr(call: Call):
        await call.answer()
        action = await call.prompt_audio_async("digits", url, digits_max=1)
        await asyncio.sleep(0.6)
        volume = await action.volume(-6)
        changed.set()
        await asyncio.sleep(0.6)
        await action.stop()
        return volume

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    volume = await outcome(outcomes)
    assert volume.successful
    levels = _frame_levels_db(caller.recording()[:, 1])
    playing = levels[levels > -60]
    before, after = playing[2:12], playing[-12:-2]
    assert np.median(before) - np.median(after) == pytest.approx(6.0, abs=1.0)


async def test_prompt_volume_at_start_applies_to_the_samples(server, run_ivr, tmp_path):
    """A prompt started at volume -12 is 12 dB quieter than the file (±1 dB)."""
    url = _tone_wav(tmp_path / "tone.wav", seconds=1.0)

    async def ivr(call: Call):
        await call.answer()
        return await call.prompt_audio("digits", url, digits_max=1, initial_timeout=0.1, volume=-12)

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await outcome(outcomes)
    levels = _frame_levels_db(caller.recording()[:, 1])
    full_scale_tone = 20 * np.log10(0.25 * 32767 / np.sqrt(2))
    assert np.median(levels[levels > -60]) == pytest.approx(full_scale_tone - 12, abs=1.0)
    assert caller.heard[0].volume == -12


async def test_caller_hangup_mid_prompt_returns_every_waiting_coroutine(server, run_ivr):
    """A hang-up completes the blocking prompt, a play action and wait_for_ended."""

    async def ivr(call: Call):
        await call.answer()
        play = await call.play_silence_async(30)
        ended = asyncio.ensure_future(call.wait_for_ended())
        prompt = await call.prompt_tts("digits", PIN_PROMPT, digits_max=4, initial_timeout=30)
        return prompt, play, await ended

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.silence(0.3)
    await caller.hangup()
    prompt, play, ended = await outcome(outcomes)
    assert not prompt.successful
    assert prompt.reason == "hangup"
    assert play.completed and not play.result.successful
    assert ended is True
    assert caller.state == "ended"


async def test_virtual_caller_records_a_stereo_wav_and_what_it_heard(server, run_ivr, tmp_path):
    """save_wav writes caller left, IVR right; heard lists the TTS text with its times."""

    async def ivr(call: Call):
        await call.answer()
        return await call.prompt_tts("digits", PIN_PROMPT, digits_max=1)

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.silence(0.5)
    await caller.press("9")
    assert (await outcome(outcomes)).result == "9"
    path = caller.save_wav(tmp_path / "call.wav")
    data, rate = soundfile.read(path, dtype="int16")
    assert rate == SAMPLE_RATE and data.shape[1] == 2
    assert np.abs(data[:, 1]).max() > 1000, "the IVR channel holds the prompt"
    assert np.abs(data[:, 0]).max() > 1000, "the caller channel holds the DTMF"
    (heard,) = caller.heard
    assert heard.kind == "tts" and heard.text == PIN_PROMPT
    assert heard.end is not None and heard.end > heard.start


async def test_dtmf_tones_in_the_ivrs_own_prompt_are_not_taken_as_keys(server, run_ivr, tmp_path):
    """A prompt that itself plays DTMF tones does not feed them to its own collector."""
    from relaykit.media.dtmf import generate_dtmf

    path = tmp_path / "tones.wav"
    soundfile.write(path, generate_dtmf("5#", tone_ms=300, gap_ms=100), SAMPLE_RATE)

    async def ivr(call: Call):
        await call.answer()
        return await call.prompt_audio(
            "digits", path.as_uri(), digits_max=1, digits_terminators="#", initial_timeout=0.3
        )

    outcomes = await run_ivr(ivr)
    await server.dial_in(context="office")
    result = await outcome(outcomes)
    assert (result.prompt_type, result.reason) == ("no_input", "initial_timeout")


async def test_a_prompt_ended_by_the_hangup_returns_after_the_call_is_known_to_end(server, run_ivr):
    """When the caller hangs up mid-prompt, ``call.ended`` is already true as the prompt returns.

    The server sends ``ending`` before the prompt's terminal collect, so ``if call.ended:``
    right after a prompt is reliable (no play on a call that is gone).
    """

    async def ivr(call: Call):
        await call.answer()
        result = await call.prompt_tts("digits", PIN_PROMPT, digits_max=4)
        return result, call.ended, call.state

    outcomes = await run_ivr(ivr)
    for _ in range(5):
        caller = await server.dial_in(context="office")
        await caller.wait_answered()
        await caller.press("4")
        await caller.hangup()
        result, ended, state = await outcome(outcomes)
        assert (result.prompt_type, result.reason, result.result) == ("error", "hangup", "4")
        assert ended, f"call.ended was false when the prompt returned (state {state!r})"


async def test_hangup_events_arrive_ending_then_terminal_collect_then_ended(raw_client, server):
    """On the wire: ``ending``, the prompt's terminal ``collect``, then ``ended``."""
    client = await raw_client()
    await client.handshake()
    await client.execute("signalwire.receive", {"contexts": ["office"]})
    dial = asyncio.create_task(server.dial_in(context="office"))
    offer = await client.event("calling.call.receive")
    caller = await dial
    ref = {"call_id": offer["call_id"], "node_id": offer["node_id"]}
    await client.execute("calling.answer", ref)
    await client.execute(
        "calling.play_and_collect",
        {
            **ref,
            "control_id": "p1",
            "play": [{"type": "silence", "params": {"duration": 5}}],
            "collect": {"digits": {"max": 4}},
        },
    )
    await caller.hangup()
    order: list[str] = []
    while "ended" not in order:
        frame = client.events.pop(0) if client.events else await client.recv()
        if frame.get("method") != "blade.broadcast":
            continue
        kind = frame["params"]["params"]["event_type"]
        inner = frame["params"]["params"]["params"]
        if kind == "calling.call.state" and inner["call_state"] in ("ending", "ended"):
            order.append(inner["call_state"])
        elif kind == "calling.call.collect" and inner.get("final", True):
            order.append("collect")
    assert order == ["ending", "collect", "ended"]
