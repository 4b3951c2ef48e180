"""signalwire 2.1.1, unchanged: record, send_digits, detect and tap against a virtual caller."""

from __future__ import annotations

import asyncio
import socket
import urllib.request

import numpy as np
import pytest

from relaykit.media.frames import SAMPLE_RATE
from relaykit.sip.rtp import RtpPacket
from tests.compat.wire import C2S
from tests.helpers import WAIT

pytestmark = [pytest.mark.compat, pytest.mark.asyncio]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        return response.read()


async def test_record_a_voicemail_and_fetch_it(server, wire, v2_app):
    app = await v2_app("call_surface.py", "voicemail")
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    await caller.expect_prompt("leave a message", timeout=WAIT)
    await caller.silence(2.5)  # the rest of the prompt, then the beep
    await caller.say("Call me back please")
    recorded = await app.wait_event("recorded", timeout=WAIT)
    assert recorded["successful"] is True and recorded["event_name"] == "finished"
    assert recorded["url"].endswith(".wav") and recorded["duration"] > 1.0
    body = await asyncio.to_thread(fetch, recorded["url"])
    assert len(body) == recorded["size"]
    (request,) = wire.executes("calling.record", call_id=caller.call_id)
    assert request.execute_params["record"] == {
        "audio": {"beep": True, "format": "wav", "end_silence_timeout": 1.0}
    }
    reply = wire.response_to(request)
    assert reply.relay_code == "200" and reply.msg["result"]["result"]["url"] == recorded["url"]
    events = wire.events("calling.call.record")
    assert [f.event["state"] for f in events] == ["recording", "finished"]
    assert reply.seq < events[0].seq  # the events follow the command's reply
    wire.assert_conformant()


async def test_record_async_url_and_stop(server, wire, v2_app):
    app = await v2_app("call_surface.py", "record_stop")
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    recording = await app.wait_event("recording")
    assert recording["url"].startswith("http://") and recording["completed"] is False
    await caller.say("One two three")
    await app.go()
    stopped = await app.wait_event("stopped")
    assert (stopped["stop"], stopped["completed"], stopped["successful"]) == (True, True, True)
    assert stopped["url"] == recording["url"] and stopped["size"] > 0
    assert stopped["event_payload"]["record"]["audio"]["stereo"] is True
    wire.assert_conformant()


async def test_send_digits_reach_the_caller_as_tones(server, wire, v2_app):
    app = await v2_app("call_surface.py", "send_digits")
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    sent = await app.wait_event("sent")
    assert (sent["cls"], sent["successful"], sent["event_name"]) == (
        "SendDigitsResult",
        True,
        "finished",
    )
    assert caller.heard_digits() == "123#"
    (request,) = wire.executes("calling.send_digits", call_id=caller.call_id)
    assert request.execute_params["digits"] == "12w3#"
    wire.assert_conformant()


async def test_detect_digit_and_detect_async(server, wire, v2_app):
    app = await v2_app("call_surface.py", "detect_digit")
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    await caller.wait_answered()
    await caller.press("15")
    detected = await app.wait_event("detected")
    assert (detected["successful"], detected["type"], detected["result"]) == (True, "digit", "5")
    (request,) = wire.executes("calling.detect", call_id=caller.call_id)
    assert request.execute_params["detect"] == {"type": "digit", "params": {"digits": "59"}}
    wire.assert_conformant()


async def test_detect_digit_async_stop_gives_every_key(server, wire, v2_app):
    app = await v2_app("call_surface.py", "detect_async")
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    await caller.wait_answered()
    await caller.press("42")
    await app.go()
    detected = await app.wait_event("detected")
    assert (detected["stop"], detected["completed"], detected["successful"]) == (True, True, True)
    assert (detected["result"], detected["event_name"]) == ("4,2", "finished")
    wire.assert_conformant()


async def test_answering_machine_detection_with_and_without_the_beep(server, wire, v2_app):
    """MACHINE early; amd(wait_for_beep=True) returns MACHINE once READY came, after the beep,
    and the app's message then plays to the machine."""
    app = await v2_app("call_surface.py", "amd")
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    await caller.answer_as_machine()
    quick = await app.wait_event("amd", timeout=WAIT)
    assert (quick["successful"], quick["type"], quick["result"]) == (True, "machine", "MACHINE")
    patient = await app.wait_event("amd_beep", timeout=WAIT)
    assert (patient["successful"], patient["result"], patient["event_name"]) == (
        True,
        "MACHINE",
        "READY",
    )
    heard = await caller.expect_prompt("appointment tomorrow", timeout=WAIT)
    beep = next(a for a in caller.actions if a.label == "beep")
    assert heard.start >= beep.end
    events = [f.event["detect"]["params"]["event"] for f in wire.events("calling.call.detect")]
    assert events[0] == "MACHINE" and "READY" in events
    wire.assert_conformant()


async def test_answering_machine_detection_of_a_person(server, wire, v2_app):
    app = await v2_app("call_surface.py", "human")
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    await caller.answer_as_human("Hello?")
    amd = await app.wait_event("amd", timeout=WAIT)
    assert (amd["successful"], amd["result"]) == (True, "HUMAN")
    wire.assert_conformant()


async def test_detect_fax_tone(server, wire, v2_app):
    app = await v2_app("call_surface.py", "fax")
    await app.wait_event("ready")
    caller = await server.dial_in(context="office", timeout=WAIT)
    await caller.wait_answered()
    t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    await caller.send_audio((6000 * np.sin(2 * np.pi * 1100 * t)).astype(np.int16))
    fax = await app.wait_event("fax")
    assert (fax["successful"], fax["type"], fax["result"]) == (True, "fax", "CNG")
    wire.assert_conformant()


async def test_an_unknown_detect_type_fails_cleanly(server, wire, v2_app):
    app = await v2_app("call_surface.py", "bad_detect")
    await app.wait_event("ready")
    await server.dial_in(context="office", timeout=WAIT)
    detected = await app.wait_event("detected")
    assert detected["successful"] is False
    log = await app.wait_event("log")
    assert "unknown detect type 'voice'" in log["message"]
    wire.assert_conformant()


async def test_tap_streams_rtp_to_a_udp_socket(server, wire, v2_app):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    port = receiver.getsockname()[1]
    try:
        app = await v2_app("call_surface.py", "tap", str(port))
        await app.wait_event("ready")
        caller = await server.dial_in(context="office", timeout=WAIT)
        tapping = await app.wait_event("tapping")
        assert tapping["source"]["type"] == "rtp" and tapping["completed"] is False
        await caller.say("Hello there")
        await app.go()
        tapped = await app.wait_event("tapped")
        packets = []
        while True:
            try:
                packets.append(RtpPacket.parse(receiver.recv(2048)))
            except BlockingIOError:
                break
    finally:
        receiver.close()
    assert (tapped["stop"], tapped["successful"], tapped["event_name"]) == (True, True, "finished")
    assert tapped["tap"] == {"type": "audio", "params": {"direction": "speak"}}
    assert tapped["destination"]["params"]["port"] == port
    assert tapped["source"] == tapping["source"]
    assert len(packets) > 25 and {p.payload_type for p in packets} == {0}
    (request,) = [f for f in wire.executes("calling.tap") if f.direction == C2S]
    assert request.execute_params["device"] == {
        "type": "rtp",
        "params": {"addr": "127.0.0.1", "port": port},
    }
    wire.assert_conformant()


async def test_a_tap_to_nowhere_fails_the_action(server, wire, v2_app):
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    app = await v2_app("call_surface.py", "tap_refused", str(port))
    await app.wait_event("ready")
    await server.dial_in(context="office", timeout=WAIT)
    tapped = await app.wait_event("tapped")
    assert (tapped["completed"], tapped["successful"]) == (True, False)
    log = await app.wait_event("log")
    assert "device: tap target not reachable" in log["message"]
    wire.assert_conformant()


async def test_fax_send_and_receive_fail_with_a_clear_message(server, wire, v2_app):
    """Not supported here: v2's fax_send/fax_receive return unsuccessful at once and log why."""
    app = await v2_app("call_surface.py", "fax_send")
    await app.wait_event("ready")
    await server.dial_in(context="office", timeout=WAIT)
    faxed = await app.wait_event("faxed")
    assert (faxed["send"], faxed["receive"]) == (False, False)
    log = await app.wait_event("log")
    assert "fax send and receive are not supported by relaykit" in log["message"]
    wire.assert_conformant()
