"""The SDK against the real server: connection, calls, actions and results."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import soundfile

from relaykit import AuthenticationError, Call, Client, Consumer, RelayServer
from relaykit.media.frames import SAMPLE_RATE
from tests.compat.wire import WireRecorder
from tests.helpers import PROJECT, TOKEN, WAIT, outcome

PROMPT_METHODS = ("prompt", "prompt_audio", "prompt_tts", "prompt_ringtone")

pytestmark = pytest.mark.asyncio


async def test_wrong_token_raises_authentication_error_instead_of_retrying_forever(server):
    """Client.connect() fails at once with AuthenticationError for a refused token."""
    client = Client(PROJECT, "wrong", server.url)
    with pytest.raises(AuthenticationError, match="authentication failed"):
        await client.connect()
    await client.disconnect()


async def test_consumer_without_contexts_is_refused_before_connecting(server):
    """serve() says which attributes are missing."""
    consumer = Consumer(project=PROJECT, token=TOKEN, url=server.url)
    with pytest.raises(ValueError, match="contexts"):
        await consumer.serve()


async def test_bare_host_gets_wss_and_ws_urls_are_kept():
    """host handling follows the v2 SDK (§1.1)."""
    assert Client("p", "t", "example.signalwire.com").url == "wss://example.signalwire.com"
    assert Client("p", "t", "ws://127.0.0.1:9").url == "ws://127.0.0.1:9"


async def test_incoming_call_carries_the_offer_and_answer_reports_answered(server, run_ivr):
    """The Call has the offer's numbers and context; answer() moves it to answered."""

    async def ivr(call: Call):
        seen = (call.id, call.context, call.from_number, call.to_number, call.state)
        answered = await call.answer()
        return seen, answered, call.state

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office", from_number="+1555", to_number="+1666")
    (call_id, context, from_number, to_number, state), answered, after = await outcome(outcomes)
    assert (call_id, context, from_number, to_number, state) == (
        caller.call_id,
        "office",
        "+1555",
        "+1666",
        "created",
    )
    assert answered.successful and after == "answered"


async def test_hangup_from_the_ivr_ends_the_call_for_the_caller(server, run_ivr):
    """call.hangup() returns the end reason and the caller sees ended."""

    async def ivr(call: Call):
        await call.answer()
        return await call.hangup()

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    result = await outcome(outcomes)
    assert result.successful and result.reason == "hangup"
    await caller.wait_for_state("ended")


async def test_commands_after_the_call_ended_complete_unsuccessfully_without_hanging(
    server, run_ivr
):
    """A prompt or answer on an ended call returns an unsuccessful result at once."""
    hung_up = asyncio.Event()

    async def ivr(call: Call):
        await call.answer()
        await asyncio.wait_for(hung_up.wait(), WAIT)
        await call.wait_for_ended()
        prompt = await call.prompt_tts("digits", "Anyone there?", digits_max=1)
        answer = await call.answer()
        return prompt, answer

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.hangup()
    hung_up.set()
    prompt, answer = await outcome(outcomes)
    assert not prompt.successful and not answer.successful


async def test_prompt_kwargs_that_do_not_fit_raise_value_error_before_sending(server, run_ivr):
    """speech options on a digits prompt are a ValueError naming the option (not KeyError)."""

    async def ivr(call: Call):
        with pytest.raises(ValueError, match="speech_hints"):
            await call.prompt_tts("digits", "Hi", speech_hints=["yes"])
        with pytest.raises(ValueError, match="prompt_type"):
            await call.prompt_tts("dtmf", "Hi")
        with pytest.raises(TypeError, match="digit_max"):
            await call.prompt_tts("digits", "Hi", digit_max=3)
        return "checked"

    outcomes = await run_ivr(ivr)
    await server.dial_in(context="office")
    assert await outcome(outcomes) == "checked"


async def test_refused_prompt_completes_the_action_unsuccessfully(server, run_ivr):
    """A prompt the server refuses (unknown ringtone) is completed, not left pending."""

    async def ivr(call: Call):
        await call.answer()
        action = await call.prompt_ringtone_async("digits", "atlantis", digits_max=1)
        return action

    outcomes = await run_ivr(ivr)
    await server.dial_in(context="office")
    action = await outcome(outcomes)
    assert action.completed and action.state == "failed"
    assert not action.result.successful
    assert "ringtone" in action.result.event.payload["message"]


async def test_prompt_callbacks_and_play_events_fire_on_the_call(server, run_ivr):
    """call.on('prompt') gets the collect params; play events carry the prompt's control_id."""
    seen: dict[str, list] = {"prompt": [], "play": []}

    async def ivr(call: Call):
        call.on("prompt", seen["prompt"].append)
        call.on("play.stateChange", lambda p: seen["play"].append(p["state"]))
        await call.answer()
        action = await call.prompt_tts_async("digits", "Press one key", digits_max=1)
        await action.wait(WAIT)
        return action

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.press("5")
    action = await outcome(outcomes)
    assert action.result.result == "5"
    assert [p["control_id"] for p in seen["prompt"]] == [action.control_id]
    assert seen["prompt"][0]["event_type"] == "calling.call.collect"
    assert seen["play"] == ["playing", "finished"]
    assert action.payload["collect"] == {"digits": {"max": 1}}


async def test_payload_volume_is_sent_as_a_float_only_when_given(server, run_ivr):
    """prompt volume=0 is sent as 0.0 (v2 behaviour); omitted volume is not sent."""

    async def ivr(call: Call):
        await call.answer()
        quiet = await call.prompt_tts_async("digits", "A", digits_max=1, volume=0)
        plain = await call.prompt_tts_async("digits", "B", digits_max=1)
        await quiet.stop()
        await plain.stop()
        return quiet.payload, plain.payload

    outcomes = await run_ivr(ivr)
    await server.dial_in(context="office")
    quiet, plain = await outcome(outcomes)
    assert quiet["volume"] == 0.0 and isinstance(quiet["volume"], float)
    assert "volume" not in plain


async def test_client_reconnects_after_the_server_restarts_on_the_same_port():
    """After a restart the client reconnects by itself and can receive calls again."""
    first = await RelayServer(credentials={PROJECT: TOKEN}).start()
    port = first.port
    outcomes: asyncio.Queue = asyncio.Queue()

    class Ivr(Consumer):
        contexts = ("office",)

        async def on_incoming_call(self, call: Call) -> None:
            outcomes.put_nowait((await call.answer()).successful)

    consumer = Ivr(project=PROJECT, token=TOKEN, url=first.url)
    task = asyncio.create_task(consumer.serve())
    try:
        await first.dial_in(context="office")
        assert await outcome(outcomes) is True
        await first.stop()
        second = await RelayServer(port=port, credentials={PROJECT: TOKEN}).start()
        try:
            await second.dial_in(context="office", timeout=WAIT)
            assert await outcome(outcomes) is True
        finally:
            await second.stop()
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, WAIT)


async def test_plain_client_receives_calls_the_v2_way(server):
    """Client + client.on('ready') + client.calling.receive(contexts, handler), as in v2."""
    answered: asyncio.Queue = asyncio.Queue()
    client = Client(PROJECT, TOKEN, server.url)

    async def handler(call: Call) -> None:
        answered.put_nowait((await call.answer()).successful)

    async def ready(c: Client) -> None:
        await c.calling.receive(["office"], handler)

    client.on("ready", ready)
    await client.connect()
    try:
        await server.dial_in(context="office")
        assert await outcome(answered) is True
    finally:
        await client.disconnect()


# -- every prompt option reaches the wire, from every prompt method --------------------------------
ALL_OPTIONS = {
    "volume": -3,
    "initial_timeout": 4,
    "digits_max": 1,
    "digits_terminators": "#",
    "digits_timeout": 2,
    "end_silence_timeout": 0.8,
    "speech_timeout": 20,
    "speech_language": "en-US",
    "speech_hints": ["one"],
    "partial_results": True,
    "send_start_of_input": True,
    "barge_in": False,
}
ALL_OPTIONS_COLLECT = {
    "initial_timeout": 4,
    "partial_results": True,
    "send_start_of_input": True,
    "barge_in": False,
    "digits": {"max": 1, "terminators": "#", "digit_timeout": 2},
    "speech": {
        "end_silence_timeout": 0.8,
        "speech_timeout": 20,
        "language": "en-US",
        "hints": ["one"],
    },
}


@pytest.fixture
def wav_url(tmp_path):
    t = np.arange(int(0.4 * SAMPLE_RATE)) / SAMPLE_RATE
    path = tmp_path / "menu.wav"
    soundfile.write(path, (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32), SAMPLE_RATE)
    return path.as_uri()


@pytest.mark.parametrize(
    "method", [f"{base}{kind}" for base in PROMPT_METHODS for kind in ("", "_async")]
)
async def test_every_prompt_option_reaches_the_wire_from_every_prompt_method(
    server, wav_url, method
):
    """Each of the 8 prompt methods sends every option it is given, under its wire name."""
    media = {
        "prompt": [{"type": "tts", "text": "Press a key"}],
        "prompt_audio": wav_url,
        "prompt_tts": "Press a key",
        "prompt_ringtone": "us",
    }[method.removesuffix("_async")]
    outcomes: asyncio.Queue = asyncio.Queue()

    class Ivr(Consumer):
        contexts = ("office",)

        async def on_incoming_call(self, call: Call) -> None:
            await call.answer()
            started = await getattr(call, method)("both", media, **ALL_OPTIONS)
            outcomes.put_nowait(await started.wait() if method.endswith("_async") else started)

    async with WireRecorder(server.url) as wire:
        consumer = Ivr(project=PROJECT, token=TOKEN, url=wire.url)
        task = asyncio.create_task(consumer.serve())
        try:
            caller = await server.dial_in(context="office", timeout=WAIT)
            request = await wire.wait_prompt_playing(caller.call_id, timeout=WAIT)
            await caller.press("5")
            result = await outcome(outcomes)
        finally:
            await consumer.stop()
            await asyncio.wait_for(task, WAIT)
    params = request.execute_params
    assert params["collect"] == ALL_OPTIONS_COLLECT
    assert params["volume"] == -3.0
    assert (result.successful, result.prompt_type, result.result) == (True, "digit", "5")


async def test_wait_for_takes_states_as_arguments_as_a_list_or_as_v2_events(server, run_ivr):
    """wait_for("answered"), wait_for(["answered"]) and v2's wait_for(events=[...]) all work."""
    hung_up = asyncio.Event()

    async def ivr(call: Call):
        await call.answer()
        forms = [
            await call.wait_for("answered", timeout=WAIT),
            await call.wait_for(["ringing", "answered"], timeout=WAIT),
            await call.wait_for(events=["answered"], timeout=WAIT),
        ]
        await asyncio.wait_for(hung_up.wait(), WAIT)
        forms.append(await call.wait_for(events=["ended"], timeout=WAIT))
        forms.append(await call.wait_for(events=["answered"], timeout=WAIT))
        return forms

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in(context="office")
    await caller.wait_answered()
    await caller.hangup()
    hung_up.set()
    assert await outcome(outcomes) == [True, True, True, True, False]


async def test_consumer_passes_its_connection_options_to_the_client(server):
    """Consumer(request_timeout=…, reconnect=…) configures the Client it creates."""
    connected = asyncio.Event()

    class Ivr(Consumer):
        def ready(self) -> None:
            connected.set()

    consumer = Ivr(
        project=PROJECT,
        token=TOKEN,
        url=server.url,
        contexts=["office"],
        request_timeout=3.5,
        reconnect=False,
        resume_timeout=1.5,
    )
    task = asyncio.create_task(consumer.serve())
    try:
        await asyncio.wait_for(connected.wait(), WAIT)
        client = consumer.client
        assert client is not None
        assert (client.request_timeout, client.reconnect, client.resume_timeout) == (
            3.5,
            False,
            1.5,
        )
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, WAIT)
