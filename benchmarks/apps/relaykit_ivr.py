"""The benchmark IVR on relaykit's SDK; the same app as signalwire_ivr.py, in its own process.

Modes (``BENCH_MODE``):

``digits``  answer, ``prompt_tts`` for a PIN (up to 10 digits, terminator ``#``), keep the result
``speech``  answer, ``prompt_tts`` a speech menu with hints ``sales``/``support``, keep the result
``idle``    answer and do nothing more (memory per idle call)
``loop``    answer, then one-digit ``prompt_tts`` after another until the call ends (throughput)
``rtt``     answer, start a long silence, then time ``OPTIONS["count"]`` volume commands

``BENCH_EXPERIMENT`` names SDK-side experiments (``benchmarks/experiments.py``) to patch in.
"""

import asyncio
import os
import sys
import time
from pathlib import Path

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
    count_prompt,
    emit,
    guarded,
    keep_result,
    time_volume_commands,
)

from relaykit import Consumer

if os.environ.get("BENCH_EXPERIMENT"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from benchmarks.experiments import apply_sdk

    apply_sdk(os.environ["BENCH_EXPERIMENT"])


class BenchIvr(Consumer):
    def ready(self):
        if not getattr(self, "_reported_ready", False):
            self._reported_ready = True
            asyncio.get_running_loop().create_task(command_loop(self.stop))
            emit("ready", sdk="relaykit", experiment=os.environ.get("BENCH_EXPERIMENT"))

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
            keep_result(call.id, result, result.terminator, result.reason)
        elif MODE == "speech":
            result = await call.prompt_tts(
                "speech",
                MENU_PROMPT,
                speech_hints=["sales", "support"],
                initial_timeout=OPTIONS.get("initial_timeout", 60.0),
            )
            keep_result(call.id, result, result.confidence, result.reason)
        elif MODE == "idle":
            RESULTS.calls[call.id] = [call.state, time.monotonic()]
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
    app = BenchIvr(project=PROJECT, token=TOKEN, url=URL, contexts=[CONTEXT])
    if os.environ.get("BENCH_PROFILE"):  # cProfile stats, written at every report
        import cProfile

        from _appkit import on_report

        profiler = cProfile.Profile()
        on_report(lambda: profiler.dump_stats(os.environ["BENCH_PROFILE"]))
        profiler.enable()
    app.run()
