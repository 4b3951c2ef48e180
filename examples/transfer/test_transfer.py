"""The front desk, called by a virtual caller; the agents are virtual callees."""

import pytest
from transfer import SALES, SUPPORT, FrontDesk

from relaykit.testing import Callee

pytestmark = [pytest.mark.asyncio, pytest.mark.relaykit(fast=True)]


async def test_the_caller_reaches_the_second_sales_agent(relay_server, relay_ivr):
    """A refused account number is asked again; the first sales agent is busy, the second
    answers; then the caller and the agent hear each other."""
    callees = relay_server.callees({SALES[0]: "busy", SALES[1]: Callee("answer", ring=2)})
    await relay_ivr(FrontDesk)
    caller = await relay_server.dial_in(context="office")
    await caller.expect_prompt(contains="account number")
    await caller.press("0123#")
    await caller.expect_prompt(contains="not a valid account number")
    await caller.expect_prompt(contains="account number")
    await caller.press("412345#")
    await caller.expect_prompt(contains="for sales, press 1")
    await caller.press("1")
    await caller.expect_prompt(contains="please hold")
    agent = await callees.expect_answered(SALES[1], timeout=10)
    agent.listen_for_digits()
    caller.listen_for_digits()
    await caller.press("5")
    await agent.press("6")
    await caller.silence(0.3)
    assert (agent.heard_digits(), caller.heard_digits()) == ("5", "6")
    await agent.hangup()
    await caller.hangup()


async def test_nobody_in_support_answers(relay_server, relay_ivr):
    """Both support agents ring together until their timeout; the caller is told."""
    callees = relay_server.callees({number: "ring" for number in SUPPORT})
    await relay_ivr(FrontDesk)
    caller = await relay_server.dial_in(context="office")
    await caller.expect_prompt(contains="account number")
    await caller.press("412345#")
    await caller.expect_prompt(contains="for sales, press 1")
    await caller.press("2")
    await caller.expect_prompt(contains="nobody is available", timeout=40)
    assert await caller.expect_hangup() == "hangup"
    assert [(d.to_number, d.end_reason) for d in callees.dialled] == [
        (SUPPORT[0], "noAnswer"),
        (SUPPORT[1], "noAnswer"),
    ]
