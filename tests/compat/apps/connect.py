"""dial, connect and disconnect as a v2 app writes them; ``python connect.py MODE [NUMBER…]``.

Modes: ``connect AGENT BUSY`` (connect in series to BUSY then AGENT with a ringback; when the
agent leaves, tell the caller), ``connect_async NUMBER…`` (the numbers ring in parallel),
``disconnect AGENT`` (connect, then on "go" disconnect and talk to each leg alone),
``failed NUMBER…`` (nobody answers: apologise), ``empty`` (connect to no device), ``dial
NUMBER BUSY`` (on "go": Calling.dial to NUMBER, play to it, hang up; then new_call().dial() to
BUSY).
"""

import asyncio

from _harness import (
    ARGS,
    CONTEXTS,
    HOST,
    PROJECT,
    TOKEN,
    call_fields,
    emit,
    forward_sdk_logs,
    reported,
    wait_for_go,
)
from signalwire.relay.consumer import Consumer

MODE = ARGS[0]
NUMBERS = ARGS[1:]
RINGBACK = [{"type": "ringtone", "name": "us"}]


def connect_fields(result):
    event = result.event
    peer = result.call
    return {
        "cls": type(result).__name__,
        "successful": result.successful,
        "event_name": None if event is None else event.name,
        "event_payload": None if event is None else event.payload,
        "peer": None if peer is None else call_fields(peer),
    }


async def until_completed(action, seconds=10.0):
    for _ in range(int(seconds / 0.02)):
        if action.completed:
            return
        await asyncio.sleep(0.02)


class Connector(Consumer):
    def setup(self):
        self.project = PROJECT
        self.token = TOKEN
        self.host = HOST
        self.contexts = CONTEXTS

    async def ready(self):
        emit("ready")
        if MODE == "dial":
            await wait_for_go()
            await self.dial()

    @reported
    async def dial(self):
        calling = self.client.calling
        result = await calling.dial(from_number="+15550009999", to_number=NUMBERS[0])
        emit(
            "dialed",
            cls=type(result).__name__,
            successful=result.successful,
            event_name=result.event.name,
            call=call_fields(result.call),
        )
        await result.call.play_tts("This is a reminder of your appointment tomorrow.")
        hangup = await result.call.hangup()
        emit("hung_up", successful=hangup.successful, reason=hangup.reason)
        busy = calling.new_call(from_number="+15550009999", to_number=NUMBERS[1])
        failed = await busy.dial()  # returns on ending; v2 sets busy once ended
        for _ in range(250):  # v2's wait_for_ended() returns at once on an ending call
            if busy.state == "ended":
                break
            await asyncio.sleep(0.02)
        emit("busy", successful=failed.successful, busy=busy.busy, state=busy.state)

    @reported
    async def on_incoming_call(self, call):
        await call.answer()
        await getattr(self, MODE)(call)

    async def connect(self, call):
        left = asyncio.get_running_loop().create_future()
        call.on("connect.disconnected", lambda params: left.set_result(params))
        agent, busy = NUMBERS
        result = await call.connect(
            [{"to_number": busy}, {"to_number": agent}], ringback_list=list(RINGBACK)
        )
        emit("connected", **connect_fields(result), call_peer=call_fields(call.peer))
        params = await left
        emit("disconnected", peer=params["peer"]["call_id"], call_peer=call.peer)
        await call.play_tts("The agent has left the call. Goodbye.")
        await call.hangup()

    async def connect_async(self, call):
        action = await call.connect_async([[{"to_number": n} for n in NUMBERS]])
        emit("connecting", state=action.state, completed=action.completed)
        await until_completed(action)
        emit("connected", state=action.state, **connect_fields(action.result))
        agent = action.result.call  # v2's result.call is the call's live peer: keep it
        await call.wait_for_ended()
        emit("ended", peer_state=agent.state, result_call=action.result.call)

    async def disconnect(self, call):
        result = await call.connect([{"to_number": NUMBERS[0]}])
        emit("connected", **connect_fields(result))
        agent = result.call
        await wait_for_go()
        unbridged = await call.disconnect()
        emit(
            "unbridged",
            cls=type(unbridged).__name__,
            successful=unbridged.successful,
            event_name=unbridged.event.name,
            call_state=call.state,
            agent_state=agent.state,
        )
        await asyncio.gather(
            call.play_tts("Thank you for waiting."), agent.play_tts("The caller is on hold.")
        )
        await agent.hangup()
        await call.hangup()

    async def failed(self, call):
        result = await call.connect(
            [{"to_number": n, "timeout": 2} for n in NUMBERS], ringback_list=list(RINGBACK)
        )
        emit("connected", **connect_fields(result))
        await call.play_tts("Nobody is available. Goodbye.")
        await call.hangup()

    async def empty(self, call):
        result = await call.connect([])
        emit("connected", **connect_fields(result))
        await call.hangup()


if __name__ == "__main__":
    forward_sdk_logs()
    Connector().run()
