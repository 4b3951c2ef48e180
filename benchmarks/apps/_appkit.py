"""Shared by the benchmark IVRs (stdlib only: it runs under relaykit and under signalwire 2.1.1).

Settings come from the environment: ``BENCH_URL``, ``BENCH_PROJECT``, ``BENCH_TOKEN``,
``BENCH_CONTEXT``, ``BENCH_MODE`` and ``BENCH_OPTIONS`` (a JSON object). The app reports on
stdout, one JSON object per line, and never per call: results are kept in memory and sent as one
``summary`` line when the benchmark writes ``report`` on stdin. Times are ``time.monotonic()``,
which on Linux is the same clock in every process, so the benchmark can compare them with its
own.
"""

import asyncio
import json
import os
import sys
import time

URL = os.environ["BENCH_URL"]
PROJECT = os.environ["BENCH_PROJECT"]
TOKEN = os.environ["BENCH_TOKEN"]
CONTEXT = os.environ.get("BENCH_CONTEXT", "bench")
MODE = os.environ.get("BENCH_MODE", "digits")
OPTIONS = json.loads(os.environ.get("BENCH_OPTIONS") or "{}")

PIN_PROMPT = "Please enter your 4 digit PIN, then press pound"
MENU_PROMPT = "Say sales or support"
DIGIT_PROMPT = "Enter a digit"


def emit(event, **fields):
    sys.stdout.write(json.dumps({"event": event, "t": time.monotonic(), **fields}) + "\n")
    sys.stdout.flush()


class Results:
    """What the IVR saw: per-call results (keyed by call id) and running counters."""

    def __init__(self):
        self.calls = {}  # call_id -> list of fields, one record per call
        self.prompts = 0  # completed prompts (loop mode)
        self.successful = 0
        self.errors = []
        self.rtts = []

    def summary(self):
        return {
            "calls": self.calls,
            "prompts": self.prompts,
            "successful": self.successful,
            "errors": self.errors[:20],
            "error_count": len(self.errors),
            "rtts": self.rtts,
        }


RESULTS = Results()


def keep_result(call_id, result, detail, reason=None):
    """A call's prompt result: type, value, ``detail`` (terminator or confidence), reason, time."""
    RESULTS.calls[call_id] = [result.prompt_type, result.result, detail, reason, time.monotonic()]


def count_prompt(result):
    """One more prompt done in ``loop`` mode."""
    RESULTS.prompts += 1
    RESULTS.successful += bool(result.successful)


async def time_volume_commands(action, count):
    """``rtt`` mode: ``count`` volume commands on a running play, each timed; then stop it."""
    for _ in range(count):
        start = time.perf_counter()
        outcome = await action.volume(0)
        RESULTS.rtts.append(time.perf_counter() - start)
        if not outcome.successful:
            RESULTS.errors.append("volume command failed")
            break
    await action.stop()
    emit("rtt_done")


def guarded(handler):
    """Wrap ``on_incoming_call`` so an exception is counted, never lost in a task."""

    async def wrapper(*args):
        try:
            await handler(*args)
        except Exception as exc:  # reported in the summary
            RESULTS.errors.append(repr(exc))

    return wrapper


_REPORT_HOOKS = []


def on_report(hook):
    """Run ``hook()`` whenever the benchmark asks for a report (e.g. write a profile)."""
    _REPORT_HOOKS.append(hook)


async def command_loop(stop):
    """Answer the benchmark's stdin commands: ``report`` (summary line), ``exit``."""
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        command = line.strip()
        if not line or command == "exit":
            emit("bye")
            await stop()
            return
        if command == "report":
            for hook in _REPORT_HOOKS:
                hook()
            emit("summary", **RESULTS.summary())
