"""Proposed optimisations that are not in ``src/``, patched in at run time to be measured.

``python -m benchmarks --experiment NAME[,NAME]`` applies them: server-side ones in the worker
process, SDK-side ones in the relaykit consumer app (never in the signalwire 2.1.1 peer). The
media, speech and latency rows then run with the variant throughout (compare them with a run
without it); the throughput and round-trip rows run the tree and the variant in turn against
the same server, since the machine's load swings more from run to run than these effects.
Each patch wraps or replaces a small piece of relaykit; none copies it.

``ws-batch``  (server) the connection's writer drains its outbox in one go: one websockets send
             context, one ``drain`` and one socket ``write`` for every event queued, instead of
             one of each per event.
``sdk-fast``  (relaykit SDK) the request path without its avoidable asyncio machinery:
             ``Client._wait_ready`` returns at once when connected (each command runs it twice,
             and each time ``asyncio.wait_for`` wraps ``Event.wait()`` in a task), the reply
             future is timed out by one ``call_later`` instead of ``wait_for``, and the JSON
             nesting walk (``jsonrpc._depth_ok``) only runs on frames with enough brackets to
             be too deep.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from typing import Any

Undo = Callable[[], None]


def _patcher() -> tuple[Callable[[Any, str, Any], None], Undo]:
    """``patch(owner, name, value)`` sets an attribute; ``undo()`` restores every one."""
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, value: Any) -> None:
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def undo() -> None:
        while saved:
            owner, name, value = saved.pop()
            setattr(owner, name, value)

    return patch, undo


# -- ws-batch (server) ----------------------------------------------------------------------------
def ws_batch() -> Undo:
    from websockets.asyncio.server import ServerConnection

    from relaykit.server.outbox import Outbox

    patch, undo = _patcher()
    send_data = ServerConnection.send_data

    async def write(self: Any) -> None:
        queue, ws = self._queue, self._write.__self__  # the queue, and the socket it writes to
        while True:
            if not queue:
                if self.closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [queue[i] for i in range(min(len(queue), 512))]
            try:
                async with ws.send_context():  # one drain for the batch
                    for text, _written in batch:
                        ws.protocol.send_text(text.encode())
            except Exception:
                self.closed = True
                return
            for text, written in batch:
                queue.popleft()
                self._bytes -= len(text)
                if written is not None:
                    written()

    def send_data_joined(self: Any) -> None:
        data = self.protocol.data_to_send()
        if all(data):
            self.transport.write(b"".join(data))  # one syscall for the batch
        else:  # an EOF marker: let websockets handle the lot
            self.protocol.writes.extend(data)
            send_data(self)

    patch(Outbox, "_run", write)
    patch(ServerConnection, "send_data", send_data_joined)
    return undo


# -- sdk-fast (relaykit SDK, in the consumer app) -------------------------------------------------
def sdk_fast() -> Undo:
    from relaykit.client import client
    from relaykit.protocol import jsonrpc, session

    patch, undo = _patcher()
    wait_ready = client.Client._wait_ready
    real_wait_for = asyncio.wait_for
    depth_ok, parse_message = jsonrpc._depth_ok, jsonrpc.parse_message
    shallow = [False]

    async def ready_at_once(self: Any, timeout: float | None) -> None:
        if not self._ready.is_set():
            await wait_ready(self, timeout)

    async def wait_for(aw: Any, timeout: float | None) -> Any:
        if timeout is None or not isinstance(aw, asyncio.Future):
            return await real_wait_for(aw, timeout)

        def expire() -> None:
            if not aw.done():
                aw.set_exception(TimeoutError())

        timer = aw.get_loop().call_later(timeout, expire)
        try:
            return await aw
        finally:
            timer.cancel()

    class LeanAsyncio(types.ModuleType):
        """asyncio as client.py sees it, with a wait_for for plain futures."""

        def __getattr__(self, name: str) -> Any:
            return getattr(asyncio, name)

    lean = LeanAsyncio("asyncio")
    lean.wait_for = wait_for  # type: ignore[attr-defined]

    def depth_ok_when_deep(value: Any, limit: int) -> bool:
        return shallow[0] or depth_ok(value, limit)

    def parse_counting_brackets(data: str | bytes) -> Any:
        # nesting deeper than MAX_DEPTH takes more than MAX_DEPTH opening brackets
        shallow[0] = isinstance(data, str) and (
            data.count("{") + data.count("[") <= jsonrpc.MAX_DEPTH
        )
        try:
            return parse_message(data)
        finally:
            shallow[0] = False

    patch(client.Client, "_wait_ready", ready_at_once)
    patch(client, "asyncio", lean)
    patch(jsonrpc, "_depth_ok", depth_ok_when_deep)
    patch(session, "parse_message", parse_counting_brackets)
    return undo


SERVER: dict[str, Callable[[], Undo]] = {"ws-batch": ws_batch}
SDK: dict[str, Callable[[], Undo]] = {"sdk-fast": sdk_fast}


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
    """Patch the server-side experiments named in ``spec`` into this process."""
    return _apply(spec, SERVER)


def apply_sdk(spec: str | None) -> Undo:
    """Patch the SDK-side experiments named in ``spec`` into this (consumer) process."""
    return _apply(spec, SDK)


if __name__ == "__main__":
    print(__doc__)
