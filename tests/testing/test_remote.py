"""The /caller WebSocket and RemoteCaller: the virtual caller for other processes."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import pytest_asyncio
import soundfile
from websockets.asyncio.client import connect

from relaykit import AuthenticationError, Call, CommandError, Consumer, RelayServer
from relaykit.calls import event_from_dict
from relaykit.calls.log import caller_spans
from relaykit.testing import ExpectationError, RemoteCaller

pytestmark = [pytest.mark.asyncio, pytest.mark.relaykit(fast=True)]


class PinIvr(Consumer):
    contexts = ("office",)

    async def on_incoming_call(self, call: Call) -> None:
        await call.answer()
        result = await call.prompt_tts(
            "digits", "Please enter your PIN, then press pound.", digits_terminators="#"
        )
        await call.play_tts(f"You entered {' '.join(result.result or 'nothing')}. Goodbye.")
        await call.hangup()


@pytest_asyncio.fixture
async def remote(relay_server, relay_ivr):
    """A RemoteCaller connected to relay_server, with the PIN IVR running."""
    await relay_ivr(PinIvr)
    async with RemoteCaller(relay_server.url, relay_server.project, relay_server.token) as caller:
        yield caller


async def test_a_remote_caller_drives_a_whole_call_and_gets_the_transcript(remote, tmp_path):
    """dial, expect_prompt, press, expect_hangup; the transcript arrives live; save_wav works."""
    seen = []
    remote.on_transcript = seen.append
    await remote.dial("office")
    await remote.wait_answered()
    heard = await remote.expect_prompt(contains="PIN")
    assert heard["kind"] == "tts" and heard["label"].startswith("Please enter")
    await remote.press("427#")
    await remote.expect_prompt(contains="you entered 4 2 7")
    assert await remote.expect_hangup() == "hangup"
    texts = [e.text for e in seen]
    assert "presses 427#" in texts and "detects key 7" in texts and texts[-1] == "ended (hangup)"
    wav = await remote.save_wav(tmp_path / "call.wav")
    log = json.loads(wav.with_suffix(".json").read_text())
    keys = [e["key"] for e in log["events"] if e["kind"] == "key.detected"]
    assert log["wav"] == "call.wav" and keys == list("427#")
    assert wav.stat().st_size > 16000 * 4  # stereo 16-bit, over a second


async def test_a_wrong_token_is_refused(relay_server):
    """A bad token (or an unknown project) gets AuthenticationError, nothing else."""
    for project, token in ((relay_server.project, "wrong"), ("nobody", relay_server.token)):
        with pytest.raises(AuthenticationError, match="unknown project or wrong token"):
            async with RemoteCaller(relay_server.url, project, token):
                pass


async def test_requests_before_authentication_close_the_socket(relay_server):
    """The first message must be auth; anything else closes the connection."""
    async with connect(relay_server.url + "/caller") as ws:
        await ws.send(json.dumps({"id": 1, "method": "dial", "params": {"context": "office"}}))
        await ws.wait_closed()
        assert ws.close_code == 1008
    assert not relay_server.calls


async def test_a_caller_cannot_reach_another_projects_context():
    """Project B's caller never reaches project A's IVR, even if it names project A."""
    credentials = {"project-a": "token-a", "project-b": "token-b"}
    async with RelayServer(credentials=credentials, inline_media=True) as server:
        ivr = PinIvr(project="project-a", token="token-a", url=server.url)
        task = asyncio.create_task(ivr.serve())
        try:
            async with RemoteCaller(server.url, "project-a", "token-a") as a:
                await a.dial("office")  # project A reaches its own IVR
                await a.expect_prompt(contains="PIN")
            async with connect(server.url + "/caller") as ws:
                auth = {"project": "project-b", "token": "token-b"}
                await ws.send(json.dumps({"id": 1, "method": "auth", "params": auth}))
                assert json.loads(await ws.recv())["result"] == {"project": "project-b"}
                dial = {"context": "office", "project": "project-a", "timeout": 1}
                await ws.send(json.dumps({"id": 2, "method": "dial", "params": dial}))
                reply = json.loads(await ws.recv())
            assert reply["error"]["kind"] == "timeout"
            assert "context 'office' of project 'project-b'" in reply["error"]["message"]
        finally:
            await ivr.stop()
            await task


async def test_closing_the_socket_hangs_up_the_call(relay_server, relay_ivr):
    """A remote caller that goes away ends its call; the IVR sees a hangup."""
    await relay_ivr(PinIvr)
    async with RemoteCaller(relay_server.url, relay_server.project, relay_server.token) as caller:
        await caller.dial("office")
        await caller.expect_prompt(contains="PIN")
    (call,) = relay_server.callers
    await call.expect_hangup()
    assert call.transcript[-1].text == "ended (hangup)"


async def test_failed_expectations_come_back_with_the_same_message(remote):
    """expect_prompt's readable failure travels to the remote caller as ExpectationError."""
    await remote.dial("office")
    with pytest.raises(ExpectationError, match=r"(?s)contains='balance'.*The IVR played:"):
        await remote.expect_prompt(contains="balance", timeout=3)


async def test_bad_requests_are_refused_with_the_field_named(remote):
    """Bad keys, a second dial and unknown methods get errors; the connection carries on."""
    with pytest.raises(CommandError, match="dial first"):
        await remote.press("1")
    await remote.dial("office")
    with pytest.raises(CommandError, match=r"params.digits: 1 to 128 of 0-9 \* # A-D"):
        await remote.press("12x")
    with pytest.raises(CommandError, match="already placed its call"):
        await remote.dial("office")
    with pytest.raises(CommandError, match=r"params\.seconds"):
        await remote.silence(-1)
    with pytest.raises(CommandError, match="unknown method 'dance'"):
        await remote._request("dance")
    await remote.expect_prompt(contains="PIN")


async def test_long_recordings_are_sent_in_chunks_without_gaps(remote, tmp_path):
    """A 10 s file goes in two chunks; the call hears one 10 s action, "plays" in the log."""
    path = tmp_path / "hold.wav"
    tone = (3000 * np.sin(np.arange(10 * 16000) * 2 * np.pi * 300 / 16000)).astype(np.int16)
    soundfile.write(path, tone, 16000, subtype="PCM_16")
    await remote.dial("office")
    await remote.play_wav(path)
    log = await remote.event_log()
    spans = caller_spans(event_from_dict(e) for e in log["events"])
    (action,) = [a for a in spans if a.kind != "silence"]
    assert (action.kind, action.label) == ("play", "hold.wav")
    assert action.end - action.start == pytest.approx(10.0)
    assert "plays hold.wav" in [e.text for e in remote.transcript if e.actor == "caller"]
