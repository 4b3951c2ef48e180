"""Where ``calling.record`` puts its files: streamed to disk as they are made, kept for a while.

Each recording is a file named by an unguessable token (``<token>.wav``/``.mp3``) in the
store's directory, which the server serves over HTTP on its own port (``url``). Samples reach
the file in one-second blocks, so a recording of an hour holds no more in memory than one of a
second. WAV is 16-bit PCM at 16 kHz; MP3 is encoded by libsndfile's LAME encoder, which the
``soundfile`` wheels bundle (libsndfile 1.1 or later). ``retention`` seconds after it ended a
recording is deleted (None: kept while the store lives); a store that made its own temporary
directory removes it when closed.
"""

from __future__ import annotations

__all__ = ["CONTENT_TYPES", "RECORDING_NAME", "Recording", "RecordingStore", "mp3_available"]

import asyncio
import contextlib
import logging
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from ..errors import ProtocolError
from ..media.frames import SAMPLE_RATE

log = logging.getLogger("relaykit.calls")

RECORDING_NAME = re.compile(r"^[A-Za-z0-9_-]{32}\.(wav|mp3)$")
_FLUSH_FRAMES = 50  # one second of 20 ms frames per write
CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}


def mp3_available() -> bool:
    """Whether the installed libsndfile can write MP3 (1.1 or later, built with LAME)."""
    return "MP3" in soundfile.available_formats()


class Recording:
    """One recording being written: :meth:`write` takes frames (the recorder's sink)."""

    def __init__(self, path: Path, record_format: str, channels: int, url: str) -> None:
        self.path = path
        self.format = record_format
        self.channels = channels
        self.url = url
        self.size = 0
        self.closed = False
        self.ended_at: float | None = None  # time.monotonic() when closed
        subtype = "PCM_16" if record_format == "wav" else "MPEG_LAYER_III"
        self._file = soundfile.SoundFile(
            path, "w", SAMPLE_RATE, channels, format=record_format.upper(), subtype=subtype
        )
        self._pending: list[np.ndarray] = []

    def write(self, frame: np.ndarray) -> bool:
        """Queue one frame; every second's worth goes to disk. False once writing failed."""
        if self.closed:
            return False
        self._pending.append(np.array(frame, dtype=np.int16))  # a copy: frames may be views
        if len(self._pending) >= _FLUSH_FRAMES:
            return self._flush()
        return True

    def _flush(self) -> bool:
        if not self._pending:
            return True
        block = np.concatenate(self._pending)
        self._pending = []
        try:
            self._file.write(block)
        except (OSError, RuntimeError) as exc:  # disk full, file gone…
            log.error("! recording %s: writing failed: %s", self.path.name, exc)
            self.close()
            return False
        return True

    def close(self) -> int:
        """Write what is left and close the file; returns its size in bytes. Idempotent."""
        if not self.closed:
            self._flush()
            self.closed = True
            self.ended_at = time.monotonic()
            with contextlib.suppress(OSError, RuntimeError):
                self._file.close()
            with contextlib.suppress(OSError):
                self.size = self.path.stat().st_size
        return self.size

    def __repr__(self) -> str:
        return f"<Recording {self.path.name} closed={self.closed}>"


class RecordingStore:
    """The recordings of a server.

    Args:
        directory: where the files go; None makes a temporary directory on the first
            recording, removed again by :meth:`close`.
        retention: seconds a finished recording is kept; None keeps it while the store lives.
    """

    def __init__(self, directory: str | Path | None = None, *, retention: float | None = None):
        if retention is not None and retention <= 0:
            raise ValueError("retention must be a positive number of seconds (or None)")
        self._directory = None if directory is None else Path(directory)
        self._own_directory = directory is None
        self.retention = retention
        self.base_url = ""  # the server sets it: "http://host:port/recordings/"
        self._recordings: dict[str, Recording] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    # -- where ---------------------------------------------------------------------------------
    @property
    def directory(self) -> Path:
        """The directory the files go to (made on first use)."""
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="relaykit-recordings-"))
        self._directory.mkdir(parents=True, exist_ok=True)
        return self._directory

    @property
    def default_format(self) -> str:
        """v2's default, ``mp3``, when it can be written; ``wav`` otherwise."""
        return "mp3" if mp3_available() else "wav"

    # -- recordings ----------------------------------------------------------------------------
    def create(self, record_format: str, channels: int) -> Recording:
        """A new recording file; ProtocolError (naming ``record.audio.format``) if
        ``record_format`` cannot be written here."""
        if record_format not in CONTENT_TYPES:
            raise ProtocolError(
                f"unknown format {record_format!r}; expected mp3 or wav",
                field="record.audio.format",
            )
        if record_format == "mp3" and not mp3_available():
            raise ProtocolError(
                f"mp3 needs libsndfile 1.1 or later with MP3 support (libsndfile "
                f"{soundfile.__libsndfile_version__} is installed; the soundfile wheels from "
                f"PyPI bundle one: pip install --force-reinstall soundfile); use wav",
                field="record.audio.format",
            )
        name = f"{secrets.token_urlsafe(24)}.{record_format}"
        try:
            recording = Recording(self.directory / name, record_format, channels, self.url(name))
        except (OSError, RuntimeError) as exc:
            raise ProtocolError(f"cannot create the recording: {exc}", field="record") from None
        self._recordings[name] = recording
        return recording

    def url(self, name: str) -> str:
        return f"{self.base_url}{name}"

    def lookup(self, name: str) -> Recording | None:
        """The recording called ``name`` (None for anything else, deleted ones included)."""
        if not RECORDING_NAME.match(name):
            return None
        recording = self._recordings.get(name)
        if recording is None or not recording.path.exists():
            return None
        return recording

    def __len__(self) -> int:
        return len(self._recordings)

    # -- retention -----------------------------------------------------------------------------
    def sweep(self, now: float | None = None) -> int:
        """Delete recordings that ended more than ``retention`` seconds ago; returns how many."""
        if self.retention is None:
            return 0
        now = time.monotonic() if now is None else now
        expired = [
            name
            for name, r in self._recordings.items()
            if r.ended_at is not None and now - r.ended_at >= self.retention
        ]
        for name in expired:
            recording = self._recordings.pop(name)
            with contextlib.suppress(OSError):
                recording.path.unlink()
        return len(expired)

    def start(self) -> None:
        """Sweep every ``min(retention, 60)`` seconds on the running loop."""
        if self.retention is None or self._sweeper is not None:
            return
        period = min(self.retention, 60.0)
        loop = asyncio.get_running_loop()

        def tick() -> None:
            self.sweep()
            self._sweeper = loop.call_later(period, tick)

        self._sweeper = loop.call_later(period, tick)

    def close(self) -> None:
        """Close every open recording; remove the directory if the store made it."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for recording in self._recordings.values():
            recording.close()
        if self._own_directory and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
            self._recordings.clear()
