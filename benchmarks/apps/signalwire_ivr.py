"""The benchmark IVR on the official ``signalwire==2.1.1`` SDK (the peer), unchanged.

It runs under the compat venv's python and does what relaykit_ivr.py does in the same mode; only
the SDK differs. Modes: ``loop`` (throughput), ``rtt`` (command round trip), ``digits``.
"""

import asyncio
import os

from _appkit import (
    CONTEXT,
    DIGIT_PROMPT,
    MODE,
    OPTIONS,
    PIN_PROMPT,
    PROJECT,
    TOKEN,
    URL,
    command_loop,
    count_prompt,
    emit,
    guarded,
    keep_result,
    time_volume_commands,
)
from signalwire.relay.consumer import Consumer


async def _exit():
    os._exit(0)  # the v2 client has no clean way out of its run loop


class PeerIvr(Consumer):
    def setup(self):
        self.project = PROJECT
        self.token = TOKEN
        self.host = URL
        self.contexts = [CONTEXT]

    def ready(self):
        if not getattr(self, "_reported_ready", False):
            self._reported_ready = True
            asyncio.get_event_loop().create_task(command_loop(_exit))
            emit("ready", sdk="signalwire 2.1.1")

    @guarded
    async def on_incoming_call(self, call):
        await call.answer()
        if MODE == "digits":
            result = await call.prompt_tts(
                "digits",
                PIN_PROMPT,
                digits_max=10,
                digits_terminators="#",
                initial_timeout=OPTIONS.get("initial_timeout", 60.0),
                digits_timeout=OPTIONS.get("digits_timeout", 5.0),
            )
            keep_result(call.id, result, result.terminator)
        elif MODE == "loop":
            while not call.ended:
                result = await call.prompt_tts(
                    "digits", DIGIT_PROMPT, digits_max=1, initial_timeout=5.0
                )
                if call.ended:
                    break
                count_prompt(result)
        elif MODE == "rtt":
            action = await call.play_silence_async(600)
            await time_volume_commands(action, int(OPTIONS.get("count", 1000)))


if __name__ == "__main__":
    PeerIvr().run()
