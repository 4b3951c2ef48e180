"""calling.connect to a SIP phone: the IVR bridges a virtual caller to Debian's baresip."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from relaykit import Call
from relaykit.media.dtmf import generate_dtmf
from tests.helpers import WAIT, outcome
from tests.sip.peers import baresip, transcribe, write_wav

pytestmark = pytest.mark.asyncio

SENTENCE = "i have a question about my order"


async def test_a_softphone_answers_the_connect_and_the_two_talk(server, run_ivr, tmp_path):
    """baresip (auto-answer) is the connect's sip device: the caller hears the keys its
    microphone plays, baresip records the caller's sentence, and the caller hanging up sends
    baresip a BYE."""
    keys = generate_dtmf("58", tone_ms=120, gap_ms=120)[::2]  # 8 kHz, as the phone's mic
    mic = np.concatenate([np.zeros(8000 * 2), keys, np.zeros(8000 * 30)]).astype(np.int16)
    async with baresip(
        tmp_path / "phone", source_wav=write_wav(tmp_path / "mic.wav", mic, 8000), answer="auto"
    ) as phone:

        async def ivr(call: Call):
            await call.answer()
            device = {"type": "sip", "params": {"to": phone.uri, "from": "sip:ivr@relaykit"}}
            result = await call.connect([device], [{"type": "ringtone", "name": "us"}])
            await call.wait_for_ended()
            return result

        outcomes = await run_ivr(ivr)
        caller = await server.dial_in(context="office")
        caller.listen_for_digits()
        await caller.wait_answered()
        async with asyncio.timeout(WAIT):
            while caller.heard_digits() != "58":
                await caller.silence(0.2)
        await caller.say("I have a question about my order.")
        await caller.silence(0.5)
        await caller.hangup()
        result = await outcome(outcomes)
        await phone.wait_log("session closed")
    assert result.successful and result.call.call_type == "sip"
    audio, rate = phone.heard()
    assert SENTENCE in [text for text, _ in transcribe(audio, rate, [SENTENCE, "goodbye"])]
    assert not server.calls and not server.sip.calls
