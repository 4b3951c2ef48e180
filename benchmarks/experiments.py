"""Proposed optimisations that are not in ``src/``, patched in at run time to be measured.

``python -m benchmarks --experiment NAME[,NAME]`` applies them: server-side ones in the worker
process, SDK-side ones in the relaykit consumer app (never in the signalwire 2.1.1 peer). The
media, speech and latency rows then run with the variant throughout (compare them with a run
without it); the throughput and round-trip rows run the tree and the variant in turn against
the same server, since the machine's load swings more from run to run than these effects.
Each patch wraps or replaces a small piece of relaykit; none copies it.

``uvloop``    (SDK) the consumer app's event loop is uvloop's instead of asyncio's own (set
             as the loop policy before the app's loop starts; ``pip install uvloop``).

Landed, and so no longer here: ``ws-batch`` (the server's outbox writes every queued frame with
one socket write) and ``sdk-fast`` (the SDK's request path without ``wait_for`` tasks, and the
JSON nesting walk only on frames with enough brackets to be too deep).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

Undo = Callable[[], None]


# -- uvloop (SDK) ---------------------------------------------------------------------
def uvloop_policy() -> Undo:
    import uvloop  # not a relaykit dependency: installed for the measurement

    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return lambda: asyncio.set_event_loop_policy(previous)


SERVER: dict[str, Callable[[], Undo]] = {}
SDK: dict[str, Callable[[], Undo]] = {"uvloop": uvloop_policy}


def names(spec: str | None) -> list[str]:
    """The experiments named in ``spec`` (comma-separated); ValueError for an unknown one."""
    found = [name for name in (spec or "").split(",") if name]
    unknown = [name for name in found if name not in SERVER and name not in SDK]
    if unknown:
        known = ", ".join([*SERVER, *SDK])
        raise ValueError(f"unknown experiment {', '.join(unknown)}; known: {known}")
    return found


def _apply(spec: str | None, table: dict[str, Callable[[], Undo]]) -> Undo:
    undos = [table[name]() for name in names(spec) if name in table]

    def undo() -> None:
        for one in reversed(undos):
            one()

    return undo


def apply_server(spec: str | None) -> Undo:
    """Patch the server-side experiments named in ``spec`` into this process (before its
    event loop starts)."""
    return _apply(spec, SERVER)


def apply_sdk(spec: str | None) -> Undo:
    """Patch the SDK-side experiments named in ``spec`` into this (consumer) process."""
    return _apply(spec, SDK)


if __name__ == "__main__":
    print(__doc__)
