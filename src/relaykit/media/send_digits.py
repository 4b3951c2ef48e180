"""Sending digits: real DTMF tones mixed into what the caller hears.

Each key is a 100 ms dual tone followed by 100 ms of silence (the virtual caller's own key
presses sound the same); ``w`` waits 0.5 s and ``W`` 1 s, as in v2. The component ends with
``finished`` once the last key's silence has gone out.
"""

from __future__ import annotations

__all__ = ["PAUSES", "DigitSender"]

import numpy as np

from .components import MediaComponent, Update
from .dtmf import generate_dtmf
from .frames import SAMPLE_RATE, SAMPLES_PER_FRAME

PAUSES = {"w": 0.5, "W": 1.0}  # seconds
TONE_MS = 100
GAP_MS = 100


class DigitSender(MediaComponent):
    """``calling.send_digits`` in the engine: renders ``digits`` into the caller's audio."""

    kind = "send_digits"
    renders = True

    def __init__(self, control_id: str, digits: str) -> None:
        super().__init__(control_id)
        self.digits = digits
        # (tone samples, or None for silence; length in samples)
        self._segments: list[tuple[np.ndarray | None, int]] = []
        for ch in digits:
            if ch in PAUSES:
                self._segments.append((None, round(PAUSES[ch] * SAMPLE_RATE)))
            else:
                tone = generate_dtmf(ch, tone_ms=TONE_MS, gap_ms=GAP_MS)
                self._segments.append((tone, len(tone)))
        self._index = 0
        self._offset = 0

    def render(self, mix: np.ndarray, now: float) -> list[Update]:
        pos = 0
        while pos < SAMPLES_PER_FRAME and self._index < len(self._segments):
            samples, length = self._segments[self._index]
            take = min(SAMPLES_PER_FRAME - pos, length - self._offset)
            if samples is not None:
                mix[pos : pos + take] += samples[self._offset : self._offset + take]
            pos += take
            self._offset += take
            if self._offset >= length:
                self._index += 1
                self._offset = 0
        if self._index >= len(self._segments):
            return self.finish("finished", "sent")
        return []
