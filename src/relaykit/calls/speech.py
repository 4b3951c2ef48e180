"""Speech recognition off the media clock.

pocketsphinx holds the GIL while it decodes (10–100 ms per utterance), so decoding in a thread
would still stall the 20 ms clock of every call. With ``processes > 0`` utterances are decoded
in worker processes (started on first use, each with its own recogniser); a custom recogniser
passed by the user is run in threads instead, as it may not be picklable. ``inline`` decodes on
the event loop itself, for tests whose clock is fast-forwarded.
"""

from __future__ import annotations

__all__ = ["SpeechRecognition"]

import asyncio
import multiprocessing
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor

import numpy as np

from ..media.asr import PocketsphinxRecognizer, Recognizer

Decoded = tuple[str | None, float]

_worker_recognizer: PocketsphinxRecognizer | None = None  # one per worker process


def _start_worker() -> None:
    global _worker_recognizer
    _worker_recognizer = PocketsphinxRecognizer()
    _worker_recognizer.warm_up()


def _ready() -> bool:
    return _worker_recognizer is not None


def _decode_in_worker(
    language: str, hints: tuple[str, ...], audio: np.ndarray, final: bool
) -> Decoded:
    assert _worker_recognizer is not None
    return _decode(_worker_recognizer, language, hints, audio, final)


def _decode(
    recognizer: Recognizer, language: str, hints: Sequence[str], audio: np.ndarray, final: bool
) -> Decoded:
    utterance = recognizer.open(language=language, hints=tuple(hints))
    try:
        utterance.feed(audio)
        if not final:
            return utterance.partial() or None, 0.0
        result = utterance.finish()
    finally:
        utterance.close()
    return (None, 0.0) if result is None else (result.text, result.confidence)


class SpeechRecognition:
    """Decodes utterances for the server; ``recognizer`` answers which languages exist."""

    def __init__(
        self, recognizer: Recognizer | None = None, *, processes: int = 2, inline: bool = False
    ) -> None:
        self.recognizer: Recognizer = recognizer or PocketsphinxRecognizer()
        self.processes = 0 if recognizer is not None else processes
        self.inline = inline  # decode on the event loop (deterministic fast-clock tests)
        self._pool: Executor | None = None
        self._lock = threading.Lock()

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.recognizer.languages)

    def supports(self, language: str) -> bool:
        """Whether ``language`` (``en-US``, ``en``…) is one the recogniser knows."""
        wanted = language.replace("_", "-").lower()
        return any(
            wanted == lang.lower() or wanted == lang.lower().split("-")[0]
            for lang in self.languages
        )

    async def decode(
        self, language: str, hints: Sequence[str], audio: np.ndarray, *, final: bool
    ) -> Decoded:
        """The text heard in ``audio`` (or None) and a 0–100 confidence."""
        if self.inline:
            return _decode(self.recognizer, language, hints, audio, final)
        if self.processes <= 0:
            return await asyncio.to_thread(_decode, self.recognizer, language, hints, audio, final)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._workers(), _decode_in_worker, language, tuple(hints), audio, final
        )

    def prepare(self) -> None:
        """Start the worker processes now (a speech prompt began), not at its first utterance.

        Starting processes takes a few milliseconds each; it happens on a helper thread so the
        media clock does not notice.
        """
        if self.processes > 0 and not self.inline and self._pool is None:
            asyncio.get_running_loop().run_in_executor(None, self._warm)

    def _warm(self) -> None:
        pool = self._workers()
        for _ in range(self.processes):
            pool.submit(_ready)

    def _workers(self) -> Executor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker,
                )
            return self._pool

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f"{self.processes} processes" if self.processes else "threads"
        return f"<SpeechRecognition {type(self.recognizer).__name__} in {where}>"
