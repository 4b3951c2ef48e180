"""The tap: a copy of the call's audio, frame by frame, for a sink that streams it elsewhere.

``direction`` as v2 names it: ``speak`` what the caller says, ``listen`` what the caller
hears, ``both`` the two mixed. Every frame goes to the sink, silence included, so the stream
keeps the media clock's pace; the network side (RTP packets, G.711) is the sink's.
"""

from __future__ import annotations

__all__ = ["AudioTap"]

import numpy as np

from .components import AudioSink, MediaComponent, Update, side_audio


class AudioTap(MediaComponent):
    """``calling.tap`` in the engine; ends ``finished`` (reason ``error``) if the sink fails."""

    kind = "tap"

    def __init__(self, control_id: str, sink: AudioSink, direction: str = "speak") -> None:
        super().__init__(control_id)
        if direction not in ("speak", "listen", "both"):
            raise ValueError(f"unknown direction {direction!r}")
        self.sink = sink
        self.direction = direction
        self.frames = 0

    def hear(
        self, inbound: np.ndarray | None, outbound: np.ndarray | None, now: float
    ) -> list[Update]:
        if not self.sink(side_audio(self.direction, inbound, outbound)):
            return self.finish("finished", "error")
        self.frames += 1
        return []
