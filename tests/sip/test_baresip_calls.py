"""A softphone (Debian's baresip) calling the IVR and being called by it, on loopback."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from relaykit import Call, RelayServer
from relaykit.calls import Call as ServerCall
from relaykit.media.dtmf import generate_dtmf
from tests.helpers import WAIT, outcome
from tests.sip.peers import IVR_NUMBER, LOOPBACK, baresip, transcribe, write_wav

pytestmark = pytest.mark.asyncio

PIN_PROMPT = "Please enter your 3 digit PIN, then press pound"
HINTS = [
    "please enter your three digit pin then press pound",
    "you entered four two seven",
    "you entered one two three",
    "thank you for calling goodbye",
    "sales",
    "support",
]


async def pin_ivr(call: Call):
    await call.answer()
    result = await call.prompt_tts("digits", PIN_PROMPT, digits_max=8, digits_terminators="#")
    await call.play_tts(f"You entered {' '.join(result.result or '')}")
    await call.hangup()
    return result


async def the_call(server: RelayServer) -> ServerCall:
    """The server's one call, once it exists."""
    async with asyncio.timeout(WAIT):
        while not server.calls:
            await asyncio.sleep(0.02)
    return next(iter(server.calls.values()))


async def until(predicate, what: str) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while not predicate():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_baresip_hears_the_prompt_and_its_rfc2833_keys_complete_it(server, run_ivr, tmp_path):
    """baresip dials in, waits for the prompt, sends 427# with sndcode; what it recorded is the
    prompt and the read-back, as relaykit's recogniser transcribes it."""
    outcomes = await run_ivr(pin_ivr)
    silence = write_wav(tmp_path / "mic.wav", np.zeros(8000 * 30, dtype=np.int16), 8000)
    async with baresip(tmp_path / "phone", source_wav=silence) as phone:
        await phone.command("dial", f"sip:{IVR_NUMBER}@{LOOPBACK}:{server.sip.port}")
        call = await the_call(server)
        leg = server.sip.calls[call.call_id].rtp
        await until(
            lambda: call.media.heard and call.media.heard[0].ended_at is not None,
            "the prompt to finish playing",
        )
        await phone.command("sndcode", "427#")
        result = await outcome(outcomes)
        await phone.wait_log("session closed")
    assert (result.result, result.terminator, result.reason) == ("427", "#", "terminator")
    assert leg.keys_received == list("427#")  # they came as RFC 2833 events
    assert call.end_reason == "hangup"
    audio, rate = phone.heard()
    texts = [text for text, _ in transcribe(audio, rate, HINTS)]
    assert texts == [
        "please enter your three digit pin then press pound",
        "you entered four two seven",
    ]


async def test_baresip_in_band_tones_complete_the_prompt(server, run_ivr, tmp_path):
    """baresip's microphone plays real DTMF tones (no RFC 2833): G.711, resampling and the
    in-band detector still give 427#, each key counted once."""
    outcomes = await run_ivr(pin_ivr)
    tones = generate_dtmf("427#", tone_ms=100, gap_ms=100)  # 16 kHz
    mic = np.concatenate([np.zeros(16000), tones, np.zeros(16000 * 20)])[::2].astype(np.int16)
    async with baresip(
        tmp_path / "phone", source_wav=write_wav(tmp_path / "mic.wav", mic, 8000)
    ) as phone:
        await phone.command("dial", f"sip:{IVR_NUMBER}@{LOOPBACK}:{server.sip.port}")
        call = await the_call(server)
        leg = server.sip.calls[call.call_id].rtp
        result = await outcome(outcomes)
        await phone.wait_log("session closed")
    assert (result.result, result.terminator) == ("427", "#")
    assert leg.keys_received == []
    assert [k for _, k in call.media.keys] == list("427#")
