"""``calling.*`` commands and events (protocol spec §5–§6), sans-I/O.

Commands are parsed into frozen dataclasses that have already been validated; a bad field raises
ProtocolError whose ``field`` is the dotted path inside the command's params
(``"collect.digits.max"``). Events are built as plain dicts shaped exactly as §6.
"""

from __future__ import annotations

__all__ = [
    "ANSWER",
    "AUDIO_DIRECTIONS",
    "BEGIN",
    "CALL_RECEIVE",
    "CALL_STATE",
    "COLLECT_EVENT",
    "COLLECT_REASONS",
    "CONNECT",
    "CONNECT_EVENT",
    "DEFAULT_DEVICE_TIMEOUT",
    "DEFAULT_DIGIT_TIMEOUT",
    "DEFAULT_END_SILENCE_TIMEOUT",
    "DEFAULT_INITIAL_TIMEOUT",
    "DEFAULT_SPEECH_LANGUAGE",
    "DEFAULT_SPEECH_TIMEOUT",
    "DETECT",
    "DETECT_EVENT",
    "DETECT_STOP",
    "DETECT_TYPES",
    "DIAL",
    "DISCONNECT",
    "DTMF_CHARACTERS",
    "END",
    "END_REASONS",
    "MAX_DEVICES",
    "PLAY",
    "PLAY_AND_COLLECT",
    "PLAY_AND_COLLECT_STOP",
    "PLAY_AND_COLLECT_VOLUME",
    "PLAY_EVENT",
    "PLAY_STOP",
    "PLAY_VOLUME",
    "RECEIVE",
    "RECEIVE_FAX",
    "RECORD",
    "RECORD_EVENT",
    "RECORD_STOP",
    "SEND_DIGITS",
    "SEND_DIGITS_EVENT",
    "SEND_FAX",
    "SPEECH_ENGINES",
    "TAP",
    "TAP_EVENT",
    "TAP_STOP",
    "TERMINAL_RESULT_TYPES",
    "VOLUME_MAX",
    "VOLUME_MIN",
    "AnswerParams",
    "AudioMedia",
    "BeginParams",
    "CallRef",
    "Collect",
    "ConnectParams",
    "ControlParams",
    "DetectParams",
    "Detector",
    "Device",
    "DialParams",
    "DigitDetect",
    "DigitsCollect",
    "DisconnectParams",
    "EndParams",
    "FaxDetect",
    "MachineDetect",
    "Media",
    "PhoneDevice",
    "PlayAndCollectParams",
    "PlayParams",
    "ReceiveParams",
    "RecordAudio",
    "RecordParams",
    "RingtoneMedia",
    "SendDigitsParams",
    "SilenceMedia",
    "SpeechCollect",
    "TapDevice",
    "TapParams",
    "TtsMedia",
    "VolumeParams",
    "call_receive_event",
    "call_state_event",
    "collect_event",
    "connect_event",
    "detect_event",
    "is_terminal_collect",
    "media_to_wire",
    "parse_device_groups",
    "parse_media",
    "play_event",
    "record_event",
    "send_digits_event",
    "tap_event",
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
CONNECT = "calling.connect"
DISCONNECT = "calling.disconnect"

CALL_RECEIVE = "calling.call.receive"
CALL_STATE = "calling.call.state"
PLAY_EVENT = "calling.call.play"
COLLECT_EVENT = "calling.call.collect"
CONNECT_EVENT = "calling.call.connect"

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
        return cls(tag, parse_device_groups(params.get("devices")))


MAX_DEVICES = 100  # devices in one dial or connect, all groups together
DEFAULT_DEVICE_TIMEOUT = 30.0  # seconds a device rings before it counts as not answering
MAX_DEVICE_TIMEOUT = 600.0


def parse_device_groups(groups: Any, path: str = "devices") -> tuple[tuple[Device, ...], ...]:
    """``devices`` of ``calling.dial``/``calling.connect``: groups tried in series, the
    devices of a group in parallel (§5.5)."""
    if not isinstance(groups, list) or not groups:
        raise ProtocolError("must be a non-empty list of device lists", field=path)
    parsed = []
    for i, group in enumerate(groups):
        if not isinstance(group, list) or not group:
            raise ProtocolError("must be a non-empty list of devices", field=f"{path}[{i}]")
        parsed.append(tuple(Device.parse(d, f"{path}[{i}][{j}]") for j, d in enumerate(group)))
    if sum(len(group) for group in parsed) > MAX_DEVICES:
        raise ProtocolError(f"must hold at most {MAX_DEVICES} devices in all", field=path)
    return tuple(parsed)


@dataclass(frozen=True, slots=True)
class PhoneDevice:
    """A ``phone`` device (§5.5): the number to call, the caller id to show, and how many
    seconds it may ring."""

    to_number: str
    from_number: str = ""
    timeout: float = DEFAULT_DEVICE_TIMEOUT

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "phone",
            "params": {"from_number": self.from_number, "to_number": self.to_number},
        }

    @classmethod
    def parse(cls, device: Device) -> PhoneDevice:
        """Validate a ``phone`` device's params; ProtocolError names the field."""
        path = f"{device.field}.params"
        if device.type != "phone":
            raise ProtocolError('must be "phone"', field=f"{device.field}.type")
        to_number = req_str(device.params, "to_number", path)
        from_number = opt_str(device.params, "from_number", path) or ""
        timeout = opt_num(
            device.params,
            "timeout",
            path,
            minimum=0,
            maximum=MAX_DEVICE_TIMEOUT,
            exclusive_minimum=True,
        )
        return cls(to_number, from_number, DEFAULT_DEVICE_TIMEOUT if timeout is None else timeout)


@dataclass(frozen=True, slots=True)
class ConnectParams:
    """``calling.connect``: bridge the call to the first of ``devices`` that answers, with
    ``ringback`` played to the call while they ring."""

    call: CallRef
    devices: tuple[tuple[Device, ...], ...]
    ringback: tuple[Media, ...] = ()

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ConnectParams:
        call = CallRef.parse(params)
        devices = parse_device_groups(params.get("devices"))
        ringback = params.get("ringback")
        if ringback is None:
            return cls(call, devices)
        if not isinstance(ringback, list):
            raise ProtocolError("must be a list of media objects", field="ringback")
        if len(ringback) > MAX_MEDIA_ITEMS:
            raise ProtocolError(f"must hold at most {MAX_MEDIA_ITEMS} items", field="ringback")
        media = tuple(parse_media(item, f"ringback[{i}]") for i, item in enumerate(ringback))
        return cls(call, devices, media)


@dataclass(frozen=True, slots=True)
class DisconnectParams:
    """``calling.disconnect``: end the call's bridge; both calls stay up."""

    call: CallRef

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> DisconnectParams:
        return cls(CallRef.parse(params))


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
    peer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """§6.3 params of ``calling.call.state``; ``peer`` on the legs a connect placed."""
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
    if peer is not None:
        params["peer"] = dict(peer)
    return params


def connect_event(
    *,
    call_id: str,
    node_id: str,
    connect_state: str,
    peer: Mapping[str, Any] | None = None,
    failed_reason: str | None = None,
    tag: str | None = None,
) -> dict[str, Any]:
    """§6.6 params of ``calling.call.connect``: ``connect_state`` connecting, connected,
    disconnected or failed (with ``failed_reason``); ``peer`` is the other call."""
    params: dict[str, Any] = {
        "connect_state": connect_state,
        "call_id": call_id,
        "node_id": node_id,
    }
    if peer is not None:
        params["peer"] = dict(peer)
    if failed_reason is not None:
        params["failed_reason"] = failed_reason
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


# -- record, send_digits, detect, tap -------------------------------------------------------------
RECORD = "calling.record"
RECORD_STOP = "calling.record.stop"
SEND_DIGITS = "calling.send_digits"
DETECT = "calling.detect"
DETECT_STOP = "calling.detect.stop"
TAP = "calling.tap"
TAP_STOP = "calling.tap.stop"
SEND_FAX = "calling.send_fax"
RECEIVE_FAX = "calling.receive_fax"

RECORD_EVENT = "calling.call.record"
SEND_DIGITS_EVENT = "calling.call.send_digits"
DETECT_EVENT = "calling.call.detect"
TAP_EVENT = "calling.call.tap"

# Directions as v2 names them, from the call's side: "speak" is what the caller says (the audio
# coming in), "listen" what the caller hears (the audio going out), "both" the two together.
AUDIO_DIRECTIONS = ("speak", "listen", "both")
RECORD_FORMATS = ("mp3", "wav")
DETECT_TYPES = ("digit", "fax", "machine")
FAX_TONES = ("CED", "CNG")
TAP_DEVICE_TYPES = ("rtp", "ws")
TAP_CODECS = ("PCMU", "PCMA")
TAP_PTIMES = (10, 20, 30, 40, 50, 60)  # ms; whole multiples of the 10 ms RTP granularity
SEND_DIGITS_CHARACTERS = frozenset("0123456789*#ABCDabcdwW")  # w: 0.5 s pause, W: 1 s
MAX_SEND_DIGITS = 256

# v2's documented defaults (RELAY v2 SDK reference)
DEFAULT_RECORD_INITIAL_TIMEOUT = 5.0
DEFAULT_RECORD_END_SILENCE_TIMEOUT = 1.0
DEFAULT_RECORD_TERMINATORS = "#*"
DEFAULT_DETECT_TIMEOUT = 30.0
DEFAULT_DETECT_DIGITS = "0123456789#*"
DEFAULT_MACHINE_INITIAL_TIMEOUT = 4.5
DEFAULT_MACHINE_END_SILENCE_TIMEOUT = 1.0
DEFAULT_MACHINE_VOICE_THRESHOLD = 1.25
DEFAULT_MACHINE_WORDS_THRESHOLD = 6
DEFAULT_TAP_PTIME = 20


def _one_of(value: str | None, allowed: Sequence[str], field: str, what: str) -> str | None:
    if value is not None and value not in allowed:
        raise ProtocolError(
            f"unknown {what} {value!r}; expected one of {', '.join(allowed)}", field=field
        )
    return value


def _dtmf_keys(value: str, field: str) -> str:
    bad = sorted(set(value.upper()) - DTMF_CHARACTERS)
    if bad:
        raise ProtocolError(f"{''.join(bad)!r} are not DTMF keys (0-9, *, #, A-D)", field=field)
    return value.upper()


@dataclass(frozen=True, slots=True)
class RecordAudio:
    """``record.audio``: how to record, v2's defaults filled in (``format`` None: the server's).

    A timeout of 0 turns it off: ``initial_timeout`` (no speech in time: ``no_input``) and
    ``end_silence_timeout`` (silence after speech ends the recording).
    """

    beep: bool = False
    format: str | None = None
    stereo: bool = False
    direction: str = "speak"
    initial_timeout: float = DEFAULT_RECORD_INITIAL_TIMEOUT
    end_silence_timeout: float = DEFAULT_RECORD_END_SILENCE_TIMEOUT
    terminators: str = DEFAULT_RECORD_TERMINATORS

    def to_wire(self, record_format: str | None = None) -> dict[str, Any]:
        """The ``record`` object as events carry it (with the format actually used)."""
        return {
            "audio": {
                "beep": self.beep,
                "format": record_format or self.format,
                "stereo": self.stereo,
                "direction": self.direction,
                "initial_timeout": self.initial_timeout,
                "end_silence_timeout": self.end_silence_timeout,
                "terminators": self.terminators,
            }
        }


@dataclass(frozen=True, slots=True)
class RecordParams:
    """``calling.record``: an audio recording of the call."""

    call: CallRef
    control_id: str
    audio: RecordAudio

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> RecordParams:
        call = CallRef.parse(params)
        control_id = req_str(params, "control_id", "")
        record = req_obj(params, "record", "")
        unknown = sorted(set(record) - {"audio"})
        if unknown:
            raise ProtocolError(
                f"cannot record {', '.join(unknown)}; only audio is supported", field="record"
            )
        audio = req_obj(record, "audio", "record")
        path = "record.audio"
        terminators = opt_str(audio, "terminators", path)
        initial = opt_num(audio, "initial_timeout", path, minimum=0, maximum=MAX_TIMEOUT)
        end_silence = opt_num(audio, "end_silence_timeout", path, minimum=0, maximum=MAX_TIMEOUT)
        fmt = opt_str(audio, "format", path)
        return cls(
            call,
            control_id,
            RecordAudio(
                beep=bool(opt_bool(audio, "beep", path)),
                format=_one_of(
                    None if fmt is None else fmt.lower(),
                    RECORD_FORMATS,
                    f"{path}.format",
                    "format",
                ),
                stereo=bool(opt_bool(audio, "stereo", path)),
                direction=_one_of(
                    opt_str(audio, "direction", path),
                    AUDIO_DIRECTIONS,
                    f"{path}.direction",
                    "direction",
                )
                or "speak",
                initial_timeout=DEFAULT_RECORD_INITIAL_TIMEOUT if initial is None else initial,
                end_silence_timeout=(
                    DEFAULT_RECORD_END_SILENCE_TIMEOUT if end_silence is None else end_silence
                ),
                terminators=(
                    DEFAULT_RECORD_TERMINATORS
                    if terminators is None
                    else _dtmf_keys(terminators, f"{path}.terminators")
                ),
            ),
        )


@dataclass(frozen=True, slots=True)
class SendDigitsParams:
    """``calling.send_digits``: DTMF keys to play into the call; ``w`` waits 0.5 s, ``W`` 1 s."""

    call: CallRef
    control_id: str
    digits: str

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> SendDigitsParams:
        call = CallRef.parse(params)
        control_id = req_str(params, "control_id", "")
        digits = req_str(params, "digits", "")
        if len(digits) > MAX_SEND_DIGITS:
            raise ProtocolError(f"must be at most {MAX_SEND_DIGITS} characters", field="digits")
        bad = sorted(set(digits) - SEND_DIGITS_CHARACTERS)
        if bad:
            raise ProtocolError(
                f"{''.join(bad)!r} are neither DTMF keys (0-9, *, #, A-D) nor pauses (w, W)",
                field="digits",
            )
        return cls(call, control_id, digits)


@dataclass(frozen=True, slots=True)
class DigitDetect:
    """``detect`` of type ``digit``: report each of ``digits`` the caller presses."""

    digits: str = DEFAULT_DETECT_DIGITS
    type = "digit"

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "params": {"digits": self.digits}}


@dataclass(frozen=True, slots=True)
class FaxDetect:
    """``detect`` of type ``fax``: the CED (2100 Hz) or CNG (1100 Hz) tone; None: both."""

    tone: str | None = None
    type = "fax"

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "params": {} if self.tone is None else {"tone": self.tone}}


@dataclass(frozen=True, slots=True)
class MachineDetect:
    """``detect`` of type ``machine``: answering-machine detection, v2's thresholds."""

    initial_timeout: float = DEFAULT_MACHINE_INITIAL_TIMEOUT
    end_silence_timeout: float = DEFAULT_MACHINE_END_SILENCE_TIMEOUT
    machine_voice_threshold: float = DEFAULT_MACHINE_VOICE_THRESHOLD
    machine_words_threshold: int = DEFAULT_MACHINE_WORDS_THRESHOLD
    type = "machine"

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "params": {
                "initial_timeout": self.initial_timeout,
                "end_silence_timeout": self.end_silence_timeout,
                "machine_voice_threshold": self.machine_voice_threshold,
                "machine_words_threshold": self.machine_words_threshold,
            },
        }


Detector = DigitDetect | FaxDetect | MachineDetect


def _parse_detector(detect: Mapping[str, Any]) -> Detector:
    kind = detect.get("type")
    if not isinstance(kind, str) or kind not in DETECT_TYPES:
        raise ProtocolError(
            f"unknown detect type {kind!r}; expected one of {', '.join(DETECT_TYPES)}",
            field="detect.type",
        )
    params = opt_obj(detect, "params", "detect") or {}
    path = "detect.params"
    if kind == "digit":
        digits = opt_str(params, "digits", path)
        if digits is not None and not digits:
            raise ProtocolError("must name at least one key", field=f"{path}.digits")
        return DigitDetect(
            DEFAULT_DETECT_DIGITS if digits is None else _dtmf_keys(digits, f"{path}.digits")
        )
    if kind == "fax":
        tone = opt_str(params, "tone", path)
        return FaxDetect(
            _one_of(None if tone is None else tone.upper(), FAX_TONES, f"{path}.tone", "tone")
        )

    def seconds(key: str, default: float) -> float:
        value = opt_num(params, key, path, minimum=0, maximum=MAX_TIMEOUT, exclusive_minimum=True)
        return default if value is None else value

    words = opt_int(params, "machine_words_threshold", path, minimum=1, maximum=1000)
    return MachineDetect(
        initial_timeout=seconds("initial_timeout", DEFAULT_MACHINE_INITIAL_TIMEOUT),
        end_silence_timeout=seconds("end_silence_timeout", DEFAULT_MACHINE_END_SILENCE_TIMEOUT),
        machine_voice_threshold=seconds("machine_voice_threshold", DEFAULT_MACHINE_VOICE_THRESHOLD),
        machine_words_threshold=DEFAULT_MACHINE_WORDS_THRESHOLD if words is None else words,
    )


@dataclass(frozen=True, slots=True)
class DetectParams:
    """``calling.detect``: one detector, run for at most ``timeout`` seconds."""

    call: CallRef
    control_id: str
    detector: Detector
    timeout: float = DEFAULT_DETECT_TIMEOUT

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> DetectParams:
        call = CallRef.parse(params)
        control_id = req_str(params, "control_id", "")
        detector = _parse_detector(req_obj(params, "detect", ""))
        timeout = opt_num(
            params, "timeout", "", minimum=0, maximum=MAX_TIMEOUT, exclusive_minimum=True
        )
        return cls(
            call, control_id, detector, DEFAULT_DETECT_TIMEOUT if timeout is None else timeout
        )


@dataclass(frozen=True, slots=True)
class TapDevice:
    """Where a tap streams: RTP over UDP to ``addr:port``, or RTP packets as binary WebSocket
    messages to ``uri``; G.711 ``codec`` at 8 kHz in packets of ``ptime`` ms."""

    type: str
    addr: str | None = None
    port: int | None = None
    uri: str | None = None
    codec: str = "PCMU"
    ptime: int = DEFAULT_TAP_PTIME

    def to_wire(self) -> dict[str, Any]:
        params: dict[str, Any] = {"codec": self.codec, "ptime": self.ptime}
        if self.type == "rtp":
            params.update(addr=self.addr, port=self.port)
        else:
            params.update(uri=self.uri, rate=8000)
        return {"type": self.type, "params": params}

    @classmethod
    def parse(cls, obj: Mapping[str, Any], path: str = "device") -> TapDevice:
        kind = obj.get("type")
        if not isinstance(kind, str) or kind not in TAP_DEVICE_TYPES:
            raise ProtocolError(
                f"unknown tap device type {kind!r}; expected one of {', '.join(TAP_DEVICE_TYPES)}",
                field=f"{path}.type",
            )
        ppath = f"{path}.params"
        params = req_obj(obj, "params", path)
        codec = opt_str(params, "codec", ppath)
        codec = "PCMU" if codec is None else codec.upper()
        if codec not in TAP_CODECS:
            raise ProtocolError(
                f"codec {codec!r} is not supported here; use PCMU or PCMA", field=f"{ppath}.codec"
            )
        ptime = opt_int(params, "ptime", ppath, minimum=1, maximum=1000)
        if ptime is not None and ptime not in TAP_PTIMES:
            raise ProtocolError(
                f"must be one of {', '.join(map(str, TAP_PTIMES))} ms", field=f"{ppath}.ptime"
            )
        rate = opt_int(params, "rate", ppath, minimum=1, maximum=192_000)
        if rate is not None and rate != 8000:
            raise ProtocolError("must be 8000: G.711 runs at 8 kHz", field=f"{ppath}.rate")
        ptime = DEFAULT_TAP_PTIME if ptime is None else ptime
        if kind == "rtp":
            addr = req_str(params, "addr", ppath)
            port = opt_int(params, "port", ppath, minimum=1, maximum=65535)
            if port is None:
                raise ProtocolError("is required", field=f"{ppath}.port")
            return cls(kind, addr=addr, port=port, codec=codec, ptime=ptime)
        uri = req_str(params, "uri", ppath)
        if not uri.startswith(("ws://", "wss://")):
            raise ProtocolError("must be a ws:// or wss:// URL", field=f"{ppath}.uri")
        return cls(kind, uri=uri, codec=codec, ptime=ptime)


@dataclass(frozen=True, slots=True)
class TapParams:
    """``calling.tap``: stream the call's audio (``direction``) to ``device``."""

    call: CallRef
    control_id: str
    direction: str
    device: TapDevice

    def tap_to_wire(self) -> dict[str, Any]:
        return {"type": "audio", "params": {"direction": self.direction}}

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> TapParams:
        call = CallRef.parse(params)
        control_id = req_str(params, "control_id", "")
        tap = req_obj(params, "tap", "")
        if tap.get("type") != "audio":
            raise ProtocolError(
                f"unknown tap type {tap.get('type')!r}; only audio is supported",
                field="tap.type",
            )
        tap_params = opt_obj(tap, "params", "tap") or {}
        direction = _one_of(
            opt_str(tap_params, "direction", "tap.params"),
            AUDIO_DIRECTIONS,
            "tap.params.direction",
            "direction",
        )
        device = TapDevice.parse(req_obj(params, "device", ""))
        return cls(call, control_id, direction or "speak", device)


def record_event(
    *,
    call_id: str,
    node_id: str,
    control_id: str,
    state: str,
    record: Mapping[str, Any],
    url: str | None = None,
    duration: float | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """Params of ``calling.call.record``; state is recording, finished, no_input or error."""
    event: dict[str, Any] = {
        "control_id": control_id,
        "call_id": call_id,
        "node_id": node_id,
        "state": state,
        "record": dict(record),
    }
    if url is not None:
        event["url"] = url
    if duration is not None:
        event["duration"] = duration
    if size is not None:
        event["size"] = size
    return event


def send_digits_event(*, call_id: str, node_id: str, control_id: str, state: str) -> dict[str, Any]:
    """Params of ``calling.call.send_digits`` (state ``finished``)."""
    return {"control_id": control_id, "call_id": call_id, "node_id": node_id, "state": state}


def detect_event(
    *, call_id: str, node_id: str, control_id: str, detect_type: str, event: str
) -> dict[str, Any]:
    """Params of ``calling.call.detect``: ``event`` is a result (a key, CED/CNG, HUMAN,
    MACHINE, UNKNOWN, READY, NOT_READY) or the end (``finished``, ``error``)."""
    return {
        "control_id": control_id,
        "call_id": call_id,
        "node_id": node_id,
        "detect": {"type": detect_type, "params": {"event": event}},
    }


def tap_event(
    *,
    call_id: str,
    node_id: str,
    control_id: str,
    state: str,
    tap: Mapping[str, Any],
    device: Mapping[str, Any],
) -> dict[str, Any]:
    """Params of ``calling.call.tap``; state is tapping or finished."""
    return {
        "control_id": control_id,
        "call_id": call_id,
        "node_id": node_id,
        "state": state,
        "tap": dict(tap),
        "device": dict(device),
    }
