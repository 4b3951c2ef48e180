"""Turns RELAY media objects into playable :class:`MediaItem` s, within each project's budget.

``prepare`` validates synchronously (so a bad ringtone name or TTS language is refused in the
command's response); ``load`` fills the items afterwards and records a readable error on an
item that fails:

- silence and ringtones become sources that make their samples on demand (no memory);
- speech is synthesised and audio decoded in worker threads shared fairly by projects
  (:class:`~relaykit.calls.budget.FairWorkers`), each job counted against the project's CPU
  budget, each result against its byte budget; long speech is synthesised in pieces of about
  30 s (one job each, played back to back), so it never holds the synthesiser for long;
- ``audio`` URLs are fetched asynchronously (:mod:`relaykit.calls.fetch`), a few at a time per
  project; every fetch or decoding failure shows the same generic text (the details go to the
  server log), so an ``audio`` URL cannot probe the server's network or disk. Decoded audio
  is cached per project and URL for ``cache_seconds``.
"""

from __future__ import annotations

__all__ = ["MediaLoader"]

import asyncio
import functools
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from ..errors import MediaError, ProtocolError, UnsupportedLanguageError
from ..media import sources
from ..media.frames import SAMPLE_RATE
from ..media.playback import MediaItem
from ..media.tts import TtsEngine
from ..protocol.calling import AudioMedia, Media, RingtoneMedia, SilenceMedia, TtsMedia
from .budget import BudgetExceeded, FairWorkers, MediaBudgets, MediaLimits, ProjectBudget
from .fetch import FetchError, FetchPolicy, MediaFetcher, public_message

log = logging.getLogger("relaykit.server")

_T = TypeVar("_T")
# Speech takes about 0.1 s (3 KB of samples) per character of text; half that is a safe
# lower bound for refusing a text that cannot fit before synthesising it.
_SPEECH_BYTES_PER_CHAR = 1500
_PIECE_CHARS = 300  # longer speech is synthesised in pieces of about 30 s


class MediaLoader:
    """Checks RELAY media (:meth:`prepare`); fills its samples off the event loop (:meth:`load`).

    Args:
        tts: the speech synthesiser.
        fetcher: fetches ``audio`` media (default: a :class:`MediaFetcher` with
            ``fetch_timeout``).
        limits: every project's media budget.
        workers: threads that synthesise and decode, shared by all projects.
        inline: synthesise and decode on the event loop (deterministic tests); budgets still
            apply.
        cache_bytes: bytes of decoded audio kept per (project, URL).
        cache_seconds: seconds decoded audio is kept per (project, URL).
    """

    def __init__(
        self,
        tts: TtsEngine,
        *,
        fetcher: MediaFetcher | None = None,
        limits: MediaLimits | None = None,
        workers: int = 2,
        fetch_timeout: float = 10.0,
        inline: bool = False,
        cache_bytes: int = 32 * 2**20,
        cache_seconds: float = 300.0,
    ) -> None:
        self.tts = tts
        self.fetcher = fetcher or MediaFetcher(FetchPolicy(timeout=fetch_timeout))
        self.budgets = MediaBudgets(limits)
        self.inline = inline
        self.workers = FairWorkers(workers, self.budgets.limits.cpu_jobs)
        self._cache = _AudioCache(cache_bytes, cache_seconds)

    def prepare(self, media: Sequence[Media], path: str = "play") -> list[MediaItem]:
        items = []
        for i, m in enumerate(media):
            field = f"{path}[{i}].params"
            if isinstance(m, TtsMedia):
                if m.language is not None and not self.tts.supports(m.language):
                    err = UnsupportedLanguageError(m.language, self.tts.languages)
                    raise ProtocolError(str(err), field=f"{field}.language")
                items.append(MediaItem("tts", m.text))
            elif isinstance(m, RingtoneMedia):
                if m.name.lower() not in sources.RINGTONES:
                    valid = ", ".join(sorted(sources.RINGTONES))
                    raise ProtocolError(
                        f"unknown ringtone {m.name!r}; valid names: {valid}", field=f"{field}.name"
                    )
                items.append(MediaItem("ringtone", m.name))
            elif isinstance(m, SilenceMedia):
                items.append(MediaItem("silence", f"{m.duration:g} s"))
            else:
                items.append(MediaItem("audio", m.url))
        return items

    async def load(
        self, items: Sequence[MediaItem], media: Sequence[Media], project: str = ""
    ) -> None:
        """Fill every item, in order, within ``project``'s budget; stops early once the
        playback has released the items (it was stopped)."""
        budget = self.budgets[project]
        for item, m in zip(items, media, strict=True):
            if item.released:
                return
            samples: np.ndarray | None = None
            try:
                if isinstance(m, TtsMedia):
                    speech = await self._speech(budget, m)
                    if isinstance(speech, _Charged):
                        speech.attach(item)
                        continue
                    samples = speech
                elif isinstance(m, AudioMedia):
                    samples = await self._audio(budget, m.url)
                elif not isinstance(m, SilenceMedia | RingtoneMedia):  # pragma: no cover
                    raise MediaError(f"unsupported media {m!r}")  # parse_media admits no other
                _fill(item, m, samples, budget)
            except Exception as exc:
                _failed(item, exc)

    def load_now(
        self, items: Sequence[MediaItem], media: Sequence[Media], project: str = ""
    ) -> bool:
        """:meth:`load` at once, when no item needs a worker or a fetch (silence, ringtones,
        speech already synthesised): True. False, with nothing done, when one does."""
        ready: list[np.ndarray | None] = []
        for m in media:
            if isinstance(m, TtsMedia):
                try:
                    samples = self._cached_speech(m)
                except Exception:  # load says what went wrong, on the item
                    return False
                if samples is None:
                    return False
                ready.append(samples)
            elif isinstance(m, SilenceMedia | RingtoneMedia):
                ready.append(None)
            else:
                return False
        budget = self.budgets[project]
        for item, m, samples in zip(items, media, ready, strict=True):
            try:
                _fill(item, m, samples, budget)
            except Exception as exc:
                _failed(item, exc)
        return True

    async def start(self) -> None:
        await self.fetcher.start()

    async def close(self) -> None:
        self.workers.close()
        await self.fetcher.close()

    # -- the kinds that cost something --------------------------------------------------------
    def _cached_speech(self, m: TtsMedia) -> np.ndarray | None:
        """A prompt already synthesised needs no trip to a worker thread."""
        peek = getattr(self.tts, "cached", None)
        samples = None if peek is None else peek(m.text, language=m.language, gender=m.gender)
        return None if samples is None else np.asarray(samples, dtype=np.int16)

    async def _speech(self, budget: ProjectBudget, m: TtsMedia) -> np.ndarray | _Charged:
        samples = self._cached_speech(m)
        if samples is not None:
            return samples
        needs = len(m.text) * _SPEECH_BYTES_PER_CHAR
        if needs > budget.bytes_left:  # refused before any CPU is spent on it
            raise BudgetExceeded(
                f"media budget exceeded: speech of {len(m.text)} characters needs about "
                f"{needs / 2**20:.1f} MB and this project's plays and prompts may hold "
                f"{budget.bytes_left / 2**20:.1f} MB more (RelayServer media_bytes)"
            )
        pieces = _speech_pieces(m.text)
        if len(pieces) == 1:
            samples = await self._cpu(
                budget, lambda: self.tts.synthesize(m.text, language=m.language, gender=m.gender)
            )
            return np.asarray(samples, dtype=np.int16)
        # Long text: a piece per worker job, so other projects' speech gets its turn between
        # two pieces, and the budget is charged (and checked) as the pieces come.
        arrays: list[np.ndarray] = []
        give_backs: list[Callable[[], None]] = []
        try:
            for piece in pieces:
                audio = await self._cpu(
                    budget,
                    functools.partial(
                        self.tts.synthesize, piece, language=m.language, gender=m.gender
                    ),
                )
                audio = np.asarray(audio, dtype=np.int16)
                give_backs.append(budget.charge(audio))
                arrays.append(audio)
        except BaseException:
            for give_back in give_backs:
                give_back()
            raise
        return _Charged(sources.Pieces(arrays), give_backs)

    async def _audio(self, budget: ProjectBudget, url: str) -> np.ndarray:
        loop = asyncio.get_running_loop()
        key = (budget.project, url)
        cached = self._cache.get(key, loop.time())
        if cached is not None:
            return cached
        try:
            async with budget.fetch_slots:
                data = await self.fetcher.fetch(url)
            max_seconds = budget.bytes_left / 2 / SAMPLE_RATE
            samples = await self._cpu(
                budget, lambda: sources.decode_audio(data, url, max_seconds=max_seconds)
            )
        except FetchError as exc:
            log.info("! %s: audio %r: %s", budget.project, url, exc.detail)
            raise
        except sources.AudioTooLong as exc:
            raise BudgetExceeded(
                f"media budget exceeded: audio {url!r} is {exc.seconds:.0f} s long and this "
                f"project's plays and prompts may hold {budget.bytes_left / 2**20:.1f} MB more "
                f"(RelayServer media_bytes)"
            ) from None
        except BudgetExceeded:
            raise
        except MediaError as exc:  # undecodable: as generic as a failed fetch
            log.info("! %s: audio %r: %s", budget.project, url, exc)
            raise MediaError(public_message(url)) from None
        except Exception:
            log.exception("! %s: audio %r", budget.project, url)
            raise MediaError(public_message(url)) from None
        samples.flags.writeable = False
        self._cache.put(key, samples, loop.time())
        return samples

    async def _cpu(self, budget: ProjectBudget, work: Callable[[], _T]) -> _T:
        """Run ``work`` (synthesis, decoding) within the project's CPU budget."""
        budget.check_cpu(time.monotonic())
        if self.inline:
            start = time.thread_time()
            try:
                return work()
            finally:
                budget.spend_cpu(time.thread_time() - start, time.monotonic())
        return await self.workers.run(
            budget.project, work, lambda cpu: budget.spend_cpu(cpu, time.monotonic())
        )


class _Charged:
    """Speech made of pieces, each already charged to the budget."""

    def __init__(self, source: sources.Pieces, give_backs: list[Callable[[], None]]) -> None:
        self.source = source
        self.give_backs = give_backs

    def attach(self, item: MediaItem) -> None:
        if item.released:  # stopped while it was made
            self.give_back()
            return
        item.on_release = self.give_back
        item.source = self.source

    def give_back(self) -> None:
        for give_back in self.give_backs:
            give_back()
        self.give_backs = []


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")


def _speech_pieces(text: str) -> list[str]:
    """``text`` cut into pieces of at most _PIECE_CHARS, at sentence ends where it can be
    (then at spaces); SSML and short text stay whole."""
    if len(text) <= _PIECE_CHARS or text.lstrip().startswith("<speak"):
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in (s for s in _SENTENCE_END.split(text) if s.strip()):
        while len(sentence) > _PIECE_CHARS:
            cut = sentence.rfind(" ", 0, _PIECE_CHARS)
            cut = cut if cut > 0 else _PIECE_CHARS
            head, sentence = sentence[:cut], sentence[cut:].lstrip()
            if current:
                pieces.append(current)
                current = ""
            pieces.append(head)
        if current and len(current) + 1 + len(sentence) > _PIECE_CHARS:
            pieces.append(current)
            current = ""
        current = f"{current} {sentence}" if current else sentence
    if current:
        pieces.append(current)
    return pieces


class _AudioCache:
    """Decoded audio by (project, URL): least recently used out beyond ``max_bytes``, and
    nothing older than ``seconds``."""

    def __init__(self, max_bytes: int, seconds: float) -> None:
        self.max_bytes = max_bytes
        self.seconds = seconds
        self._entries: OrderedDict[tuple[str, str], tuple[np.ndarray, float]] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[str, str], now: float) -> np.ndarray | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now - entry[1] > self.seconds:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: tuple[str, str], samples: np.ndarray, now: float) -> None:
        if samples.nbytes > self.max_bytes or self.seconds <= 0:
            return
        self._drop(key)
        self._entries[key] = (samples, now)
        self._bytes += samples.nbytes
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[0].nbytes


def _fill(item: MediaItem, m: Media, samples: np.ndarray | None, budget: ProjectBudget) -> None:
    """Give ``item`` what it plays: a source for silence and ringtones, else ``samples`` (held
    against the project's budget), unless its playback has let it go."""
    if item.released:
        return
    if isinstance(m, SilenceMedia):
        item.source = sources.silence_source(m.duration)
    elif isinstance(m, RingtoneMedia):
        item.source = sources.ringtone_source(m.name.lower(), m.duration)
    elif samples is not None:
        item.on_release = budget.charge(samples)
        item.samples = samples


def _failed(item: MediaItem, exc: Exception) -> None:
    """The item could not be loaded: a readable error on it (never a dead call)."""
    if isinstance(exc, MediaError):
        item.error = str(exc)
    else:  # a loader bug
        log.error("! media loading failed", exc_info=exc)
        item.error = f"{item.kind} media could not be loaded"
