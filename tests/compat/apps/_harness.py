"""What the compat apps share: their settings, and one way to tell the test what they saw.

These apps run under the unchanged ``signalwire==2.1.1`` SDK in its own venv, never under
relaykit. Each is what a user would write, plus ``emit(...)`` lines: one JSON object per line on
stdout, which the test reads. Settings come from the environment:

``RELAY_HOST`` (the ``ws://`` URL), ``RELAY_PROJECT``, ``RELAY_TOKEN``, ``RELAY_CONTEXTS``
(comma-separated). Lines on stdin are the test's "go on" signals (see :func:`wait_for_go`).
"""

import asyncio
import json
import logging
import os
import sys
import time
import traceback

HOST = os.environ["RELAY_HOST"]
PROJECT = os.environ["RELAY_PROJECT"]
TOKEN = os.environ["RELAY_TOKEN"]
CONTEXTS = os.environ.get("RELAY_CONTEXTS", "office").split(",")
ARGS = sys.argv[1:]


def emit(event, **fields):
    """Report one observation to the test (``t`` is time.monotonic(), shared with the test)."""
    line = json.dumps({"event": event, "t": time.monotonic(), **fields}, default=repr)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def prompt_fields(result):
    """Everything a v2 app can read from a PromptResult."""
    event = result.event
    return {
        "successful": result.successful,
        "prompt_type": result.prompt_type,
        "result": result.result,
        "terminator": result.terminator,
        "confidence": result.confidence,
        "event_name": None if event is None else event.name,
        "event_payload": None if event is None else event.payload,
    }


def call_fields(call):
    return {
        "call_id": call.id,
        "context": call.context,
        "from_number": call.from_number,
        "to_number": call.to_number,
        "state": call.state,
    }


async def wait_for_go():
    """Block until the test writes a line to our stdin; returns the line."""
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip()


def reported(handler):
    """Wrap ``on_incoming_call`` so an exception reaches the test instead of a lost task."""

    async def wrapper(*args):
        try:
            await handler(*args)
        except Exception as exc:  # surfaced to the test
            emit("app_error", error=repr(exc), traceback=traceback.format_exc())

    return wrapper


class _Forward(logging.Handler):
    def emit(self, record):
        emit("log", level=record.levelname, message=record.getMessage())


def forward_sdk_logs(level=logging.WARNING):
    """Report the SDK's own warnings and errors (``Client setup error: …``) as events."""
    # The SDK's own basicConfig (LOG_LEVEL, to stderr) first, or it would find a handler and
    # configure nothing.
    logging.basicConfig(level=os.getenv("LOG_LEVEL", "INFO").upper())
    logging.getLogger().addHandler(_Forward(level))
