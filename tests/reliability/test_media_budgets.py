"""A hostile tenant's media: hour-long ringtones, long speech, URLs that never answer, audio
URLs as a network probe, calls that never end. Each costs that project only, within its
budget, and fails with a clear error; the other project's calls go on."""

from __future__ import annotations

import asyncio
import socket
import tracemalloc
from typing import Any

import pytest
from websockets.asyncio.client import connect

from relaykit import RelayServer
from tests.helpers import WAIT, RawClient

pytestmark = pytest.mark.asyncio

A, B = "project-a", "project-b"
CREDENTIALS = {A: "token-a", B: "token-b"}
_MB = 2**20


async def _client(server: RelayServer, project: str) -> RawClient:
    client = RawClient(await connect(server.url))
    assert "result" in await client.handshake(project, CREDENTIALS[project])
    await client.execute("signalwire.receive", {"contexts": ["office"]})
    return client


async def _answered_call(server: RelayServer, client: RawClient, project: str) -> dict[str, str]:
    dial = asyncio.create_task(server.dial_in(context="office", project=project))
    offer = await client.event("calling.call.receive")
    await dial
    ref = {"call_id": offer["call_id"], "node_id": offer["node_id"]}
    assert (await client.execute("calling.answer", ref))["result"]["result"]["code"] == "200"
    return ref


async def _event_of(client: RawClient, event_type: str, control_id: str) -> dict[str, Any]:
    """The next ``event_type`` broadcast of ``control_id``; others stay queued."""
    for i, frame in enumerate(client.events):
        inner = frame["params"]["params"]
        if inner["event_type"] == event_type and inner["params"].get("control_id") == control_id:
            del client.events[i]
            return dict(inner["params"])
    while True:
        frame = await client.recv()
        if frame.get("method") != "blade.broadcast":
            continue
        inner = frame["params"]["params"]
        if inner["event_type"] == event_type and inner["params"].get("control_id") == control_id:
            return dict(inner["params"])
        client.events.append(frame)


def _tts(text: str) -> dict[str, Any]:
    return {"type": "tts", "params": {"text": text}}


async def _prompt(
    client: RawClient, ref: dict[str, str], control_id: str, media: list[dict[str, Any]]
) -> None:
    reply = await client.execute(
        "calling.play_and_collect",
        {
            **ref,
            "control_id": control_id,
            "play": media,
            "collect": {"digits": {"max": 1}, "initial_timeout": 0.2},
        },
    )
    assert reply["result"]["result"]["code"] == "200", reply


async def _prompt_outcome(client: RawClient, control_id: str) -> dict[str, Any]:
    """The prompt's final collect event: {"type": ..., "params": ...}."""
    while True:
        event = await _event_of(client, "calling.call.collect", control_id)
        if event.get("final", True):
            return dict(event["result"])


def _sentence(n: int, chars: int) -> str:
    """Distinct text of about ``chars`` characters (so nothing comes from the TTS cache)."""
    words = " ".join(f"item {n} {i}." for i in range(chars // 8))
    return f"Prompt number {n}. {words}"


async def test_hour_long_ringtones_and_silences_cost_no_memory():
    """One prompt of four 3600 s ringtones and four 3600 s silences starts playing without
    building their samples: under 20 MB allocated in all (the arrays would be 920 MB)."""
    async with RelayServer(credentials=CREDENTIALS) as server:
        a = await _client(server, A)
        ref = await _answered_call(server, a, A)
        media = [{"type": "ringtone", "params": {"name": "us", "duration": 3600}}] * 4
        media += [{"type": "silence", "params": {"duration": 3600}}] * 4
        tracemalloc.start()
        try:
            await _prompt(a, ref, "long", media)
            assert (await _event_of(a, "calling.call.play", "long"))["state"] == "playing"
            await asyncio.sleep(0.3)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 20 * _MB


async def test_a_projects_byte_budget_fails_its_own_media_clearly_and_spares_the_other():
    """With media_bytes=2 MB: A's ~3 MB speech fails its prompt with an error that names the
    budget and the option; B's prompt plays. Budget comes back when a play ends: two ~1.3 MB
    prompts one after the other both play."""
    async with RelayServer(credentials=CREDENTIALS, media_bytes=2 * _MB) as server:
        a, b = await _client(server, A), await _client(server, B)
        ref_a, ref_b = await _answered_call(server, a, A), await _answered_call(server, b, B)

        await _prompt(a, ref_a, "big", [_tts(_sentence(1, 1000))])
        await _prompt(b, ref_b, "fine", [_tts("Please enter your PIN.")])
        failed = await _prompt_outcome(a, "big")
        assert failed["type"] == "error"
        assert "media budget exceeded" in failed["params"]["message"]
        assert "media_bytes" in failed["params"]["message"]
        assert (await _event_of(b, "calling.call.play", "fine"))["state"] == "playing"

        for n in (2, 3):
            control_id = f"fits-{n}"
            await _prompt(a, ref_a, control_id, [_tts(_sentence(n, 400))])
            assert (await _event_of(a, "calling.call.play", control_id))["state"] == "playing"
            stopped = await a.execute(
                "calling.play_and_collect.stop", {**ref_a, "control_id": control_id}
            )
            assert stopped["result"]["result"]["code"] == "200"
            assert (await _prompt_outcome(a, control_id))["type"] != "error"
        budget = server.loader.budgets.get(A)
        assert budget is not None and budget.bytes_held == 0


async def test_a_projects_cpu_budget_refuses_more_synthesis_and_spares_the_other():
    """With a 0.01 s CPU budget that does not refill, A's second new text fails with a CPU
    budget error; B, with its own budget, still gets new speech."""
    async with RelayServer(
        credentials=CREDENTIALS, media_cpu_burst=0.01, media_cpu_per_second=0
    ) as server:
        a, b = await _client(server, A), await _client(server, B)
        ref_a, ref_b = await _answered_call(server, a, A), await _answered_call(server, b, B)
        a_states, errors = [], []
        for n in range(3):
            await _prompt(a, ref_a, f"a{n}", [_tts(_sentence(10 + n, 120))])
            a_states.append((await _event_of(a, "calling.call.play", f"a{n}"))["state"])
            if a_states[-1] == "error":
                errors.append((await _prompt_outcome(a, f"a{n}"))["params"]["message"])
            else:
                await a.execute("calling.play_and_collect.stop", {**ref_a, "control_id": f"a{n}"})
        await _prompt(b, ref_b, "b0", [_tts(_sentence(20, 120))])
        b_state = (await _event_of(b, "calling.call.play", "b0"))["state"]
    assert a_states[0] == "playing" and a_states[1:] == ["error", "error"]
    assert all("media CPU budget exceeded" in e and "media_cpu_burst" in e for e in errors)
    assert b_state == "playing"


async def test_urls_that_never_answer_hold_only_their_projects_fetch_slots():
    """A starts 64 plays whose audio URLs (on an allowed network) never answer. Only
    media_fetches (4) of them connect at once; B's new speech prompt starts playing while
    all of A's plays are still waiting for their URLs."""
    open_connections: set[asyncio.StreamWriter] = set()
    most = 0

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal most
        open_connections.add(writer)
        most = max(most, len(open_connections))
        try:
            await reader.read()  # until the client gives up
        finally:
            open_connections.discard(writer)
            writer.close()

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    async with RelayServer(
        credentials=CREDENTIALS,
        media_networks=["127.0.0.0/8"],
        fetch_timeout=60,
        max_components_per_call=32,
    ) as server:
        a, b = await _client(server, A), await _client(server, B)
        calls_a = [await _answered_call(server, a, A) for _ in range(2)]
        ref_b = await _answered_call(server, b, B)
        for n in range(64):
            url = f"http://127.0.0.1:{port}/slow-{n}.wav"
            reply = await a.execute(
                "calling.play",
                {**calls_a[n % 2], "control_id": f"slow{n}", "play": [
                    {"type": "audio", "params": {"url": url}}]},
            )  # fmt: skip
            assert reply["result"]["result"]["code"] == "200"
        async with asyncio.timeout(WAIT):
            while len(open_connections) < 4:
                await asyncio.sleep(0.01)
        await _prompt(b, ref_b, "pin", [_tts("Welcome, caller. Please enter your PIN now.")])
        assert (await _event_of(b, "calling.call.play", "pin"))["state"] == "playing"
        await a.call("blade.ping", {})
        a_states = [
            f["params"]["params"]["params"]["state"]
            for f in a.events
            if f["params"]["params"]["event_type"] == "calling.call.play"
        ]
        assert "error" not in a_states and "playing" not in a_states  # all still waiting
        assert most == 4
    silent.close()
    await silent.wait_closed()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_audio_urls_cannot_tell_open_ports_or_existing_files_apart(tmp_path):
    """Loopback URLs to a listening port, a closed port and a silent port, and local files
    that exist or not, all fail the prompt with the same message (but for the URL)."""
    listening = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    (tmp_path / "exists.wav").write_bytes(b"RIFF....WAVE")
    urls = [
        f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}/a.wav",
        f"http://127.0.0.1:{_closed_port()}/a.wav",
        f"http://127.0.0.1:{silent.getsockname()[1]}/a.wav",
        f"http://localhost:{_closed_port()}/a.wav",
        (tmp_path / "exists.wav").as_uri(),
        (tmp_path / "missing.wav").as_uri(),
        "/etc/hostname",
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/x",
    ]
    try:
        async with RelayServer(credentials=CREDENTIALS) as server:
            a = await _client(server, A)
            ref = await _answered_call(server, a, A)
            messages = []
            for n, url in enumerate(urls):
                await _prompt(a, ref, f"probe{n}", [{"type": "audio", "params": {"url": url}}])
                outcome = await _prompt_outcome(a, f"probe{n}")
                assert outcome["type"] == "error"
                messages.append(outcome["params"]["message"].replace(url, "URL"))
    finally:
        silent.close()
        listening.close()
    assert set(messages) == {messages[0]} and "URL" in messages[0]


async def test_calls_end_at_max_call_duration_with_a_clear_reason():
    """A call still up after max_call_duration ends with end_reason maxDuration."""
    async with RelayServer(credentials=CREDENTIALS, max_call_duration=0.5) as server:
        a = await _client(server, A)
        await _answered_call(server, a, A)
        while True:
            state = await a.event("calling.call.state")
            if state["call_state"] == "ended":
                break
        assert state["end_reason"] == "maxDuration"
        assert not server.calls
