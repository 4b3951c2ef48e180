"""The benchmark IVR on relaykit's SDK; the same app as signalwire_ivr.py, in its own process.

Modes (``BENCH_MODE``):

``digits``  answer, ``prompt_tts`` for a PIN (up to 10 digits, terminator ``#``), keep the result
``speech``  answer, ``prompt_tts`` a speech menu with hints ``sales``/``support``, keep the result
``idle``    answer and do nothing more (memory per idle call)
``loop``    answer, then one-digit ``prompt_tts`` after another until the call ends (throughput)
``rtt``     answer, start a long silence, then time ``OPTIONS["count"]`` volume commands
"""

import asyncio
import os
import time

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before relaykit imports numpy

from _appkit import (
    CONTEXT,
    DIGIT_PROMPT,
    MENU_PROMPT,
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

from relaykit import Consumer


class BenchIvr(Consumer):
    def ready(self):
        if not getattr(self, "_reported_ready", False):
            self._reported_ready = True
            asyncio.get_running_loop().create_task(command_loop(self.stop))
            emit("ready", sdk="relaykit")

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
                result.reason,
                time.monotonic(),
            ]
        elif MODE == "speech":
            result = await call.prompt_tts(
                "speech",
                MENU_PROMPT,
                speech_hints=["sales", "support"],
                initial_timeout=OPTIONS.get("initial_timeout", 60.0),
            )
            RESULTS.calls[call.id] = [
                result.prompt_type,
                result.result,
                result.confidence,
                result.reason,
                time.monotonic(),
            ]
        elif MODE == "idle":
            RESULTS.calls[call.id] = [call.state, time.monotonic()]
        elif MODE == "loop":
            while not call.ended:
                result = await call.prompt_tts(
                    "digits", DIGIT_PROMPT, digits_max=1, initial_timeout=5.0
                )
                if call.ended:
                    break
                RESULTS.prompts += 1
                RESULTS.successful += result.successful
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
    BenchIvr(project=PROJECT, token=TOKEN, url=URL, contexts=[CONTEXT]).run()
