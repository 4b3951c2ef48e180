"""``calling.*`` commands and events (protocol spec §5–§6), sans-I/O.

Commands are parsed into frozen dataclasses that have already been validated; a bad field raises
ProtocolError whose ``field`` is the dotted path inside the command's params
(``"collect.digits.max"``). Events are built as plain dicts shaped exactly as §6.
"""

from __future__ import annotations

__all__ = [
    "ANSWER",
    "BEGIN",
    "CALL_RECEIVE",
    "CALL_STATE",
    "COLLECT_EVENT",
    "COLLECT_REASONS",
    "DEFAULT_DIGIT_TIMEOUT",
    "DEFAULT_END_SILENCE_TIMEOUT",
    "DEFAULT_INITIAL_TIMEOUT",
    "DEFAULT_SPEECH_LANGUAGE",
    "DEFAULT_SPEECH_TIMEOUT",
    "DIAL",
    "DTMF_CHARACTERS",
    "END",
    "END_REASONS",
    "PLAY",
    "PLAY_AND_COLLECT",
    "PLAY_AND_COLLECT_STOP",
    "PLAY_AND_COLLECT_VOLUME",
    "PLAY_EVENT",
    "PLAY_STOP",
    "PLAY_VOLUME",
    "RECEIVE",
    "SPEECH_ENGINES",
    "TERMINAL_RESULT_TYPES",
    "VOLUME_MAX",
    "VOLUME_MIN",
    "AnswerParams",
    "AudioMedia",
    "BeginParams",
    "CallRef",
    "Collect",
    "ControlParams",
    "Device",
    "DialParams",
    "DigitsCollect",
    "EndParams",
    "Media",
    "PlayAndCollectParams",
    "PlayParams",
    "ReceiveParams",
    "RingtoneMedia",
    "SilenceMedia",
    "SpeechCollect",
    "TtsMedia",
    "VolumeParams",
    "call_receive_event",
    "call_state_event",
    "collect_event",
    "is_terminal_collect",
    "media_to_wire",
    "parse_media",
    "play_event",
]

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ProtocolError
from ._validate import (
    opt_bool,
    opt_int,
    opt_num,
    opt_obj,
    opt_str,
    req_obj,
    req_str,
    req_str_list,
)

# -- method and event names ---------------------------------------------------------------------
RECEIVE = "signalwire.receive"
ANSWER = "calling.answer"
END = "calling.end"
PLAY = "calling.play"
PLAY_STOP = "calling.play.stop"
PLAY_VOLUME = "calling.play.volume"
PLAY_AND_COLLECT = "calling.play_and_collect"
PLAY_AND_COLLECT_STOP = "calling.play_and_collect.stop"
PLAY_AND_COLLECT_VOLUME = "calling.play_and_collect.volume"
BEGIN = "calling.begin"
DIAL = "calling.dial"

CALL_RECEIVE = "calling.call.receive"
CALL_STATE = "calling.call.state"
PLAY_EVENT = "calling.call.play"
COLLECT_EVENT = "calling.call.collect"

# -- documented server defaults (§5.1.2) --------------------------------------------------------
DEFAULT_INITIAL_TIMEOUT = 5.0  # seconds after the media ends (SWML prompt, .NET v2 docs)
DEFAULT_DIGIT_TIMEOUT = 1.0  # seconds between keys (v2 .NET docs)
DEFAULT_END_SILENCE_TIMEOUT = 1.0
DEFAULT_SPEECH_TIMEOUT = 60.0
DEFAULT_SPEECH_LANGUAGE = "en-US"
#: relaykit's ``collect.speech.engine`` extension: who recognises the prompt's speech.
SPEECH_ENGINES = ("auto", "pocketsphinx", "whisper")

VOLUME_MIN = -40.0
VOLUME_MAX = 40.0
MAX_TIMEOUT = 3600.0
MAX_DIGITS = 128
MAX_MEDIA_ITEMS = 64
DTMF_CHARACTERS = frozenset("0123456789*#ABCD")
END_REASONS = ("hangup", "cancel", "busy", "noAnswer", "decline", "error")
TERMINAL_RESULT_TYPES = frozenset({"digit", "speech", "no_input", "no_match", "error"})
# Extension: why a prompt ended, sent as result.reason on every terminal collect event.
COLLECT_REASONS = (
    "terminator",
    "max_digits",
    "digit_timeout",
    "initial_timeout",
    "end_silence",
    "speech_timeout",
    "stopped",
    "hangup",
    "error",
)


# -- media ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TtsMedia:
    """Text to speak, with an optional language and gender."""

    text: str
    language: str | None = None
    gender: str | None = None
    type = "tts"

    def to_wire(self) -> dict[str, Any]:
        params: dict[str, Any] = {"text": self.text}
        if self.language is not None:
            params["language"] = self.language
        if self.gender is not None:
            params["gender"] = self.gender
        return {"type": self.type, "params": params}


@dataclass(frozen=True, slots=True)
class AudioMedia:
    """An audio file to play, by URL."""

    url: str
    type = "audio"

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "params": {"url": self.url}}


@dataclass(frozen=True, slots=True)
class SilenceMedia:
    """``duration`` seconds of silence."""

    duration: float
    type = "silence"

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "params": {"duration": self.duration}}


@dataclass(frozen=True, slots=True)
class RingtoneMedia:
    """A named ringtone (``us``, ``gb``…), for ``duration`` seconds or once."""

    name: str
    duration: float | None = None
    type = "ringtone"

    def to_wire(self) -> dict[str, Any]:
        params: dict[str, Any] = {"name": self.name}
        if self.duration is not None:
            params["duration"] = self.duration
        return {"type": self.type, "params": params}


Media = TtsMedia | AudioMedia | SilenceMedia | RingtoneMedia
MEDIA_TYPES = ("audio", "tts", "silence", "ringtone")


def parse_media(obj: Any, path: str) -> Media:
    """Parse one nested media object ``{"type": …, "params": {…}}`` (§5.1.1)."""
    if not isinstance(obj, dict):
        raise ProtocolError("must be an object", field=path)
    kind = obj.get("type")
    if kind not in MEDIA_TYPES:
        raise ProtocolError(
            f"unknown media type {kind!r}; expected one of {', '.join(MEDIA_TYPES)}",
            field=f"{path}.type",
        )
    params = req_obj(obj, "params", path)
    ppath = f"{path}.params"
    # signalwire 2.1.1 wraps media that is already nested once more (§7.4, §8.2.11):
    # {"type": "audio", "params": {"params": {"url": …}}}. No media has a field named "params",
    # so a lone nested "params" object is unwrapped rather than refused.
    inner = params.get("params")
    if len(params) == 1 and isinstance(inner, dict):
        params = inner
    if kind == "tts":
        gender = opt_str(params, "gender", ppath)
        if gender is not None and gender not in ("male", "female"):
            raise ProtocolError('must be "male" or "female"', field=f"{ppath}.gender")
        text = req_str(params, "text", ppath)
        if len(text) > 5000:
            raise ProtocolError("must be at most 5000 characters", field=f"{ppath}.text")
        return TtsMedia(text, opt_str(params, "language", ppath), gender)
    if kind == "audio":
        return AudioMedia(req_str(params, "url", ppath))
    if kind == "silence":
        duration = opt_num(params, "duration", ppath, minimum=0, maximum=MAX_TIMEOUT)
        if duration is None:
            raise ProtocolError("is required", field=f"{ppath}.duration")
        return SilenceMedia(duration)
    duration = opt_num(
        params, "duration", ppath, minimum=0, maximum=MAX_TIMEOUT, exclusive_minimum=True
    )
    return RingtoneMedia(req_str(params, "name", ppath), duration)


def _parse_play(params: Mapping[str, Any]) -> tuple[Media, ...]:
    play = params.get("play")
    if play is None:
        raise ProtocolError("is required", field="play")
    if not isinstance(play, list) or not play:
        raise ProtocolError("must be a non-empty list of media objects", field="play")
    if len(play) > MAX_MEDIA_ITEMS:
        raise ProtocolError(f"must hold at most {MAX_MEDIA_ITEMS} items", field="play")
    return tuple(parse_media(item, f"play[{i}]") for i, item in enumerate(play))


def _parse_volume(params: Mapping[str, Any], *, required: bool = False) -> float | None:
    volume = opt_num(params, "volume", "", minimum=VOLUME_MIN, maximum=VOLUME_MAX)
    if volume is None and required:
        raise ProtocolError("is required", field="volume")
    return volume


# -- collect --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DigitsCollect:
    """The ``collect.digits`` options, defaults filled in."""

    max: int | None = None  # None: no limit; a terminator or the digit timeout ends collection
    terminators: str = ""
    digit_timeout: float = DEFAULT_DIGIT_TIMEOUT


@dataclass(frozen=True, slots=True)
class SpeechCollect:
    """The ``collect.speech`` options, defaults filled in."""

    end_silence_timeout: float = DEFAULT_END_SILENCE_TIMEOUT
    speech_timeout: float = DEFAULT_SPEECH_TIMEOUT
    language: str = DEFAULT_SPEECH_LANGUAGE
    hints: tuple[str, ...] = ()
    # relaykit extensions (the v2 SDK never sends them): None = the server's setting
    min_confidence: float | None = None  # results under it (0-100) are no_match
    engine: str | None = None  # one of SPEECH_ENGINES


@dataclass(frozen=True, slots=True)
class Collect:
    """A validated ``collect`` object: what to collect and when to stop."""

    initial_timeout: float = DEFAULT_INITIAL_TIMEOUT
    digits: DigitsCollect | None = None
    speech: SpeechCollect | None = None
    partial_results: bool = False
    send_start_of_input: bool = False
    barge_in: bool = True  # extension: False keeps the media playing through input

    @classmethod
    def parse(cls, collect: Mapping[str, Any], path: str = "collect") -> Collect:
        digits = speech = None
        dobj = opt_obj(collect, "digits", path)
        if dobj is not None:
            dpath = f"{path}.digits"
            terminators = opt_str(dobj, "terminators", dpath) or ""
            bad = sorted(set(terminators.upper()) - DTMF_CHARACTERS)
            if bad:
                raise ProtocolError(
                    f"{''.join(bad)!r} are not DTMF keys (0-9, *, #, A-D)",
                    field=f"{dpath}.terminators",
                )
            digit_timeout = opt_num(
                dobj,
                "digit_timeout",
                dpath,
                minimum=0,
                maximum=MAX_TIMEOUT,
                exclusive_minimum=True,
            )
            digits = DigitsCollect(
                max=opt_int(dobj, "max", dpath, minimum=1, maximum=MAX_DIGITS),
                terminators=terminators.upper(),
                digit_timeout=DEFAULT_DIGIT_TIMEOUT if digit_timeout is None else digit_timeout,
            )
        sobj = opt_obj(collect, "speech", path)
        if sobj is not None:
            spath = f"{path}.speech"
            hints: list[str] = []
            if sobj.get("hints") is not None:
                hints = req_str_list(sobj, "hints", spath)
            end_silence = opt_num(
                sobj,
                "end_silence_timeout",
                spath,
                minimum=0,
                maximum=MAX_TIMEOUT,
                exclusive_minimum=True,
            )
            speech_timeout = opt_num(
                sobj,
                "speech_timeout",
                spath,
                minimum=0,
                maximum=MAX_TIMEOUT,
                exclusive_minimum=True,
            )
            engine = opt_str(sobj, "engine", spath)
            if engine is not None and engine not in SPEECH_ENGINES:
                raise ProtocolError(
                    f"must be one of {', '.join(SPEECH_ENGINES)}, not {engine!r}",
                    field=f"{spath}.engine",
                )
            speech = SpeechCollect(
                end_silence_timeout=(
                    DEFAULT_END_SILENCE_TIMEOUT if end_silence is None else end_silence
                ),
                speech_timeout=DEFAULT_SPEECH_TIMEOUT if speech_timeout is None else speech_timeout,
                language=opt_str(sobj, "language", spath) or DEFAULT_SPEECH_LANGUAGE,
                hints=tuple(hints),
                min_confidence=opt_num(sobj, "min_confidence", spath, minimum=0, maximum=100),
                engine=engine,
            )
        if digits is None and speech is None:
            raise ProtocolError("must contain digits, speech or both", field=path)
        initial = opt_num(collect, "initial_timeout", path, minimum=0, maximum=MAX_TIMEOUT)
        return cls(
            initial_timeout=DEFAULT_INITIAL_TIMEOUT if initial is None else initial,
            digits=digits,
            speech=speech,
            partial_results=bool(opt_bool(collect, "partial_results", path)),
            send_start_of_input=bool(opt_bool(collect, "send_start_of_input", path)),
            barge_in=opt_bool(collect, "barge_in", path) is not False,
        )


# -- commands -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CallRef:
    """The ``call_id`` (and ``node_id``) every call command carries."""

    call_id: str
    node_id: str | None

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> CallRef:
        return cls(req_str(params, "call_id", ""), opt_str(params, "node_id", ""))


@dataclass(frozen=True, slots=True)
class ReceiveParams:
    """``signalwire.receive``: the contexts to receive calls on."""

    contexts: tuple[str, ...]

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ReceiveParams:
        contexts = req_str_list(params, "contexts", "")
        if not contexts:
            raise ProtocolError("must name at least one context", field="contexts")
        return cls(tuple(contexts))


@dataclass(frozen=True, slots=True)
class AnswerParams:
    """``calling.answer``."""

    call: CallRef

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> AnswerParams:
        return cls(CallRef.parse(params))


@dataclass(frozen=True, slots=True)
class EndParams:
    """``calling.end``, with its end reason."""

    call: CallRef
    reason: str = "hangup"

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> EndParams:
        reason = opt_str(params, "reason", "") or "hangup"
        if reason not in END_REASONS:
            raise ProtocolError(f"must be one of {', '.join(END_REASONS)}", field="reason")
        return cls(CallRef.parse(params), reason)


@dataclass(frozen=True, slots=True)
class ControlParams:
    """``*.stop`` (and the base of ``*.volume``): names one running component."""

    call: CallRef
    control_id: str

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ControlParams:
        return cls(CallRef.parse(params), req_str(params, "control_id", ""))


@dataclass(frozen=True, slots=True)
class VolumeParams:
    """``*.volume``: a running component and its new volume in dB."""

    call: CallRef
    control_id: str
    volume: float

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> VolumeParams:
        control = ControlParams.parse(params)
        volume = _parse_volume(params, required=True)
        assert volume is not None
        return cls(control.call, control.control_id, volume)


@dataclass(frozen=True, slots=True)
class PlayParams:
    """``calling.play``: the media to play and its volume."""

    call: CallRef
    control_id: str
    play: tuple[Media, ...]
    volume: float = 0.0

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> PlayParams:
        return cls(
            CallRef.parse(params),
            req_str(params, "control_id", ""),
            _parse_play(params),
            _parse_volume(params) or 0.0,
        )


@dataclass(frozen=True, slots=True)
class PlayAndCollectParams:
    """``calling.play_and_collect``: media, volume and what to collect."""

    call: CallRef
    control_id: str
    play: tuple[Media, ...]
    collect: Collect
    volume: float = 0.0

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> PlayAndCollectParams:
        call = CallRef.parse(params)
        control_id = req_str(params, "control_id", "")
        play = _parse_play(params)
        collect = Collect.parse(req_obj(params, "collect", ""), "collect")
        return cls(call, control_id, play, collect, _parse_volume(params) or 0.0)


@dataclass(frozen=True, slots=True)
class Device:
    """A device to call (§5.5): its ``type`` (``sip``, ``phone``…) and its ``params`` as sent.

    The dialer of that type validates ``params``; ``field`` is where the device sits in the
    command (``device``, ``devices[0][1]``) so its errors can name the field.
    """

    type: str
    params: Mapping[str, Any]
    field: str

    @classmethod
    def parse(cls, obj: Any, path: str) -> Device:
        if not isinstance(obj, Mapping):
            raise ProtocolError("must be an object", field=path)
        device_type = obj.get("type")
        if not isinstance(device_type, str) or not device_type:
            raise ProtocolError("must be a device type such as sip or phone", field=f"{path}.type")
        params = obj.get("params")
        if not isinstance(params, Mapping):
            raise ProtocolError("must be an object", field=f"{path}.params")
        return cls(device_type, params, path)


@dataclass(frozen=True, slots=True)
class BeginParams:
    """``calling.begin``: one ``device`` and an optional ``tag`` for the call's events."""

    tag: str | None
    device: Device

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> BeginParams:
        tag = params.get("tag")
        if tag is not None and not isinstance(tag, str):
            raise ProtocolError("must be a string", field="tag")
        return cls(tag, Device.parse(params.get("device"), "device"))


@dataclass(frozen=True, slots=True)
class DialParams:
    """``calling.dial``: ``devices`` as groups tried in series, a group's devices in parallel."""

    tag: str
    devices: tuple[tuple[Device, ...], ...]

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> DialParams:
        tag = params.get("tag")
        if not isinstance(tag, str) or not tag:
            raise ProtocolError("must be a non-empty string", field="tag")
        groups = params.get("devices")
        if not isinstance(groups, list) or not groups:
            raise ProtocolError("must be a non-empty list of device lists", field="devices")
        parsed = []
        for i, group in enumerate(groups):
            if not isinstance(group, list) or not group:
                raise ProtocolError("must be a non-empty list of devices", field=f"devices[{i}]")
            parsed.append(tuple(Device.parse(d, f"devices[{i}][{j}]") for j, d in enumerate(group)))
        return cls(tag, tuple(parsed))


# -- events ---------------------------------------------------------------------------------------
def _device(from_number: str, to_number: str, device_type: str = "phone") -> dict[str, Any]:
    return {"type": device_type, "params": {"from_number": from_number, "to_number": to_number}}


def call_receive_event(
    *, call_id: str, node_id: str, context: str, from_number: str, to_number: str
) -> dict[str, Any]:
    """§6.4 params of ``calling.call.receive``."""
    return {
        "call_state": "created",
        "context": context,
        "device": _device(from_number, to_number),
        "direction": "inbound",
        "call_id": call_id,
        "node_id": node_id,
    }


def call_state_event(
    *,
    call_id: str,
    node_id: str,
    call_state: str,
    from_number: str,
    to_number: str,
    direction: str = "inbound",
    end_reason: str | None = None,
    tag: str | None = None,
) -> dict[str, Any]:
    """§6.3 params of ``calling.call.state``."""
    params: dict[str, Any] = {
        "call_state": call_state,
        "direction": direction,
        "device": _device(from_number, to_number),
        "call_id": call_id,
        "node_id": node_id,
    }
    if end_reason is not None:
        params["end_reason"] = end_reason
    if tag is not None:
        params["tag"] = tag
    return params


def play_event(*, call_id: str, node_id: str, control_id: str, state: str) -> dict[str, Any]:
    """§6.2 params of ``calling.call.play``; state is playing, finished or error."""
    return {"control_id": control_id, "call_id": call_id, "node_id": node_id, "state": state}


def collect_event(
    *,
    call_id: str,
    node_id: str,
    control_id: str,
    result_type: str,
    result_params: Mapping[str, Any] | None = None,
    final: bool = True,
    reason: str | None = None,
) -> dict[str, Any]:
    """§6.1 params of ``calling.call.collect``.

    A final event carries ``state: "finished"`` (``"error"`` for errors) and the extension
    ``result.reason``; an interim one carries ``final: false, state: "collecting"``.
    """
    result: dict[str, Any] = {"type": result_type}
    if result_params is not None:
        result["params"] = dict(result_params)
    if reason is not None:
        result["reason"] = reason
    event: dict[str, Any] = {
        "control_id": control_id,
        "call_id": call_id,
        "node_id": node_id,
        "result": result,
        "final": final,
        "state": "collecting" if not final else ("error" if result_type == "error" else "finished"),
    }
    return event


def is_terminal_collect(params: Mapping[str, Any]) -> bool:
    """The §6.1 terminal rule: final not false, state not collecting, a result type that ends."""
    if params.get("final") is False or params.get("state") == "collecting":
        return False
    result = params.get("result")
    return isinstance(result, dict) and result.get("type") in TERMINAL_RESULT_TYPES


def media_to_wire(media: Sequence[Media]) -> list[dict[str, Any]]:
    return [m.to_wire() for m in media]
