"""The plugin's fixtures used directly: relay_server, relay_ivr, relay_call."""

from __future__ import annotations

import asyncio
import re

import pytest

from relaykit import Call, Consumer

pytestmark = [pytest.mark.asyncio, pytest.mark.relaykit(fast=True)]


class Greeter(Consumer):
    contexts = ("office",)

    async def on_incoming_call(self, call: Call) -> None:
        await call.answer()
        await call.play_tts(f"Hello from {self.name}.")
        await call.hangup()

    def __init__(self, name: str = "the greeter", **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.name = name


async def test_relay_server_listens_on_loopback_with_throw_away_credentials(relay_server):
    """A started server on 127.0.0.1 with one random project and token."""
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+", relay_server.url)
    assert relay_server.credentials.projects == [relay_server.project]
    assert relay_server.credentials.check(relay_server.project, relay_server.token)
    assert len(relay_server.token) >= 16


async def test_relay_ivr_passes_options_to_the_consumer(relay_server, relay_ivr):
    """Keyword options reach the Consumer's constructor; the consumer is returned."""
    greeter = await relay_ivr(Greeter, name="Ada")
    assert isinstance(greeter, Greeter) and greeter.project == relay_server.project
    call = await relay_server.dial_in(context="office")
    await call.expect_prompt(contains="hello from ada")


async def test_relay_ivr_runs_an_async_callable_until_its_contexts_are_received(
    relay_server, relay_ivr
):
    """Any async app(url, project, token) runs; relay_ivr returns once it receives "office"."""

    async def app(url: str, project: str, token: str) -> None:
        await Greeter(name="the app", url=url, project=project, token=token).serve()

    task = await relay_ivr(app, contexts=["office"])
    assert not task.done()
    call = await relay_server.dial_in(context="office", timeout=0.1)  # no waiting needed
    await call.expect_prompt(contains="hello from the app")


async def test_relay_ivr_reports_an_app_that_stops_before_it_is_ready(relay_ivr):
    """An app that fails at once makes relay_ivr raise, naming the app and the cause."""

    async def broken(url: str, project: str, token: str) -> None:
        raise ConnectionRefusedError("nope")

    with pytest.raises(RuntimeError, match="IVR broken stopped before it was ready") as info:
        await relay_ivr(broken, contexts=["office"])
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


async def test_relay_ivr_refuses_what_it_cannot_run(relay_ivr):
    """A plain function is neither a Consumer nor async: TypeError."""
    with pytest.raises(TypeError, match="must be a Consumer or an async callable"):
        await relay_ivr(lambda url, project, token: None)


async def test_relay_call_dials_in_and_waits_for_the_answer(relay_call, relay_ivr):
    """relay_call returns an answered call."""
    await relay_ivr(Greeter)
    call = await relay_call("office", from_number="+15550001111")
    assert call.state in ("answered", "ending", "ended")
    await call.expect_prompt(contains="hello")
    await call.expect_hangup()
    assert call.transcript[0].text.startswith("+15550001111 calls")


async def test_two_ivrs_on_two_contexts_run_side_by_side(relay_server, relay_ivr):
    """Several apps can run in one test; each call reaches the right one."""

    class Other(Greeter):
        contexts = ("sales",)

    await relay_ivr(Greeter, name="office")
    await relay_ivr(Other, name="sales")
    office, sales = await asyncio.gather(
        relay_server.dial_in(context="office"), relay_server.dial_in(context="sales")
    )
    await office.expect_prompt(contains="hello from office")
    await sales.expect_prompt(contains="hello from sales")
