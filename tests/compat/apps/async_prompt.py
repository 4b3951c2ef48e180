"""prompt_tts_async, then PromptAction.volume() and PromptAction.stop() while it runs.

Waits for a line on stdin (the test: "the caller has pressed keys") before stopping.
"""

import asyncio

from _harness import (
    CONTEXTS,
    HOST,
    PROJECT,
    TOKEN,
    emit,
    forward_sdk_logs,
    prompt_fields,
    reported,
    wait_for_go,
)
from signalwire.relay.consumer import Consumer


async def until_completed(action, seconds=3.0):
    for _ in range(int(seconds / 0.02)):
        if action.completed:
            return
        await asyncio.sleep(0.02)


class AccountMenu(Consumer):
    def ready(self):
        emit("ready")

    @reported
    async def on_incoming_call(self, call):
        await call.answer()
        action = await call.prompt_tts_async(
            "digits",
            "Please enter your account number. Take your time, we will wait for you.",
            digits_max=6,
            digits_timeout=5,
        )
        emit(
            "started",
            control_id=action.control_id,
            completed=action.completed,
            state=action.state,
            prompt_type=action.result.prompt_type,
        )
        louder = await action.volume(-6)
        emit("volume", cls=type(louder).__name__, successful=louder.successful)
        too_loud = await action.volume(100)
        emit("volume_out_of_range", successful=too_loud.successful)
        await wait_for_go()
        stop = await action.stop()
        emit(
            "stopped",
            cls=type(stop).__name__,
            successful=stop.successful,
            completed_when_stop_returned=action.completed,
        )
        await until_completed(action)
        emit(
            "result", completed=action.completed, state=action.state, **prompt_fields(action.result)
        )
        again = await action.stop()
        emit("stop_again", successful=again.successful)
        await call.hangup()


if __name__ == "__main__":
    forward_sdk_logs()
    # The constructor form (the other apps set the same attributes in setup()).
    AccountMenu(project=PROJECT, token=TOKEN, host=HOST, contexts=CONTEXTS).run()
