"""calling.record end to end: our SDK's IVR records a virtual caller; the file is fetched over
HTTP from the server's own port and holds what the caller said."""

from __future__ import annotations

import asyncio
import io
import os
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile

from relaykit import Call
from relaykit.calls.recordings import mp3_available
from relaykit.media.frames import SAMPLE_RATE
from relaykit.testing.expect import audio_says
from tests.helpers import WAIT, outcome

pytestmark = pytest.mark.asyncio

MESSAGE = "Please call me back tomorrow morning"


def fetch(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def open_fds() -> set[str]:
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return fds


async def test_a_voicemail_recording_holds_the_message_and_is_served_over_http(server, run_ivr):
    """Beep, then the caller's message; silence ends it. The WAV at ``url`` says the message,
    starts after the beep, and its duration and size are the result's."""

    async def ivr(call: Call):
        await call.answer()
        return await call.record(beep=True, record_format="wav", end_silence_timeout=1.0)

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await asyncio.sleep(0.6)  # after the beep
    await caller.say(MESSAGE)
    result = await outcome(outcomes)
    assert result.successful and result.event.name == "finished"
    assert result.url.startswith(server.url.replace("ws://", "http://") + "/recordings/")
    status, body, headers = await asyncio.to_thread(fetch, result.url)
    assert (status, headers["Content-Type"], len(body)) == (200, "audio/wav", result.size)
    audio, rate = soundfile.read(io.BytesIO(body), dtype="int16")
    assert rate == SAMPLE_RATE and audio.ndim == 1
    assert len(audio) / SAMPLE_RATE == pytest.approx(result.duration, abs=0.03)
    assert not np.abs(audio[: SAMPLE_RATE // 20]).any()  # no beep in it
    confidence = await asyncio.to_thread(audio_says, server.recognizer, audio, MESSAGE)
    assert confidence is not None
    # the file is the call from the end of the 0.5 s beep to the end of the recording
    started, ended = [e for e in caller.events if getattr(e, "component", None) == "record"]
    assert ended.at - started.at - 0.5 == pytest.approx(result.duration, abs=0.05)
    assert ended.reason == "end_silence"


async def test_record_async_has_its_url_at_once_and_stop_finishes_it(server, run_ivr):
    """``url`` is in the command's reply; while recording the URL answers 409; stop gives the
    final duration and size; the stereo file has the caller left and the IVR right."""
    seen: asyncio.Queue = asyncio.Queue()
    go: asyncio.Queue = asyncio.Queue()

    async def ivr(call: Call):
        await call.answer()
        action = await call.record_async(
            record_format="wav",
            stereo=True,
            direction="both",
            initial_timeout=0,
            end_silence_timeout=0,
        )
        await seen.put((action.url, action.state, action.completed))
        await call.play_tts("This is the I V R speaking")
        await seen.put("played")
        await go.get()
        stop = await action.stop()
        return stop, action

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    url, state, completed = await asyncio.wait_for(seen.get(), WAIT)
    assert url.endswith(".wav") and state == "recording" and not completed
    status, _body, _ = await asyncio.to_thread(fetch, url)
    assert status == 409
    await asyncio.wait_for(seen.get(), WAIT)
    said_at = caller.now
    await caller.say("And this is the caller")
    await go.put("stop")
    stop, action = await outcome(outcomes)
    assert stop.successful and action.completed
    result = action.result
    assert result.successful and result.url == url and result.duration > said_at + 1.0
    assert result.event.payload["state"] == "finished"
    status, body, _ = await asyncio.to_thread(fetch, url)
    audio, _rate = soundfile.read(io.BytesIO(body), dtype="int16")
    assert audio.shape == (round(result.duration * SAMPLE_RATE), 2)
    split = round(said_at * SAMPLE_RATE)
    ivr_part, caller_part = audio[:split], audio[split:]
    assert np.abs(ivr_part[:, 1]).max() > 1000 and not ivr_part[:, 0].any()
    assert np.abs(caller_part[:, 0]).max() > 1000 and not caller_part[:, 1].any()


@pytest.mark.skipif(not mp3_available(), reason="this libsndfile cannot write MP3")
async def test_record_defaults_to_mp3_as_v2_does(server, run_ivr):
    async def ivr(call: Call):
        await call.answer()
        return await call.record(initial_timeout=0.5)

    outcomes = await run_ivr(ivr)
    await server.dial_in(context="office")
    result = await outcome(outcomes)
    # nobody spoke: no_input, unsuccessful, and still a file
    assert (result.successful, result.event.name) == (False, "no_input")
    assert result.url.endswith(".mp3")
    status, body, headers = await asyncio.to_thread(fetch, result.url)
    assert (status, headers["Content-Type"]) == (200, "audio/mpeg")
    assert soundfile.info(io.BytesIO(body)).format == "MP3"


async def test_the_caller_hanging_up_mid_record_closes_the_file(server, run_ivr):
    """The recording ends with the call: its file is closed, complete and served."""
    started: asyncio.Queue = asyncio.Queue()

    async def ivr(call: Call):
        await call.answer()
        action = await call.record_async(record_format="wav", initial_timeout=0)
        await started.put(action.url)
        await call.wait_for("ended")
        return action

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    url = await asyncio.wait_for(started.get(), WAIT)
    recording = server.recordings.lookup(url.rsplit("/", 1)[1])
    assert recording is not None and str(recording.path) in open_fds()
    await caller.say("Goodbye")
    await caller.hangup()
    action = await outcome(outcomes)
    # the recording's final event comes before the call's "ended": a complete file
    assert action.completed and action.result.successful
    assert recording.closed and str(recording.path) not in open_fds()
    events = [e for e in caller.events if getattr(e, "component", None) == "record"]
    assert (events[-1].state, events[-1].reason, events[-1].final) == ("finished", "hangup", True)
    status, body, _ = await asyncio.to_thread(fetch, url)
    assert status == 200 and events[-1].params["size"] == len(body)
    audio, _ = soundfile.read(io.BytesIO(body), dtype="int16")
    assert len(audio) / SAMPLE_RATE == pytest.approx(events[-1].params["duration"], abs=0.03)


async def test_bad_record_params_are_refused_naming_the_field(server, run_ivr):
    async def ivr(call: Call):
        await call.answer()
        bad_direction = await call.record(direction="sideways")  # type: ignore[arg-type]
        bad_timeout = await call.record(initial_timeout=-1)
        return bad_direction, bad_timeout

    outcomes = await run_ivr(ivr)
    await server.dial_in(context="office")
    bad_direction, bad_timeout = await outcome(outcomes)
    assert not bad_direction.successful and bad_direction.url == ""
    assert "record.audio.direction" in bad_direction.event.payload["message"]
    assert "record.audio.initial_timeout" in bad_timeout.event.payload["message"]
    assert len(server.recordings) == 0  # nothing was created


async def test_recordings_404_for_unknown_names(server):
    base = server.url.replace("ws://", "http://") + "/recordings/"
    for name in ("nothing.wav", "../../etc/passwd", "x" * 32 + ".mp3"):
        status, _, _ = await asyncio.to_thread(fetch, base + name)
        assert status == 404
