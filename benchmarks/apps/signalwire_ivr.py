"""The benchmark IVR on the official ``signalwire==2.1.1`` SDK (the peer), unchanged.

It runs under the compat venv's python and does what relaykit_ivr.py does in the same mode; only
the SDK differs. Modes: ``loop`` (throughput), ``rtt`` (command round trip), ``digits``.
"""

import asyncio
import os
import time

from _appkit import (
    CONTEXT,
    DIGIT_PROMPT,
    MODE,
    OPTIONS,
    PIN_PROMPT,
    PROJECT,
    RESULTS,
    TOKEN,
    URL,
    command_loop,
    emit,
    guarded,
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
            RESULTS.calls[call.id] = [
                result.prompt_type,
                result.result,
                result.terminator,
                None,
                time.monotonic(),
            ]
        elif MODE == "loop":
            while not call.ended:
                result = await call.prompt_tts(
                    "digits", DIGIT_PROMPT, digits_max=1, initial_timeout=5.0
                )
                if call.ended:
                    break
                RESULTS.prompts += 1
                RESULTS.successful += bool(result.successful)
        elif MODE == "rtt":
            action = await call.play_silence_async(600)
            for _ in range(int(OPTIONS.get("count", 1000))):
                start = time.perf_counter()
                outcome = await action.volume(0)
                RESULTS.rtts.append(time.perf_counter() - start)
                if not outcome.successful:
                    RESULTS.errors.append("volume command failed")
                    break
            await action.stop()
            emit("rtt_done")


if __name__ == "__main__":
    PeerIvr().run()
