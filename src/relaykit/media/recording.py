"""A call's two-channel recording, streamed to a temporary file so memory stays flat.

The engine appends each channel's frames as it gathers them (a block of frames at a time, a
reference, no copy); about a second of frames (``flush_frames``) is then interleaved and
written to an unnamed temporary file as int16 (caller, IVR). The file disappears when the
recorder is closed or garbage collected (the call and whoever reads it — a virtual caller —
are gone), and with the process.
"""

from __future__ import annotations

__all__ = ["CallRecording"]

import os
import tempfile
import wave
import weakref
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .frames import SAMPLE_RATE, SAMPLES_PER_FRAME


class CallRecording:
    """Both channels of one call: ``append`` per tick, ``read`` or ``write_wav`` on demand."""

    __slots__ = (
        "__weakref__",
        "_bytes",
        "_file",
        "_finalizer",
        "_frames",
        "_in",
        "_out",
        "_pending",
        "flush_frames",
    )

    def __init__(self, *, flush_frames: int = 50, directory: str | Path | None = None) -> None:
        self.flush_frames = max(1, flush_frames)
        # closed by the finalizer: when the recorder is closed or collected
        self._file: BinaryIO = tempfile.TemporaryFile(  # noqa: SIM115
            prefix="relaykit-call-", dir=directory
        )
        self._finalizer = weakref.finalize(self, self._file.close)
        self._in: list[np.ndarray] = []  # frames not written yet
        self._out: list[np.ndarray] = []
        self._frames = 0
        self._pending = 0  # frames not written yet
        self._bytes = 0  # written and pending

    @property
    def frames(self) -> int:
        """20 ms frames recorded so far."""
        return self._frames

    @property
    def seconds(self) -> float:
        return self._bytes / 4 / SAMPLE_RATE

    @property
    def buffered_frames(self) -> int:
        """Frames held in memory, not yet written (fewer than ``flush_frames``)."""
        return self._pending

    def append(self, caller: np.ndarray, ivr: np.ndarray) -> None:
        """Whole frames of each channel (int16, the same length); not modified afterwards."""
        if self._file.closed:
            return
        self._in.append(caller)
        self._out.append(ivr)
        frames = len(caller) // SAMPLES_PER_FRAME
        self._bytes += 4 * len(caller)
        self._frames += frames
        self._pending += frames
        if self._pending >= self.flush_frames:
            self.flush()

    def flush(self) -> None:
        if not self._in or self._file.closed:
            return
        both = np.stack([np.concatenate(self._in), np.concatenate(self._out)], axis=1)
        self._in.clear()
        self._out.clear()
        self._pending = 0
        self._file.seek(0, os.SEEK_END)
        self._file.write(both.astype("<i2", copy=False).tobytes())

    def read(self) -> np.ndarray:
        """The recording so far as an (n, 2) int16 array: column 0 the caller, 1 the IVR."""
        if self._file.closed:
            return np.zeros((0, 2), dtype=np.int16)
        self.flush()
        self._file.flush()
        data = os.pread(self._file.fileno(), self._bytes, 0)
        return np.frombuffer(data, dtype="<i2").astype(np.int16).reshape(-1, 2)

    def write_wav(self, path: str | Path, *, chunk_frames: int = 500) -> Path:
        """Copy the recording to a stereo 16 kHz WAV at ``path``, a chunk at a time."""
        path = Path(path)
        self.flush()
        if not self._file.closed:
            self._file.flush()
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            total = 0 if self._file.closed else self._bytes
            step = chunk_frames * SAMPLES_PER_FRAME * 4
            for offset in range(0, total, step):
                out.writeframes(os.pread(self._file.fileno(), min(step, total - offset), offset))
        return path

    def close(self) -> None:
        """Delete the file now (reads then return nothing)."""
        self._in.clear()
        self._out.clear()
        self._pending = 0
        self._finalizer()
