"""The SDK's record/detect/tap/send_digits beyond their results: call handlers, argument checks,
and detect_human/detect_machine, against the real server."""

from __future__ import annotations

import asyncio

import pytest

from relaykit import Call
from tests.helpers import outcome

pytestmark = pytest.mark.asyncio


async def test_component_events_reach_the_calls_handlers(server, run_ivr):
    """record.stateChange/record.<state>, detect.update/detect.finished, sendDigits.finished."""
    seen: list[tuple[str, str]] = []

    async def ivr(call: Call):
        for name in (
            "record.stateChange",
            "record.finished",
            "detect.update",
            "detect.finished",
            "sendDigits.finished",
        ):
            call.on(name, lambda params, name=name: seen.append((name, str(params["call_id"]))))
        await call.answer()
        await call.record(record_format="wav", initial_timeout=0.3)
        detect = await call.detect_digit_async(timeout=1.0)
        await call.send_digits("1")
        await detect.wait()
        return call.id

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    for _ in range(250):  # until the detector runs
        if any(e.text == "starts detecting digit" for e in caller.transcript):
            break
        await asyncio.sleep(0.02)
    await caller.press("7")
    call_id = await outcome(outcomes)
    names = [name for name, cid in seen if cid == call_id]
    assert names.count("record.stateChange") == 2  # recording, then no_input
    assert "record.finished" not in names  # it ended no_input
    assert names.count("detect.update") == 1 and names.count("detect.finished") == 1
    assert names.count("sendDigits.finished") == 1


async def test_arguments_the_sdk_refuses_before_sending(server, run_ivr):
    async def ivr(call: Call):
        await call.answer()
        with pytest.raises(ValueError, match="record_type must be 'audio'"):
            await call.record_async("video")
        # a misspelt option is refused by name, even when its value is None
        with pytest.raises(TypeError, match="'record_fromat'"):
            await call.record(record_fromat="wav")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'tone'"):
            await call.detect_answering_machine(tone="CED")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'wait_for_beep'"):
            await call.detect_human(wait_for_beep=True)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'digit_max'"):
            await call.prompt_tts_async("digits", "PIN?", digit_max=None)  # type: ignore[call-arg]
        return True

    outcomes = await run_ivr(ivr)
    await server.dial_in(context="office")
    assert await outcome(outcomes) is True


async def test_detect_machine_is_successful_only_for_a_machine(server, run_ivr):
    async def ivr(call: Call):
        await call.answer()
        return await call.detect_machine(), await call.detect_human()

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.answer_as_machine(
        "Hello, you have reached the Acme voicemail. Please leave a message.", beep_tone=False
    )
    machine, human = await asyncio.wait_for(outcome(outcomes), 30)
    assert (machine.successful, machine.result) == (True, "MACHINE")
    # the greeting goes on: a machine again, so detect_human is not successful
    assert (human.successful, human.result) == (False, "MACHINE")
