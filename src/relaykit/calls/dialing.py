"""Placing calls to groups of devices, for ``calling.dial`` and ``calling.connect`` (§5.5).

The groups are tried in series and the devices of a group in parallel: the first call of a
group to answer wins and the group's other calls are cancelled; when none answers, the next
group rings. A call's outcome is read from its state, so any :class:`~relaykit.calls.Dialer`
(the SIP gateway, the test kit's virtual callees) serves, and device types may be mixed.
"""

from __future__ import annotations

__all__ = ["RingOutcome", "ring_groups"]

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..errors import RelayError
from ..protocol.calling import Device
from .call import Call
from .state import CallState

log = logging.getLogger("relaykit.calls")

Place = Callable[[Device], Awaitable[Call]]
End = Callable[[Call, str], None]


@dataclass(frozen=True, slots=True)
class RingOutcome:
    """How a dial went: the ``winner`` (None if no device answered), else the ``reason`` the
    last call failed (busy, noAnswer, decline, error…) and the ``source`` (its device type)."""

    winner: Call | None
    reason: str = "error"
    source: str = ""


async def ring_groups(
    groups: Sequence[Sequence[Device]], place: Place, end: End, placed: list[Call]
) -> RingOutcome:
    """Ring ``groups`` until a call answers; every call placed is appended to ``placed``.

    ``place`` starts one call (it raises RelayError when the device cannot be called: that
    device fails with ``error``); ``end`` ends one. Cancelled (or failing), it ends every call
    it placed that is still up (``cancel``), also one whose placing was under way.
    """
    reason, source = "error", ""
    try:
        for group in groups:
            legs: list[Call] = []
            for device in group:
                try:
                    leg = await _place(place, device, end)
                except RelayError as exc:
                    log.info("! %s: cannot call %s: %s", device.field, device.type, exc)
                    reason, source = "error", device.type
                    continue
                placed.append(leg)
                legs.append(leg)
            winner = await _first_answer(legs)
            for leg in legs:
                if leg is not winner and not leg.ended:
                    end(leg, "cancel")
            if winner is not None:
                return RingOutcome(winner)
            for leg in legs:
                reason = leg.end_reason or reason
                source = (leg.device or {}).get("type", source)
        return RingOutcome(None, reason, source)
    except BaseException:
        for leg in placed:
            if not leg.ended:
                end(leg, "cancel")
        raise


async def _place(place: Place, device: Device, end: End) -> Call:
    """``place(device)``, run to its end even when the caller is cancelled meanwhile, so the
    call it makes is ended rather than left ringing."""
    task = asyncio.ensure_future(place(device))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:

        def cancel_placed(done: asyncio.Future[Call]) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            leg = done.result()
            if not leg.ended:
                end(leg, "cancel")

        task.add_done_callback(cancel_placed)
        raise


async def _first_answer(legs: Sequence[Call]) -> Call | None:
    """The first of ``legs`` to answer; None once they have all ended."""
    while True:
        for leg in legs:
            if leg.state is CallState.ANSWERED:
                return leg
        live = [leg for leg in legs if not leg.ended]
        if not live:
            return None
        waits = [asyncio.ensure_future(leg.state_changed.wait()) for leg in live]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
