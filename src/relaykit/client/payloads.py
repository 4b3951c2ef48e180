"""Build RELAY payloads from the v2 SDK's Python arguments (protocol spec §7.4–§7.5).

Pure functions. Unlike the v2 SDK they never mutate the caller's dicts, accept both the flat
(``{"type": "tts", "text": …}``) and the nested (``{"type": …, "params": {…}}``) media forms,
and raise ``ValueError``/``TypeError`` with a clear message instead of ``KeyError``.
"""

from __future__ import annotations

__all__ = [
    "PROMPT_TYPES",
    "AudioDirection",
    "CallState",
    "DetectType",
    "EndReason",
    "FaxTone",
    "Gender",
    "PromptType",
    "RecordFormat",
    "SpeechEngine",
    "TapCodec",
    "TapTargetType",
    "build_collect",
    "build_devices",
    "build_media_list",
    "media_item",
]

from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from ..errors import ProtocolError
from ..protocol.calling import parse_media

PromptType = Literal["digits", "speech", "both"]
SpeechEngine = Literal["auto", "pocketsphinx", "whisper"]
Gender = Literal["male", "female"]
EndReason = Literal["hangup", "cancel", "busy", "noAnswer", "decline", "error"]
CallState = Literal["none", "created", "ringing", "answered", "ending", "ended"]
# v2's audio directions, from the call's side: what the caller says, hears, or both
AudioDirection = Literal["speak", "listen", "both"]
RecordFormat = Literal["mp3", "wav"]
DetectType = Literal["digit", "fax", "machine"]
FaxTone = Literal["CED", "CNG"]
TapTargetType = Literal["rtp", "ws"]
TapCodec = Literal["PCMU", "PCMA"]

PROMPT_TYPES: tuple[str, ...] = get_args(PromptType)

# kwarg -> (section, payload key); section None means the collect object itself.
_COLLECT_KWARGS: dict[str, tuple[str | None, str]] = {
    "initial_timeout": (None, "initial_timeout"),
    "partial_results": (None, "partial_results"),
    "send_start_of_input": (None, "send_start_of_input"),
    "barge_in": (None, "barge_in"),
    "digits_max": ("digits", "max"),
    "digits_terminators": ("digits", "terminators"),
    "digits_timeout": ("digits", "digit_timeout"),
    "end_silence_timeout": ("speech", "end_silence_timeout"),
    "speech_timeout": ("speech", "speech_timeout"),
    "speech_language": ("speech", "language"),
    "speech_hints": ("speech", "hints"),
    # relaykit extensions, sent only when given
    "speech_min_confidence": ("speech", "min_confidence"),
    "speech_engine": ("speech", "engine"),
}
# Accepted for v2 compatibility where the v2 SDK ignores them (media options on other media).
IGNORED_KWARGS = frozenset({"language", "gender", "duration"})
PROMPT_KWARGS = frozenset(_COLLECT_KWARGS) | {"volume"}


def media_item(item: Mapping[str, Any], index: int = 0) -> dict[str, Any]:
    """One media dict (flat or nested) as the nested wire form; validates it."""
    if not isinstance(item, Mapping):
        raise TypeError(f"media_list[{index}] must be a dict, not {type(item).__name__}")
    if "params" in item and isinstance(item["params"], Mapping):
        wire = {"type": item.get("type"), "params": dict(item["params"])}
    else:
        wire = {"type": item.get("type"), "params": {k: v for k, v in item.items() if k != "type"}}
    try:
        parse_media(wire, f"media_list[{index}]")
    except ProtocolError as exc:
        raise ValueError(str(exc)) from None
    return wire


def build_media_list(media_list: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The wire ``play`` list for ``media_list``; refuses an empty list or a bare dict."""
    if isinstance(media_list, Mapping) or not isinstance(media_list, Sequence):
        raise TypeError("media_list must be a list of media dicts")
    if not media_list:
        raise ValueError("media_list must not be empty")
    return [media_item(item, i) for i, item in enumerate(media_list)]


def build_collect(prompt_type: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``collect`` object for ``prompt_type`` and the v2 prompt kwargs (§7.5).

    Only what the caller passed is sent; server defaults apply to the rest.
    """
    if prompt_type not in PROMPT_TYPES:
        raise ValueError(
            f"prompt_type must be one of {', '.join(PROMPT_TYPES)}, not {prompt_type!r}"
        )
    collect: dict[str, Any] = {}
    if prompt_type in ("digits", "both"):
        collect["digits"] = {}
    if prompt_type in ("speech", "both"):
        collect["speech"] = {}
    for name, value in kwargs.items():
        if name in IGNORED_KWARGS or name == "volume":
            continue
        if name not in _COLLECT_KWARGS:
            valid = ", ".join(sorted(PROMPT_KWARGS | IGNORED_KWARGS))
            raise TypeError(f"unexpected keyword argument {name!r}; prompts accept {valid}")
        section, key = _COLLECT_KWARGS[name]
        if key == "hints" and isinstance(value, str):
            raise TypeError("speech_hints must be a list of strings, not a str")
        if section is None:
            collect[key] = value
        elif section not in collect:
            raise ValueError(
                f"{name} needs prompt_type {'digits' if section == 'digits' else 'speech'!r} "
                f"or 'both', not {prompt_type!r}"
            )
        else:
            collect[section][key] = list(value) if key == "hints" else value
    return collect


DeviceSpec = Mapping[str, Any]
"""One device to call: v2's flat form (``{"to_number": "+1…", "from_number"?, "timeout"?,
"call_type"?: "phone"}``) or the wire form (``{"type": "sip", "params": {"to": "sip:…"}}``)."""


def _device(
    spec: DeviceSpec, where: str, default_from: str | None, timeout: int | None
) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise TypeError(f"{where} must be a device dict, not {type(spec).__name__}")
    if "type" in spec and isinstance(spec.get("params"), Mapping):
        return {"type": spec["type"], "params": dict(spec["params"])}
    unknown = set(spec) - {"call_type", "from_number", "to_number", "timeout"}
    if unknown:
        raise TypeError(
            f"{where} has unknown keys {', '.join(sorted(unknown))}; a device is "
            "{'to_number', 'from_number', 'timeout', 'call_type'} or {'type', 'params'}"
        )
    params: dict[str, Any] = {
        "from_number": spec.get("from_number", default_from),
        "to_number": spec.get("to_number", ""),
    }
    device_timeout = spec.get("timeout", timeout)
    if device_timeout:
        params["timeout"] = int(device_timeout)
    return {"type": spec.get("call_type", "phone"), "params": params}


def build_devices(
    device_list: Sequence[DeviceSpec | Sequence[DeviceSpec]],
    default_from: str | None = None,
    default_timeout: int | None = None,
) -> list[list[dict[str, Any]]]:
    """``devices`` for ``calling.connect``, from v2's ``device_list``: a device dict rings on
    its own (in series with the next), a list of them rings together (in parallel).
    ``from_number`` and ``timeout`` default to the call's, as in v2."""
    if isinstance(device_list, Mapping) or not isinstance(device_list, Sequence):
        raise TypeError("device_list must be a list of devices or of lists of devices")
    groups: list[list[dict[str, Any]]] = []
    for i, entry in enumerate(device_list):
        if isinstance(entry, Mapping):
            groups.append([_device(entry, f"device_list[{i}]", default_from, default_timeout)])
        elif isinstance(entry, Sequence) and not isinstance(entry, str):
            groups.append(
                [
                    _device(spec, f"device_list[{i}][{j}]", default_from, default_timeout)
                    for j, spec in enumerate(entry)
                ]
            )
        else:
            raise TypeError(f"device_list[{i}] must be a device dict or a list of them")
    return groups
