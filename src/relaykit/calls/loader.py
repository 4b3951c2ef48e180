"""Turns RELAY media objects into playable :class:`MediaItem` samples.

``prepare`` validates synchronously (so a bad ringtone name or TTS language is refused in the
command's response); ``load`` fills the samples afterwards, off the event loop for anything
slow (speech synthesis, files, URLs), and records a readable error on the item on failure.
"""

from __future__ import annotations

__all__ = ["MediaLoader"]

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import MediaError, ProtocolError, UnsupportedLanguageError
from ..media import sources
from ..media.playback import MediaItem
from ..media.tts import TtsEngine
from ..protocol.calling import AudioMedia, Media, RingtoneMedia, SilenceMedia, TtsMedia

log = logging.getLogger("relaykit.server")


class MediaLoader:
    """Checks RELAY media (:meth:`prepare`); fills its samples off the event loop (:meth:`load`)."""

    def __init__(
        self, tts: TtsEngine, *, fetch_timeout: float = 10.0, inline: bool = False
    ) -> None:
        self.tts = tts
        self.fetch_timeout = fetch_timeout
        self.inline = inline  # synthesise and read files on the event loop (no worker thread)

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

    async def load(self, items: Sequence[MediaItem], media: Sequence[Media]) -> None:
        """Fill every item, in order; cheap media inline, the rest in a worker thread."""
        for item, m in zip(items, media, strict=True):
            samples: np.ndarray | None
            try:
                if isinstance(m, SilenceMedia):
                    samples = sources.silence(m.duration)
                elif isinstance(m, RingtoneMedia):
                    samples = sources.ringtone(m.name.lower(), m.duration)
                elif isinstance(m, TtsMedia):
                    # A prompt already synthesised needs no trip to a worker thread.
                    peek = getattr(self.tts, "cached", None)
                    samples = (
                        None if peek is None else peek(m.text, language=m.language, gender=m.gender)
                    )
                    if samples is None:
                        samples = await self._run(
                            self.tts.synthesize, m.text, language=m.language, gender=m.gender
                        )
                elif isinstance(m, AudioMedia):
                    samples = await self._run(sources.load_audio, m.url, timeout=self.fetch_timeout)
                else:  # pragma: no cover - parse_media admits nothing else
                    raise MediaError(f"unsupported media {m!r}")
            except MediaError as exc:
                item.error = str(exc)
            except Exception as exc:  # never let a loader bug kill the call
                log.exception("! media loading failed")
                item.error = f"media could not be loaded ({type(exc).__name__})"
            else:
                item.samples = np.asarray(samples, dtype=np.int16)

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs) if self.inline else await asyncio.to_thread(fn, *args, **kwargs)
