"""Call timelines drawn from real calls' event logs and recordings."""

from __future__ import annotations

import itertools
import json

import pytest
import pytest_asyncio
from PIL import Image

from relaykit import Call, Consumer
from relaykit.testing import load_call, render_timeline
from relaykit.testing.timeline import timeline_figure

pytestmark = [pytest.mark.asyncio, pytest.mark.relaykit(fast=True)]


class BusyIvr(Consumer):
    """Many short events close together: the hard case for labels."""

    contexts = ("office",)

    async def on_incoming_call(self, call: Call) -> None:
        await call.answer()
        for _ in range(3):
            result = await call.prompt_tts(
                "digits", "Enter your PIN, then press pound.", digits_terminators="#"
            )
            await call.play_tts(f"You entered {result.result}.")
        await call.play_ringtone("uk", duration=2.0)
        await call.hangup()


@pytest_asyncio.fixture
async def busy_call(relay_server, relay_ivr, tmp_path):
    """A finished call with barge-ins, keys, results; its WAV and JSON are in tmp_path."""
    await relay_ivr(BusyIvr)
    call = await relay_server.dial_in(context="office")
    for keys in ("1#", "22#", "333#"):
        await call.expect_prompt(contains="PIN")
        await call.press(keys)
    await call.expect_hangup()
    return call.save_wav(tmp_path / "call.wav")


async def test_a_timeline_png_is_drawn_from_a_call_log_and_its_wav(busy_call, tmp_path):
    """load_call finds the WAV beside the JSON; the PNG has a sane size."""
    log, samples = load_call(busy_call.with_suffix(".json"))
    assert samples is not None and samples.shape[1] == 2
    png = render_timeline(log, samples, tmp_path / "call.png")
    with Image.open(png) as image:
        width, height = image.size
    assert 1500 <= width <= 5000 and 600 <= height <= 2500
    assert png.stat().st_size > 30_000


async def test_no_two_labels_overlap(busy_call):
    """Every text drawn inside the lanes keeps clear of every other one."""
    log, samples = load_call(busy_call.with_suffix(".json"))
    figure = timeline_figure(log, samples)
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)
    for ax in figure.axes:
        boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text()]
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b), (a, b)
    labels = {t.get_text() for ax in figure.axes for t in ax.texts}
    assert "“Enter your PIN, then press pound.”" in labels
    assert "presses 333#" in labels and "ringtone uk" in labels
    assert "result: digits '22' + # [terminator]" in labels


async def test_a_log_without_its_wav_still_draws_the_events(busy_call, tmp_path):
    """No recording beside the JSON: the timeline shows the events and says so."""
    moved = tmp_path / "alone" / "call.json"
    moved.parent.mkdir()
    moved.write_text(json.dumps(json.loads(busy_call.with_suffix(".json").read_text())))
    log, samples = load_call(moved)
    assert samples is None
    figure = timeline_figure(log, None)
    assert "no recording" in {t.get_text() for ax in figure.axes for t in ax.texts}


class SurfaceIvr(Consumer):
    """Record, detect and send digits: the timeline draws them as spans and marks."""

    contexts = ("office",)

    async def on_incoming_call(self, call: Call) -> None:
        await call.answer()
        await call.detect_answering_machine(wait_for_beep=True)
        await call.record(record_format="wav", end_silence_timeout=0.5)
        await call.send_digits("12")
        await call.hangup()


async def test_records_detects_and_digits_are_drawn(relay_server, relay_ivr, tmp_path):
    await relay_ivr(SurfaceIvr)
    call = await relay_server.dial_in(context="office")
    await call.answer_as_machine("Hi, this is Robin. Leave a message after the tone, thanks.")
    await call.say("This is my message")
    await call.expect_hangup()
    assert call.heard_digits() == "12"
    log, samples = load_call(call.save_wav(tmp_path / "surface.wav").with_suffix(".json"))
    figure = timeline_figure(log, samples)
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)
    labels = {t.get_text() for ax in figure.axes for t in ax.texts}
    assert "detect machine → MACHINE, READY" in labels
    assert "send digits 12" in labels
    assert any(label.startswith("record speak wav: finished") for label in labels), labels
    assert "machine: MACHINE" in labels and any("machine: READY" in lb for lb in labels)
    for ax in figure.axes:
        boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text()]
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b), (a, b)
