"""calling.begin / calling.dial to sip devices: the server places real SIP calls."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest

from tests.helpers import WAIT
from tests.sip.peers import LOOPBACK, baresip, free_port, require, transcribe, write_wav

pytestmark = pytest.mark.asyncio

GREETING = "Hello, this is your appointment reminder"


async def state_events(client, tag: str, until: str) -> list[dict]:
    events = []
    async with asyncio.timeout(WAIT):
        while True:
            event = await client.event("calling.call.state")
            if event.get("tag") == tag:
                events.append(event)
                if event["call_state"] == until:
                    return events


async def test_begin_calls_a_softphone_plays_to_it_and_hangs_up(raw_client, server, tmp_path):
    """calling.begin to baresip (auto-answer): created → answered with the tag and sip device;
    a TTS play reaches the phone (recognised from its recording); calling.end sends BYE."""
    client = await raw_client()
    await client.handshake()
    mic = write_wav(tmp_path / "mic.wav", np.zeros(8000 * 20, dtype=np.int16), 8000)
    async with baresip(tmp_path / "phone", source_wav=mic, answer="auto") as phone:
        tag = str(uuid.uuid4())
        device = {"type": "sip", "params": {"to": phone.uri, "from": "sip:+15559870000@relaykit"}}
        reply = await client.execute("calling.begin", {"tag": tag, "device": device})
        inner = reply["result"]["result"]
        assert inner["code"] == "200", inner
        call_id = inner["call_id"]
        events = await state_events(client, tag, "answered")
        assert events[0]["call_state"] == "created"
        assert all(
            e["device"]
            == {"type": "sip", "params": {"from": device["params"]["from"], "to": phone.uri}}
            for e in events
        )
        assert all(e["direction"] == "outbound" and e["call_id"] == call_id for e in events)
        ref = {"node_id": inner["node_id"], "call_id": call_id}
        await client.execute(
            "calling.play",
            {**ref, "control_id": "greet", "play": [{"type": "tts", "params": {"text": GREETING}}]},
        )
        async with asyncio.timeout(WAIT):
            while (await client.event("calling.call.play"))["state"] != "finished":
                pass
        await client.execute("calling.end", {**ref, "reason": "hangup"})
        ended = await state_events(client, tag, "ended")
        await phone.wait_log("session closed")
    assert ended[-1]["end_reason"] == "hangup"
    audio, rate = phone.heard()
    hints = ["hello this is your appointment reminder", "please enter your pin", "goodbye"]
    assert [t for t, _ in transcribe(audio, rate, hints)] == [hints[0]]


async def test_dial_reports_the_winning_call(raw_client, server, tmp_path):
    """calling.dial with one group: calling.call.dial goes dialing → answered with the call."""
    client = await raw_client()
    await client.handshake()
    mic = write_wav(tmp_path / "mic.wav", np.zeros(8000 * 20, dtype=np.int16), 8000)
    async with baresip(tmp_path / "phone", source_wav=mic, answer="auto") as phone:
        tag = str(uuid.uuid4())
        device = {"type": "sip", "params": {"to": phone.uri, "timeout": 10}}
        reply = await client.execute("calling.dial", {"tag": tag, "devices": [[device]]})
        assert reply["result"]["result"]["code"] == "200"
        dialing = await client.event("calling.call.dial")
        answered = await client.event("calling.call.dial")
        assert (dialing["dial_state"], answered["dial_state"]) == ("dialing", "answered")
        assert answered["tag"] == tag and answered["call"]["dial_winner"] is True
        call_id = answered["call"]["call_id"]
        await client.execute(
            "calling.end", {"node_id": answered["node_id"], "call_id": call_id, "reason": "hangup"}
        )
        await phone.wait_log("session closed")


async def test_busy_phone_ends_the_call_with_busy(raw_client, server, tmp_path):
    """A phone answering 486 (SIPp as UAS): the call ends with end_reason busy, dial failed."""
    sipp = require("sipp", "sip-tester")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sipp, "-sf", "uas_busy.xml", "-i", LOOPBACK, "-p", str(port), "-m", "1", "-nostdin",
        "-timeout", "20s",
        cwd=str(__import__("pathlib").Path(__file__).parent / "data"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await asyncio.sleep(0.3)  # SIPp binds its port
        client = await raw_client()
        await client.handshake()
        tag = str(uuid.uuid4())
        device = {"type": "sip", "params": {"to": f"sip:busy@{LOOPBACK}:{port}"}}
        await client.execute("calling.dial", {"tag": tag, "devices": [[device]]})
        events = await state_events(client, tag, "ended")
        assert events[-1]["end_reason"] == "busy"
        await client.event("calling.call.dial")  # dialing
        failed = await client.event("calling.call.dial")
        assert (failed["dial_state"], failed["reason"]) == ("failed", "busy")
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_non_sip_devices_are_refused_with_the_field_named(raw_client):
    client = await raw_client()
    await client.handshake()
    reply = await client.execute(
        "calling.begin",
        {
            "tag": "t",
            "device": {"type": "phone", "params": {"to_number": "+1555", "from_number": "+1"}},
        },
    )
    inner = reply["result"]["result"]
    assert inner["code"] == "400" and inner["message"].startswith("device.type")
