"""Bridged audio: what one call's far end says, heard by another call's far end.

A bridge between two calls (``calling.connect``) is two :class:`BridgedAudio` components, one
in each call's table: each adds the *other* call's inbound frame of the same tick to its own
call's outbound mix. The engine reads every call's inbound frame before it renders any
(:attr:`~relaykit.media.engine.CallMedia.inbound_frame`), so both directions flow in the one
tick, with no delay and one numpy add per frame. Whatever else plays on a call (a prompt, a
beep, sent digits) is mixed with it, and recorders and taps hear the mix.
"""

from __future__ import annotations

__all__ = ["BridgedAudio", "InboundSource"]

from typing import Protocol

import numpy as np

from .components import MediaComponent, Update


class InboundSource(Protocol):
    """The call whose far end is bridged in (a :class:`~relaykit.media.engine.CallMedia`)."""

    @property
    def inbound_frame(self) -> np.ndarray | None:
        """This tick's inbound frame (None: silence)."""


class BridgedAudio(MediaComponent):
    """One direction of a bridge: ``source``'s inbound audio joins this call's outbound.

    It has no state changes of its own (the call service reports the connect); ``stop`` and
    ``hangup`` just take it out of the table.
    """

    kind = "connect"
    renders = True

    def __init__(self, control_id: str, source: InboundSource) -> None:
        super().__init__(control_id)
        self.source = source

    def render(self, mix: np.ndarray, now: float) -> list[Update]:
        frame = self.source.inbound_frame
        if frame is not None:
            mix += frame
        return []

    def stop(self, now: float) -> list[Update]:
        self.done = True
        return []

    def hangup(self, now: float) -> list[Update]:
        self.done = True
        return []
