"""The far end of a call placed from a page: its microphone, its keys and the IVR's audio.

Microphone audio arrives as 16-bit PCM in the page's own rhythm and waits in the call's inbound
queue, from which the media clock takes one 20 ms frame per tick; more than
:data:`MIC_BACKLOG` seconds waiting (a page whose audio clock runs fast, or a burst after a
stall) and new audio is dropped, so the delay stays bounded. A key becomes a real DTMF tone in
that same audio (the microphone is muted while it plays), so the IVR's detector hears it as it
would from any phone. Everything the IVR plays goes back to the page frame by frame.
"""

from __future__ import annotations

__all__ = ["KEYS", "MAX_QUEUED_KEYS", "MIC_BACKLOG", "PhoneLine"]

from collections.abc import Callable

import numpy as np

from ..calls import Call, CallService, CallState
from ..media.dtmf import generate_dtmf
from ..media.frames import SAMPLE_RATE

MIC_BACKLOG = 0.2  # seconds of microphone audio allowed to wait for the media clock
KEYS = frozenset("0123456789*#ABCD")
KEY_TONE_MS, KEY_GAP_MS = 100, 100  # as the virtual caller presses
MAX_QUEUED_KEYS = 32  # key tones waiting to be played; beyond, presses are refused


class PhoneLine:
    """The page's side of one call (a :class:`relaykit.calls.Leg`).

    Args:
        service: the call interface.
        send_audio: takes each 20 ms frame the IVR plays, as little-endian int16 bytes.
    """

    def __init__(self, service: CallService, send_audio: Callable[[bytes], None]) -> None:
        self._service = service
        self._send_audio = send_audio
        self.call: Call | None = None
        self.dropped_frames = 0  # microphone frames dropped (backlog, or while a key sounds)
        self._tones = 0  # key tones queued or playing
        self._stop_audio: Callable[[], None] | None = None

    @property
    def live(self) -> bool:
        """The IVR answered and the call is still up."""
        return self.call is not None and self.call.state is CallState.ANSWERED

    # -- the Leg protocol -------------------------------------------------------------------------
    def answered(self, call: Call) -> None:
        self.call = call
        if self._stop_audio is None:
            self._stop_audio = self._service.on_outbound_audio(call, self._outbound)

    def ended(self, call: Call, reason: str) -> None:
        if self._stop_audio is not None:
            self._stop_audio()
            self._stop_audio = None

    # -- from the page ----------------------------------------------------------------------------
    def microphone(self, pcm: bytes) -> None:
        """Queue microphone audio (16 kHz little-endian int16) into an answered call."""
        call = self.call
        if call is None or not self.live:
            return
        if self._tones or call.media.inbound_pending > MIC_BACKLOG:
            self.dropped_frames += 1
            return
        self._service.inject_audio(call, np.frombuffer(pcm, dtype="<i2").astype(np.int16))

    def press(self, key: str) -> None:
        """Play ``key`` as a DTMF tone into the call, after the audio already queued.

        Raises ValueError for anything but one of ``0-9 * # A-D``, or when too many keys wait.
        """
        if len(key) != 1 or key.upper() not in KEYS:
            raise ValueError(f"not a key: {key!r} (one of 0-9 * # A-D)")
        call = self.call
        if call is None or not self.live:
            raise ValueError("keys are sent once the IVR has answered")
        if self._tones >= MAX_QUEUED_KEYS:
            raise ValueError(f"{MAX_QUEUED_KEYS} keys are already waiting to be played")
        tone = generate_dtmf(key, tone_ms=KEY_TONE_MS, gap_ms=KEY_GAP_MS)
        start = self._service.call_time(call) + call.media.inbound_pending
        end = round(start + len(tone) / SAMPLE_RATE, 3)
        self._service.caller_acted(call, "press", key.upper(), end, at=start)
        self._tones += 1
        self._service.inject_audio(call, tone, self._tone_done)

    def hang_up(self) -> None:
        """The page hung up (or went away)."""
        call = self.call
        if call is not None and not call.ended:
            self._service.caller_acted(call, "hangup")
            self._service.far_end_hung_up(call, "hangup")

    # -- internals --------------------------------------------------------------------------------
    def _tone_done(self) -> None:
        self._tones -= 1

    def _outbound(self, frame: np.ndarray) -> None:
        self._send_audio(frame.astype("<i2").tobytes())
