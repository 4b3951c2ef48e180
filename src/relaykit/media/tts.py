"""Offline text-to-speech: espeak-ng, loaded with ctypes from the ``espeakng-loader`` wheel.

RELAY's ``tts`` media (``text``, ``language``, ``gender``) becomes real speech here, as 16 kHz mono
int16 samples (see :mod:`relaykit.media.frames`). No system packages, no subprocess: the wheel ships
``libespeak-ng.so`` and its data directory.

espeak-ng is one process-global synthesiser and is not thread-safe, so every call into it goes
through one module lock; the library is initialised lazily, on the first synthesis. Results are kept
in a bounded LRU cache per engine and handed out read-only, so 1000 calls playing the same prompt
synthesise it once and share one array.

espeak-ng keeps a little state between utterances (a pitch "flutter" index and echo buffers that no
API call resets), so synthesising the same text twice in one process gives audio of the same
length and sound but not bit-identical samples. The cache makes repeats of a prompt identical.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_LANGUAGE",
    "GENDERS",
    "LANGUAGE_VOICES",
    "MAX_TEXT_CHARS",
    "EspeakTts",
    "TtsEngine",
]

import ctypes
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import numpy as np
import soxr

from relaykit.errors import MediaError, UnsupportedLanguageError
from relaykit.media.frames import SAMPLE_DTYPE, SAMPLE_RATE

DEFAULT_LANGUAGE = "en-US"  # RELAY's default for tts media
MAX_TEXT_CHARS = 5000
GENDERS = ("male", "female")

# BCP-47 tag -> espeak-ng voice name (the file name under espeak-ng-data/lang/). Only voices the
# bundled data really has; a tag not listed falls back to the first entry with the same primary
# language ("en-AU" -> "en-US", "de-AT" -> "de-DE"), as in RFC 4647 lookup.
LANGUAGE_VOICES: Mapping[str, str] = MappingProxyType(
    {
        "en-US": "en-us",
        "en-GB": "en",  # "English (Great Britain)"
        "es-ES": "es",
        "es-MX": "es-419",  # "Spanish (Latin America)"
        "es-US": "es-419",
        "fr-FR": "fr",
        "fr-BE": "fr-be",
        "fr-CH": "fr-ch",
        "de-DE": "de",
        "it-IT": "it",
        "pt-PT": "pt",
        "pt-BR": "pt-br",
        "nl-NL": "nl",
        "da-DK": "da",
        "sv-SE": "sv",
        "nb-NO": "nb",
        "fi-FI": "fi",
        "is-IS": "is",
        "pl-PL": "pl",
        "cs-CZ": "cs",
        "sk-SK": "sk",
        "hu-HU": "hu",
        "ro-RO": "ro",
        "bg-BG": "bg",
        "hr-HR": "hr",
        "sr-RS": "sr",
        "sl-SI": "sl",
        "ru-RU": "ru",
        "uk-UA": "uk",
        "el-GR": "el",
        "tr-TR": "tr",
        "ca-ES": "ca",
        "cy-GB": "cy",
        "af-ZA": "af",
        "ar-SA": "ar",
        "he-IL": "he",
        "hi-IN": "hi",
        "ta-IN": "ta",
        "id-ID": "id",
        "ms-MY": "ms",
        "vi-VN": "vi",
        "th-TH": "th",
        "ja-JP": "ja",
        "ko-KR": "ko",
        "cmn-CN": "cmn",  # Mandarin
        "zh-CN": "cmn",
        "zh-TW": "cmn",
        "yue-HK": "yue",  # Cantonese
        "zh-HK": "yue",
    }
)

# espeak's language voices are male; a "+variant" from espeak-ng-data/voices/!v changes the speaker.
_GENDER_VARIANT = {"male": "", "female": "+f3"}  # f3: f0 around 210 Hz vs 100 Hz for the base voice

_BY_LOWER = {tag.lower(): tag for tag in LANGUAGE_VOICES}
_BY_PRIMARY: dict[str, str] = {}
for _tag in LANGUAGE_VOICES:
    _BY_PRIMARY.setdefault(_tag.split("-")[0].lower(), _tag)

# speak_lib.h (API revision 12, espeak-ng 1.52)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # fail with -1 instead of calling exit() if the data is missing
_CHARS_UTF8 = 1
_SSML = 0x10
_ENDPAUSE = 0x1000
_EE_OK = 0

# int SynthCallback(short *wav, int numsamples, espeak_EVENT *events)
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


@runtime_checkable
class TtsEngine(Protocol):
    """What the media engine needs from a speech synthesiser."""

    @property
    def languages(self) -> tuple[str, ...]:
        """BCP-47 tags this engine speaks (others may be accepted through fallback)."""
        ...

    def supports(self, language: str) -> bool: ...

    def synthesize(
        self, text: str, *, language: str | None = None, gender: str | None = None
    ) -> np.ndarray:
        """16 kHz mono int16 speech for ``text``; raises MediaError / UnsupportedLanguageError."""
        ...


class _Espeak:
    """The process-wide espeak-ng library. Callers must hold ``_LOCK``."""

    def __init__(self) -> None:
        self._lib: ctypes.CDLL | None = None
        self.rate = 0
        self._chunks: list[bytes] = []
        self._callback = _SynthCallback(self._collect)  # must outlive the library's use of it

    def _collect(self, wav: Any, numsamples: int, _events: int | None) -> int:
        if wav and numsamples > 0:  # wav is NULL at the end of synthesis
            self._chunks.append(ctypes.string_at(wav, numsamples * 2))
        return 0  # 0 = continue

    def _load(self) -> ctypes.CDLL:
        if self._lib is not None:
            return self._lib
        try:
            import espeakng_loader

            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data_parent = str(Path(espeakng_loader.get_data_path()).parent)
        except (ImportError, OSError, RuntimeError) as exc:
            raise MediaError(f"espeak-ng is not available: {exc}") from exc

        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,  # text
            ctypes.c_size_t,  # size
            ctypes.c_uint,  # position
            ctypes.c_int,  # position_type
            ctypes.c_uint,  # end_position
            ctypes.c_uint,  # flags
            ctypes.POINTER(ctypes.c_uint),  # unique_identifier
            ctypes.c_void_p,  # user_data
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int

        # path is the directory that *contains* espeak-ng-data; buflength 0 = 60 ms chunks
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise MediaError(f"espeak-ng failed to initialise with data in {data_parent}")
        lib.espeak_SetSynthCallback(self._callback)
        self.rate = rate  # 22050 for the bundled data
        self._lib = lib
        return lib

    def synth(self, text: str, voice: str, *, ssml: bool) -> np.ndarray:
        """Raw int16 samples at ``self.rate``."""
        lib = self._load()
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise MediaError(f"espeak-ng voice {voice!r} is missing from the bundled data")
        data = text.encode("utf-8") + b"\0"
        flags = _CHARS_UTF8 | _ENDPAUSE | (_SSML if ssml else 0)
        self._chunks = []
        try:
            status = lib.espeak_Synth(data, len(data), 0, 0, 0, flags, None, None)
            if status != _EE_OK:
                raise MediaError(f"espeak-ng could not synthesise the text (status {status})")
            lib.espeak_Synchronize()
            return np.frombuffer(b"".join(self._chunks), dtype=np.int16)
        finally:
            self._chunks = []


_LOCK = threading.Lock()  # guards _ESPEAK: initialisation and every synthesis
_ESPEAK = _Espeak()


def _resolve_language(language: str | None) -> str:
    """Canonical BCP-47 tag from LANGUAGE_VOICES for ``language`` (case and ``_`` tolerant)."""
    if language is None:
        return DEFAULT_LANGUAGE
    if not isinstance(language, str):
        raise UnsupportedLanguageError(repr(language), tuple(LANGUAGE_VOICES))
    key = language.strip().replace("_", "-").lower()
    tag = _BY_LOWER.get(key) or (_BY_PRIMARY.get(key.split("-")[0]) if key else None)
    if tag is None:
        raise UnsupportedLanguageError(language, tuple(LANGUAGE_VOICES))
    return tag


def _resolve_gender(gender: str | None) -> str:
    if gender is None:
        return ""
    key = gender.strip().lower() if isinstance(gender, str) else None
    if key not in _GENDER_VARIANT:
        raise MediaError(f"gender must be 'male' or 'female', got {gender!r}")
    return _GENDER_VARIANT[key]


class EspeakTts:
    """espeak-ng speech synthesis with a bounded LRU cache of finished prompts.

    ``cache_size`` bounds the number of cached prompts and ``cache_bytes`` their total size
    (0 disables the cache). Safe to call from several threads at once.
    """

    def __init__(self, *, cache_size: int = 256, cache_bytes: int = 64 * 2**20) -> None:
        self._cache_size = max(0, cache_size)
        self._cache_bytes = max(0, cache_bytes)
        self._cache: OrderedDict[tuple[str, str, bool], np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self._cache_lock = threading.Lock()  # never held while waiting for _LOCK

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(LANGUAGE_VOICES)

    def supports(self, language: str) -> bool:
        try:
            _resolve_language(language)
        except UnsupportedLanguageError:
            return False
        return True

    def voice_for(self, language: str | None = None, gender: str | None = None) -> str:
        """The espeak-ng voice name used for ``language`` and ``gender`` (e.g. ``"en-us+f3"``)."""
        return LANGUAGE_VOICES[_resolve_language(language)] + _resolve_gender(gender)

    def synthesize(
        self, text: str, *, language: str | None = None, gender: str | None = None
    ) -> np.ndarray:
        """Speak ``text``: 16 kHz mono int16, read-only (it may be shared through the cache).

        Text starting with ``<speak`` is read as SSML (espeak-ng's subset: ``<break>``,
        ``<prosody>``, ``<say-as>`` …).
        """
        if not isinstance(text, str):
            raise MediaError(f"text must be a string, got {type(text).__name__}")
        if not text.strip():
            raise MediaError("text is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise MediaError(f"text is {len(text)} characters long; the limit is {MAX_TEXT_CHARS}")
        voice = self.voice_for(language, gender)
        text = text.replace("\0", " ")  # espeak reads up to the first NUL
        key = (text, voice, text.lstrip().startswith("<speak"))

        cached = self._lookup(key)
        if cached is not None:
            return cached
        with _LOCK:
            # another thread may have synthesised the same prompt while we waited
            cached = self._lookup(key)
            if cached is not None:
                return cached
            raw = _ESPEAK.synth(key[0], voice, ssml=key[2])
            rate = _ESPEAK.rate
            audio = self._finish(raw, rate)
            self._store(key, audio)
        return audio

    def cached(
        self, text: str, *, language: str | None = None, gender: str | None = None
    ) -> np.ndarray | None:
        """The audio for ``text`` if it is in the cache, else None; never synthesises."""
        try:
            voice = self.voice_for(language, gender)
        except MediaError:
            return None
        text = text.replace("\0", " ")
        return self._lookup((text, voice, text.lstrip().startswith("<speak")))

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()
            self._cached_bytes = 0

    @staticmethod
    def _finish(raw: np.ndarray, rate: int) -> np.ndarray:
        if rate != SAMPLE_RATE and raw.size:
            audio = soxr.resample(raw, rate, SAMPLE_RATE)  # int16 in, int16 out (saturating)
        else:
            audio = raw.copy()  # raw is a read-only view of a bytes object
        audio = np.ascontiguousarray(audio, dtype=SAMPLE_DTYPE)
        audio.flags.writeable = False
        return audio

    def _lookup(self, key: tuple[str, str, bool]) -> np.ndarray | None:
        with self._cache_lock:
            audio = self._cache.get(key)
            if audio is not None:
                self._cache.move_to_end(key)
            return audio

    def _store(self, key: tuple[str, str, bool], audio: np.ndarray) -> None:
        if self._cache_size == 0 or audio.nbytes > self._cache_bytes:
            return
        with self._cache_lock:
            self._cache[key] = audio
            self._cached_bytes += audio.nbytes
            while len(self._cache) > self._cache_size or self._cached_bytes > self._cache_bytes:
                _, old = self._cache.popitem(last=False)
                self._cached_bytes -= old.nbytes
