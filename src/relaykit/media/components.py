"""The generic component of the media engine: what records, detects, taps and sends digits.

Plays and prompts are the engine's hot path and it runs them itself. Every other kind of
component is a :class:`MediaComponent` in the same per-call table (by ``control_id``); the
engine calls its hooks only on calls that have such components, once per 20 ms frame:

- :meth:`~MediaComponent.key` for each DTMF key heard in the caller's audio;
- :meth:`~MediaComponent.render` to add audio for the caller to the frame's mix (digits,
  a beep), while its ``rendering`` is true;
- :meth:`~MediaComponent.hear` with the frame's two sides: what the caller said (inbound)
  and what the caller heard (outbound, after the mix), ``None`` for silence;
- :meth:`~MediaComponent.stop` and :meth:`~MediaComponent.hangup` when asked to end.

Each hook returns :class:`Update` values (a state change, with its details); the engine stamps
them with the call, the component and the time (:class:`relaykit.media.engine.ComponentUpdate`).
A component whose update is ``final`` is done and leaves the table. Components do no I/O: what
must leave the process (a recording's samples, a tap's audio) goes to a ``sink`` callable the
layer above hands them, which returns False once it can take no more.
"""

from __future__ import annotations

__all__ = ["AudioSink", "MediaComponent", "Update", "side_audio"]

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .frames import SAMPLES_PER_FRAME

AudioSink = Callable[[np.ndarray], bool]
"""Takes one frame of int16 samples ((320,) mono or (320, 2) stereo); False: it failed."""


@dataclass(frozen=True, slots=True)
class Update:
    """A component's new ``state`` with its details; ``final`` ends the component
    (``reason``: why, e.g. ``stopped``, ``hangup``, ``timeout``, ``terminator``)."""

    state: str
    params: dict[str, Any] = field(default_factory=dict)
    final: bool = False
    reason: str | None = None


class MediaComponent:
    """Base of the engine's generic components; see the module docstring."""

    kind: ClassVar[str] = ""
    renders: ClassVar[bool] = False  # render() adds audio for the caller
    end_state: ClassVar[str] = "finished"  # the final state of a stop or a hang-up

    def __init__(self, control_id: str) -> None:
        self.control_id = control_id
        self.started_at = 0.0
        self.done = False

    def begin(self, now: float) -> None:
        """The engine took the component at call time ``now``."""
        self.started_at = now

    @property
    def rendering(self) -> bool:
        """Whether :meth:`render` has audio to add this frame."""
        return self.renders and not self.done

    def key(self, key: str, now: float) -> list[Update]:
        """A DTMF key was heard in the caller's audio."""
        return []

    def render(self, mix: np.ndarray, now: float) -> list[Update]:
        """Add this frame's audio for the caller to ``mix`` (float32, one frame)."""
        return []

    def hear(
        self, inbound: np.ndarray | None, outbound: np.ndarray | None, now: float
    ) -> list[Update]:
        """One frame of the call: the caller's audio and what the caller heard (None: silence)."""
        return []

    def stop(self, now: float) -> list[Update]:
        """Asked to stop (``.stop``): ends now."""
        return self.finish(self.end_state, "stopped")

    def hangup(self, now: float) -> list[Update]:
        """The call ended: ends now."""
        return self.finish(self.end_state, "hangup")

    def finish(self, state: str, reason: str, params: dict[str, Any] | None = None) -> list[Update]:
        """The final update (none if the component is already done)."""
        if self.done:
            return []
        self.done = True
        return [Update(state, params or {}, final=True, reason=reason)]


_SILENCE = np.zeros(SAMPLES_PER_FRAME, dtype=np.int16)
_SILENCE.flags.writeable = False


def side_audio(
    direction: str, inbound: np.ndarray | None, outbound: np.ndarray | None
) -> np.ndarray:
    """One mono frame of the call as v2's ``direction`` names it: ``speak`` what the caller
    said, ``listen`` what the caller heard, ``both`` the two mixed."""
    if direction == "speak":
        return _SILENCE if inbound is None else inbound
    if direction == "listen":
        return _SILENCE if outbound is None else outbound
    if inbound is None:
        return _SILENCE if outbound is None else outbound
    if outbound is None:
        return inbound
    mixed: np.ndarray = np.clip(inbound.astype(np.int32) + outbound, -32768, 32767)
    return mixed.astype(np.int16)
