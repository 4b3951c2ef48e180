"""A small JSON-RPC client of Kamailio's ``jsonrpcs`` datagram socket (UDP).

Used for one job: when a relaykit node dies, its SIP callers must hear a BYE. The shipped
configuration (``deploy/kamailio/``) puts every answered dialog in the dialog profile
``relaykit`` with the answering node's ``host:port`` as the value; :meth:`end_dialogs_of`
lists that profile's dialogs (``dlg.profile_list``) and ends each one (``dlg.end_dlg``, a BYE
both ways).
"""

from __future__ import annotations

__all__ = ["PROFILE", "KamailioRpc", "parse_address"]

import asyncio
import itertools
import json
from typing import Any

PROFILE = "relaykit"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``udp:`` prefix allowed); ValueError otherwise."""
    host, sep, port = text.removeprefix("udp:").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, not {text!r}")
    return host, int(port)


class _Reply(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


class KamailioRpc:
    """Kamailio's JSON-RPC over UDP at ``address`` (``modparam("jsonrpcs", "dgram_socket",
    "udp:HOST:PORT")``)."""

    def __init__(self, address: tuple[str, int], *, timeout: float = 2.0) -> None:
        self.address = address
        self.timeout = timeout
        self._ids = itertools.count(1)

    async def call(self, method: str, *params: Any) -> Any:
        """One RPC; its ``result``. Raises RuntimeError for an RPC error, TimeoutError."""
        request = {
            "jsonrpc": "2.0",
            "method": method,
            "params": list(params),
            "id": next(self._ids),
        }
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(_Reply, remote_addr=self.address)
        try:
            transport.sendto(json.dumps(request).encode())
            data = await asyncio.wait_for(protocol.answer, self.timeout)
        finally:
            transport.close()
        reply = json.loads(data)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result")

    async def end_dialogs_of(self, node_sip: str) -> int:
        """End every dialog the proxy keeps for the node at SIP ``host:port``; how many."""
        try:
            listed = await self.call("dlg.profile_list", PROFILE, node_sip)
        except RuntimeError:
            return 0  # no dialog in the profile: Kamailio answers with an error
        ended = 0
        for dialog in _dialogs(listed):
            try:
                await self.call("dlg.end_dlg", int(dialog["h_entry"]), int(dialog["h_id"]))
            except (RuntimeError, KeyError, ValueError, TypeError):
                continue
            ended += 1
        return ended


def _dialogs(listed: Any) -> list[dict[str, Any]]:
    """The dialogs in a ``dlg.profile_list`` result (a list, or one object)."""
    if isinstance(listed, dict):
        listed = [listed]
    if not isinstance(listed, list):
        return []
    return [d for d in listed if isinstance(d, dict) and "h_entry" in d and "h_id" in d]
