"""calling.send_digits and calling.detect end to end with our SDK and a virtual caller."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from relaykit import Call
from relaykit.media.frames import SAMPLE_RATE
from tests.helpers import outcome

pytestmark = pytest.mark.asyncio


def tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (6000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


async def test_sent_digits_are_real_tones_the_caller_decodes(server, run_ivr):
    """send_digits("12w3#"): the caller's DTMF detector hears 1, 2, 3, # with the pause."""

    async def ivr(call: Call):
        await call.answer()
        return await call.send_digits("12w3#")

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    result = await outcome(outcomes)
    assert result.successful and result.event.name == "finished"
    assert caller.heard_digits() == "123#"
    times = [at for at, _ in caller.heard_keys]
    assert np.diff(times) == pytest.approx([0.2, 0.2 + 0.5, 0.2], abs=0.03)
    assert [e.text for e in caller.transcript if "digits" in e.text] == ["sends digits 12w3#"]


async def test_bad_digits_are_refused_naming_the_field(server, run_ivr):
    async def ivr(call: Call):
        await call.answer()
        return await call.send_digits("12x")

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    result = await outcome(outcomes)
    assert not result.successful
    assert "digits" in result.event.payload["message"] and "'x'" in result.event.payload["message"]
    assert caller.heard_digits() == ""


async def test_detect_digit_returns_the_key_and_stops_the_detector(server, run_ivr):
    async def ivr(call: Call):
        await call.answer()
        return await call.detect_digit(digits="59", timeout=10)

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.press("1")  # not asked for
    await caller.press("9")
    result = await outcome(outcomes)
    assert (result.successful, result.detect_type, result.result) == (True, "digit", "9")
    ended = [e for e in caller.events if getattr(e, "component", None) == "detect" and e.final]
    assert [(e.state, e.reason) for e in ended] == [("finished", "stopped")]


async def test_detect_digit_async_collects_until_stopped(server, run_ivr):
    go: asyncio.Queue = asyncio.Queue()

    async def ivr(call: Call):
        await call.answer()
        action = await call.detect_digit_async()
        await go.get()
        await action.stop()
        return action.result

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.press("4*2")
    await go.put("stop")
    result = await outcome(outcomes)
    assert (result.successful, result.result, result.results) == (True, "4,*,2", ["4", "*", "2"])


async def test_answering_machine_detection_tells_a_machine_and_waits_for_its_beep(server, run_ivr):
    """The caller answers as a machine: MACHINE early; with wait_for_beep the result comes
    once the beep has ended, so the IVR can leave its message."""

    async def ivr(call: Call):
        await call.answer()
        quick = await call.detect_answering_machine()
        patient = await call.detect_answering_machine(wait_for_beep=True)
        return quick, patient, call

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.answer_as_machine()
    quick, patient, _call = await outcome(outcomes)
    assert (quick.successful, quick.result) == (True, "MACHINE")
    assert (patient.successful, patient.result, patient.event.name) == (True, "MACHINE", "READY")
    beep = next(a for a in caller.actions if a.label == "beep")
    answers = [e for e in caller.events if getattr(e, "state", None) == "READY"]
    assert answers[-1].at == pytest.approx(beep.end, abs=0.1)


async def test_answering_machine_detection_tells_a_person(server, run_ivr):
    async def ivr(call: Call):
        await call.answer()
        human = await call.detect_human()
        return human, await call.detect_machine(initial_timeout=1.0)

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.answer_as_human("Hello?")
    human, machine = await outcome(outcomes)
    assert (human.successful, human.result) == (True, "HUMAN")
    # then silence: not a machine (UNKNOWN), so detect_machine is unsuccessful
    assert (machine.successful, machine.result) == (False, "UNKNOWN")


async def test_detect_fax_hears_a_calling_tone(server, run_ivr):
    async def ivr(call: Call):
        await call.answer()
        return await call.detect_fax(timeout=10)

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.send_audio(np.concatenate([tone(0.5, 1100.0), np.zeros(8000, np.int16)]))
    result = await outcome(outcomes)
    assert (result.successful, result.detect_type, result.result) == (True, "fax", "CNG")


async def test_bad_detect_params_are_refused_naming_the_field(server, run_ivr):
    async def ivr(call: Call):
        await call.answer()
        unknown = await call.detect("voice")  # type: ignore[arg-type]
        negative = await call.detect_answering_machine(initial_timeout=-1)
        return unknown, negative

    outcomes = await run_ivr(ivr)
    await server.dial_in(context="office")
    unknown, negative = await outcome(outcomes)
    assert not unknown.successful and "detect.type" in unknown.event.payload["message"]
    assert "unknown detect type 'voice'" in unknown.event.payload["message"]
    assert "detect.params.initial_timeout" in negative.event.payload["message"]


async def test_a_detector_ends_with_the_call(server, run_ivr):
    async def ivr(call: Call):
        await call.answer()
        return await call.detect_digit_async()

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    action = await outcome(outcomes)
    await caller.hangup()
    for _ in range(100):
        if action.completed:
            break
        await asyncio.sleep(0.02)
    assert action.completed
    ended = [e for e in caller.events if getattr(e, "component", None) == "detect" and e.final]
    assert [(e.state, e.reason) for e in ended] == [("finished", "hangup")]
