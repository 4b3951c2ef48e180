"""A speech decoding process: ``python -m relaykit.calls.speech_worker``.

Started by :class:`relaykit.calls.speech.SpeechRecognition`; it imports relaykit only, never the
user's ``__main__``. It builds its :class:`~relaykit.media.engines.SpeechEngines` from the
:class:`~relaykit.media.engines.SpeechConfig` in ``RELAYKIT_SPEECH_CONFIG`` (JSON), loads
pocketsphinx's model, says ``ready``, then answers decode requests one at a time (wire format:
:mod:`relaykit.calls.speech`) until its standard input closes; Whisper loads on the first
utterance that needs it. Anything written to standard output by Python or native code
goes to standard error, which the server logs; the protocol has its own copy of the stdout pipe.
A frame it cannot read ends the process with exit code 2.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import BinaryIO

import numpy as np

from relaykit.calls.speech import (
    CONFIG_ENV,
    WireError,
    decode_utterance,
    encode_frame,
    read_frame,
)
from relaykit.media.engines import SpeechConfig, SpeechEngines

BAD_INPUT = 2  # exit code: a frame that does not follow the protocol


def serve(requests: BinaryIO, replies: BinaryIO, started: float) -> int:
    config = os.environ.get(CONFIG_ENV)
    engines = SpeechEngines(SpeechConfig.from_json(config) if config else None)
    engines.warm_up()
    ready = {"type": "ready", "pid": os.getpid(), "load_seconds": time.monotonic() - started}
    replies.write(encode_frame(ready))
    replies.flush()
    while True:
        try:
            frame = read_frame(requests)
        except WireError as exc:
            print(f"speech worker: bad request: {exc}", file=sys.stderr)
            return BAD_INPUT
        if frame is None:
            return 0  # the server closed the pipe
        meta, payload = frame
        reply: dict[str, object] = {"type": "result", "id": meta.get("id")}
        try:
            if meta.get("type") != "decode":
                raise WireError(f"unknown request type {meta.get('type')!r}")
            if len(payload) % 2:
                raise WireError(f"audio of {len(payload)} bytes is not int16 samples")
            began = time.process_time()
            text, confidence = decode_utterance(
                engines,
                str(meta["language"]),
                [str(h) for h in meta["hints"]],
                np.frombuffer(payload, dtype="<i2").astype(np.int16),
                bool(meta["final"]),
                str(meta.get("engine") or "auto"),
            )
            reply.update(text=text, confidence=confidence, cpu_seconds=time.process_time() - began)
        except Exception as exc:  # answered, not fatal: the next request may be fine
            reply.update(type="error", error=f"{type(exc).__name__}: {exc}")
        replies.write(encode_frame(reply))
        replies.flush()


def main() -> int:
    started = time.monotonic()
    # The protocol keeps the stdout pipe on a descriptor of its own; fd 1 (print, native
    # libraries) then points at stderr, so nothing stray lands in a reply.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    # Ctrl-C in a terminal reaches the whole process group; the server ends this process
    # by closing its stdin (or killing it), so a traceback here would only be noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with replies:
        return serve(sys.stdin.buffer, replies, started)


if __name__ == "__main__":
    sys.exit(main())
