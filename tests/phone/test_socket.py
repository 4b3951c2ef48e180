"""The phone page's WebSocket, driven from Python as the page drives it: login, one call at a
time, microphone audio in, keys as in-band DTMF tones, the IVR's audio out, the project's calls
and timelines, and nothing of another project's."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from relaykit.media.dtmf import generate_dtmf
from relaykit.phone.line import MIC_BACKLOG
from tests.helpers import WAIT, outcome
from tests.phone.audio import find, tone, write_wav
from tests.phone.conftest import PROJECT_A, PROJECT_B, TOKEN_A, TOKEN_B
from tests.phone.page_client import PageClient

pytestmark = pytest.mark.asyncio


async def _page(server, project=PROJECT_A, token=TOKEN_A) -> PageClient:
    page = await PageClient.open(server.url)
    ready = await page.log_in(project, token)
    assert ready["type"] == "ready", ready
    return page


async def _dial(page: PageClient, context: str = "office") -> str:
    await page.send({"type": "dial", "context": context})
    placed = await page.expect("placed")
    await page.expect(
        lambda m: (
            m["type"] == "call"
            and m["call"]["call_id"] == placed["call_id"]
            and m["call"]["state"] == "answered"
        )
    )
    return placed["call_id"]


async def test_a_wrong_token_is_refused_and_the_socket_closed(server):
    page = await PageClient.open(server.url)
    refused = await page.log_in(PROJECT_A, TOKEN_B)
    assert refused == {"type": "error", "kind": "auth", "message": "unknown project or wrong token"}
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(page.ws.wait_closed(), WAIT)
        await page.ws.send("{}")
    assert page.ws.close_code == 1008


async def test_nothing_is_served_before_login(server):
    """A first message other than ``auth`` closes the socket without a word."""
    page = await PageClient.open(server.url)
    await page.send({"type": "dial", "context": "office"})
    await asyncio.wait_for(page.ws.wait_closed(), WAIT)
    assert page.ws.close_code == 1008 and page.messages == []


async def test_another_sites_page_cannot_open_the_socket(server):
    """Browsers name the page's origin: only the phone's own page may use its socket."""
    page = await PageClient.open(server.url, origin="http://evil.example")
    await asyncio.wait_for(page.ws.wait_closed(), WAIT)
    assert page.ws.close_code == 1008
    own = await PageClient.open(server.url, origin=f"http://127.0.0.1:{server.port}")
    assert (await own.log_in(PROJECT_A, TOKEN_A))["type"] == "ready"
    await own.close()


async def test_the_page_hears_what_the_ivr_plays_frame_by_frame(server, run_ivr, tmp_path):
    """The frames sent to the page are the IVR's audio as the server recorded it."""
    wav = write_wav(tmp_path / "tone.wav", tone(440, 0.5, -18))
    heard = asyncio.Event()

    async def ivr(call):
        await call.answer()
        await call.play_audio(str(wav))
        await call.play_tts("Thank you for calling.")
        await heard.wait()
        await call.hangup()

    outcomes = await run_ivr(ivr)
    page = await _page(server)
    call_id = await _dial(page)
    await page.expect(
        lambda m: (
            m["type"] == "event"
            and m["event"]["kind"] == "media.ended"
            and m["event"]["media"] == "tts"
        )
    )
    await asyncio.sleep(0.1)  # the last frames follow the event
    heard.set()
    await outcome(outcomes)
    await page.expect(lambda m: m["type"] == "call" and m["call"]["state"] == "ended")
    sent = np.frombuffer(bytes(page.audio), dtype="<i2").reshape(-1, 320)
    recorded = server.phone.directory.find(PROJECT_A, call_id).call.media.recording()[:, 1]
    recorded = recorded[: len(recorded) // 320 * 320].reshape(-1, 320)
    # every frame in which something played went to the page, in order, unchanged
    audible_sent = sent[np.any(sent != 0, axis=1)]
    audible_recorded = recorded[np.any(recorded != 0, axis=1)]
    assert len(audible_recorded) > 50  # the tone (25 frames) and the speech
    assert np.array_equal(audible_sent, audible_recorded)
    await page.close()


async def test_keys_reach_the_ivr_as_tones_in_the_calls_audio(server, run_ivr):
    """Each key becomes a DTMF tone in the caller's audio; the IVR's detector collects the
    PIN; the call's log says the caller pressed each key and the IVR detected it."""

    async def ivr(call):
        await call.answer()
        result = await call.prompt_tts(
            "digits", "Enter your PIN.", digits_max=8, digits_terminators="#"
        )
        await call.hangup()
        return result

    outcomes = await run_ivr(ivr)
    page = await _page(server)
    call_id = await _dial(page)
    for key in "427#":
        await page.send({"type": "key", "key": key})
    result = await outcome(outcomes)
    assert (result.result, result.terminator, result.reason) == ("427", "#", "terminator")
    call = server.phone.directory.find(PROJECT_A, call_id).call
    log = [e.to_dict() for e in call.log]
    assert [
        e["label"] for e in log if e["kind"] == "caller.acted" and e["action"] == "press"
    ] == list("427#")
    assert [e["key"] for e in log if e["kind"] == "key.detected"] == list("427#")
    # in band: the tones are in the caller's channel of the recording
    caller = call.media.recording()[:, 0]
    _, score = find(generate_dtmf("4", tone_ms=100, gap_ms=0), caller)
    assert score > 0.99
    await page.close()


async def test_the_microphone_reaches_the_ivr_with_a_bounded_delay(server, run_ivr):
    """Microphone frames go into the call's audio (here: DTMF tones spoken into the mic are
    detected); a burst beyond the backlog is dropped instead of delaying the call."""
    collecting = asyncio.Event()

    async def ivr(call):
        await call.answer()
        action = await call.prompt_async(
            "digits", [{"type": "silence", "params": {"duration": 10}}], digits_max=3
        )
        collecting.set()
        result = await action.wait()
        await call.hangup()
        return result

    outcomes = await run_ivr(ivr)
    page = await _page(server)
    call_id = await _dial(page)
    await asyncio.wait_for(collecting.wait(), WAIT)
    call = server.phone.directory.find(PROJECT_A, call_id).call
    pcm = generate_dtmf("123", tone_ms=100, gap_ms=100).astype("<i2").tobytes()
    for start in range(0, len(pcm), 640):  # 20 ms frames, as the page sends them
        await page.ws.send(pcm[start : start + 640])
        await asyncio.sleep(0.02)
    result = await outcome(outcomes)
    assert result.result == "123"

    # a burst: 2 s at once; what waits stays within the bound
    page2 = await _page(server)
    await run_ivr(_answer_and_wait, ("burst",))
    burst_id = await _dial(page2, "burst")
    burst_call = server.phone.directory.find(PROJECT_A, burst_id).call
    frame = np.zeros(320, dtype="<i2").tobytes()
    for _ in range(100):
        await page2.ws.send(frame)
    await page2.send({"type": "watch", "call_id": burst_id})
    await page2.expect("timeline")  # every frame before it has been handled
    assert burst_call.media.inbound_pending <= MIC_BACKLOG + 0.02
    assert call.ended
    await page.close()
    await page2.close()


async def _answer_and_wait(call):
    await call.answer()
    await call.wait_for_ended()


async def test_closing_the_page_hangs_up_its_call(server, run_ivr):
    async def ivr(call):
        await call.answer()
        return await call.prompt_tts("digits", "Enter your PIN.", digits_max=4)

    outcomes = await run_ivr(ivr)
    page = await _page(server)
    call_id = await _dial(page)
    await page.close()
    result = await outcome(outcomes)
    assert (result.successful, result.reason) == (False, "hangup")
    entry = server.phone.directory.find(PROJECT_A, call_id)
    assert entry.call.end_reason == "hangup"
    assert any(e.to_dict().get("action") == "hangup" for e in entry.call.log)  # the caller hung up


async def test_one_call_at_a_time_and_bad_requests_get_clear_errors(server, run_ivr):
    await run_ivr(_answer_and_wait)
    page = await _page(server)
    await page.send({"type": "key", "key": "1"})
    assert (await page.expect("error"))["message"] == "no call: dial first"
    await _dial(page)
    page.messages.clear()
    for request, kind, text in [
        ({"type": "dial", "context": "office"}, "state", "hang up first"),
        ({"type": "key", "key": "x"}, "invalid", "not a key"),
        ({"type": "key", "key": "12"}, "invalid", "not a key"),
        ({"type": "dial"}, "state", "hang up first"),
        ({"type": "watch", "call_id": "nope"}, "not_found", "not found"),
        ({"type": "launch"}, "invalid", "unknown message type"),
        ({"type": "watch"}, "invalid", "call_id"),
    ]:
        await page.send(request)
        error = await page.expect("error")
        page.messages.remove(error)
        assert error["kind"] == kind and text in error["message"], (request, error)
    await page.ws.send("not json")
    assert (await page.expect("error"))["message"] == "not JSON"
    page.messages.clear()
    await page.ws.send(b"\x00" * 641)
    assert "16-bit" in (await page.expect("error"))["message"]
    page.messages.clear()
    await page.ws.send(b"\x00" * 6402)
    assert "at most" in (await page.expect("error"))["message"]
    await page.send({"type": "hangup"})
    await page.expect(lambda m: m["type"] == "call" and m["call"]["state"] == "ended")
    await page.close()


async def test_dialling_a_context_nobody_takes_says_so(server):
    server.phone.dial_timeout = 0.2
    page = await _page(server)
    await page.send({"type": "dial", "context": "nowhere"})
    error = await page.expect("error")
    assert error["kind"] == "no_ivr" and "'nowhere'" in error["message"]
    await page.close()


async def test_a_page_sees_only_its_projects_calls(server, run_ivr):
    """The call list, the live updates and ``watch`` cover the page's own project only."""
    for project in (PROJECT_A, PROJECT_B):
        await run_ivr(_answer_and_wait, project=project)
    before_b = await server.dial_in("office", project=PROJECT_B)
    page_a = await _page(server)
    page_b = await _page(server, PROJECT_B, TOKEN_B)
    own = await server.dial_in("office", project=PROJECT_A)
    after_b = await server.dial_in("office", project=PROJECT_B)
    await own.wait_answered(WAIT)
    await after_b.wait_answered(WAIT)
    await page_a.expect(lambda m: m["type"] == "call" and m["call"]["call_id"] == own.call_id)
    await page_b.expect(lambda m: m["type"] == "call" and m["call"]["call_id"] == after_b.call_id)

    await page_a.send({"type": "watch", "call_id": after_b.call_id})
    assert (await page_a.expect("error"))["kind"] == "not_found"
    await page_a.send({"type": "watch", "call_id": own.call_id})
    timeline = await page_a.expect("timeline")
    assert timeline["events"][0]["text"].endswith("offered to context 'office'")

    seen_by_a = repr(page_a.messages)
    assert own.call_id in seen_by_a
    assert before_b.call_id not in seen_by_a and after_b.call_id not in seen_by_a
    seen_by_b = repr(page_b.messages)
    assert before_b.call_id in seen_by_b and after_b.call_id in seen_by_b
    assert own.call_id not in seen_by_b
    ready_b = await page_b.expect("ready")
    assert [c["call_id"] for c in ready_b["calls"]] == [before_b.call_id]
    for caller in (before_b, own, after_b):
        await caller.hangup()
    await page_a.close()
    await page_b.close()
