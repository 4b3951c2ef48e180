"""Tests for relaykit.protocol.calling: play_and_collect parsing, collect events, terminal rule."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaykit.errors import ProtocolError
from relaykit.protocol import calling
from relaykit.protocol.calling import (
    AudioMedia,
    CallRef,
    Collect,
    DigitsCollect,
    PlayAndCollectParams,
    RingtoneMedia,
    SilenceMedia,
    SpeechCollect,
    TtsMedia,
    collect_event,
    is_terminal_collect,
)

# §5.1 with the §5.1.1 media objects and the §5.1.2 collect object filled in.
SECTION_5_1_PLAY = [
    {"type": "audio", "params": {"url": "https://example.com/file.mp3"}},
    {"type": "tts", "params": {"text": "Hello", "language": "en-US", "gender": "male"}},
    {"type": "silence", "params": {"duration": 2.0}},
    {"type": "ringtone", "params": {"name": "us", "duration": 10}},
]
SECTION_5_1_EXAMPLE = {
    "node_id": "node-id",
    "call_id": "call-id",
    "control_id": "control-id",
    "play": SECTION_5_1_PLAY,
    "collect": {
        "initial_timeout": 10.0,
        "digits": {"max": 4, "terminators": "#*", "digit_timeout": 5.0},
        "speech": {
            "end_silence_timeout": 1.0,
            "speech_timeout": 60.0,
            "language": "en-US",
            "hints": ["yes", "no"],
        },
        "partial_results": True,
    },
    "volume": -4.0,
}


def minimal(**changes: Any) -> dict[str, Any]:
    """The smallest valid play_and_collect params, with top-level keys replaced."""
    params: dict[str, Any] = {
        "node_id": "node-id",
        "call_id": "call-id",
        "control_id": "control-id",
        "play": [{"type": "audio", "params": {"url": "audio.mp3"}}],
        "collect": {"digits": {}},
    }
    params.update(changes)
    return params


def refusal(params: dict[str, Any]) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        PlayAndCollectParams.parse(params)
    return info.value


# -- parsing -------------------------------------------------------------------------------------
def test_parse_reads_the_section_5_1_example_into_dataclasses() -> None:
    """The §5.1 example parses into the matching media, collect and volume values."""
    parsed = PlayAndCollectParams.parse(copy.deepcopy(SECTION_5_1_EXAMPLE))
    assert parsed == PlayAndCollectParams(
        call=CallRef("call-id", "node-id"),
        control_id="control-id",
        play=(
            AudioMedia("https://example.com/file.mp3"),
            TtsMedia("Hello", "en-US", "male"),
            SilenceMedia(2.0),
            RingtoneMedia("us", 10.0),
        ),
        collect=Collect(
            initial_timeout=10.0,
            digits=DigitsCollect(max=4, terminators="#*", digit_timeout=5.0),
            speech=SpeechCollect(
                end_silence_timeout=1.0, speech_timeout=60.0, language="en-US", hints=("yes", "no")
            ),
            partial_results=True,
        ),
        volume=-4.0,
    )


def test_parsed_media_goes_back_to_the_section_5_1_1_wire_objects() -> None:
    """media_to_wire of the parsed play list gives back the §5.1.1 objects."""
    parsed = PlayAndCollectParams.parse(copy.deepcopy(SECTION_5_1_EXAMPLE))
    assert calling.media_to_wire(parsed.play) == SECTION_5_1_PLAY


def test_parse_applies_documented_defaults_when_fields_are_absent() -> None:
    """Absent fields get initial 5.0, digit 1.0, end_silence 1.0, speech 60.0, en-US, volume 0."""
    parsed = PlayAndCollectParams.parse(minimal(collect={"digits": {}, "speech": {}}))
    collect = parsed.collect
    assert collect.initial_timeout == 5.0
    assert collect.digits == DigitsCollect(max=None, terminators="", digit_timeout=1.0)
    assert collect.speech == SpeechCollect(
        end_silence_timeout=1.0, speech_timeout=60.0, language="en-US", hints=()
    )
    assert (collect.partial_results, collect.send_start_of_input) == (False, False)
    assert parsed.volume == 0.0


def test_parse_keeps_digits_or_speech_off_when_not_requested() -> None:
    """A collect with only speech has no digits section, and vice versa."""
    speech_only = PlayAndCollectParams.parse(minimal(collect={"speech": {}})).collect
    digits_only = PlayAndCollectParams.parse(minimal(collect={"digits": {}})).collect
    assert speech_only.digits is None and speech_only.speech is not None
    assert digits_only.speech is None and digits_only.digits is not None


@pytest.mark.parametrize("volume", [40, -40, 0, 3.5])
def test_parse_accepts_volume_within_plus_minus_40(volume: float) -> None:
    """Volumes from −40 to +40 dB inclusive are accepted as floats."""
    parsed = PlayAndCollectParams.parse(minimal(volume=volume))
    assert parsed.volume == float(volume)


def test_parse_accepts_every_dtmf_key_as_a_terminator() -> None:
    """Terminators may be any of 0-9, *, #, A-D."""
    collect = {"digits": {"terminators": "0123456789*#ABCD"}}
    parsed = PlayAndCollectParams.parse(minimal(collect=collect))
    assert parsed.collect.digits is not None
    assert parsed.collect.digits.terminators == "0123456789*#ABCD"


# -- validation errors name the dotted field -----------------------------------------------------
def media(kind: str, **params: Any) -> list[dict[str, Any]]:
    return [{"type": kind, "params": params}]


def digits(**fields: Any) -> dict[str, Any]:
    return {"digits": fields}


INVALID_CASES = [
    pytest.param(minimal(play=media("video", url="a.mp4")), "play[0].type", id="unknown-media"),
    pytest.param(minimal(play=[{"params": {"url": "a"}}]), "play[0].type", id="media-no-type"),
    pytest.param(minimal(play=media("tts")), "play[0].params.text", id="tts-without-text"),
    pytest.param(minimal(play=media("tts", text="")), "play[0].params.text", id="tts-empty"),
    pytest.param(
        minimal(play=[*media("audio", url="a"), *media("audio")]),
        "play[1].params.url",
        id="second-audio-without-url",
    ),
    pytest.param(
        minimal(play=media("tts", text="hi", gender="robot")),
        "play[0].params.gender",
        id="tts-bad-gender",
    ),
    pytest.param(minimal(play=media("silence")), "play[0].params.duration", id="silence-no-dur"),
    pytest.param(minimal(play=[{"type": "audio"}]), "play[0].params", id="media-no-params"),
    pytest.param(minimal(play=["audio.mp3"]), "play[0]", id="media-not-object"),
    pytest.param(minimal(collect=digits(max=0)), "collect.digits.max", id="max-0"),
    pytest.param(minimal(collect=digits(max=1.5)), "collect.digits.max", id="max-1.5"),
    pytest.param(minimal(collect=digits(max="3")), "collect.digits.max", id="max-string"),
    pytest.param(minimal(collect=digits(max=True)), "collect.digits.max", id="max-true"),
    pytest.param(minimal(collect=digits(max=129)), "collect.digits.max", id="max-129"),
    pytest.param(
        minimal(collect=digits(terminators="#x")), "collect.digits.terminators", id="term-x"
    ),
    pytest.param(
        minimal(collect=digits(terminators="1!")), "collect.digits.terminators", id="term-bang"
    ),
    pytest.param(
        minimal(collect=digits(terminators=5)), "collect.digits.terminators", id="term-int"
    ),
    pytest.param(
        minimal(collect=digits(digit_timeout=0)),
        "collect.digits.digit_timeout",
        id="digit-timeout-0",
    ),
    pytest.param(
        minimal(collect={"speech": {"hints": ["yes", 1]}}),
        "collect.speech.hints",
        id="hints-not-strings",
    ),
    pytest.param(
        minimal(collect={"speech": {"speech_timeout": -1}}),
        "collect.speech.speech_timeout",
        id="speech-timeout-negative",
    ),
    pytest.param(
        minimal(collect={"digits": {}, "initial_timeout": -1}),
        "collect.initial_timeout",
        id="initial-timeout-negative",
    ),
    pytest.param(minimal(volume=41), "volume", id="volume-41"),
    pytest.param(minimal(volume=-41), "volume", id="volume-minus-41"),
    pytest.param(minimal(volume="loud"), "volume", id="volume-string"),
    pytest.param(minimal(volume=math.nan), "volume", id="volume-nan"),
    pytest.param(minimal(volume=math.inf), "volume", id="volume-inf"),
    pytest.param(minimal(volume=True), "volume", id="volume-bool"),
    pytest.param(minimal(collect={}), "collect", id="collect-empty"),
    pytest.param(
        minimal(collect={"initial_timeout": 3, "partial_results": True}),
        "collect",
        id="collect-no-digits-no-speech",
    ),
    pytest.param(minimal(collect=[]), "collect", id="collect-not-object"),
    pytest.param(minimal(collect={"digits": "4"}), "collect.digits", id="digits-not-object"),
    pytest.param(minimal(play=[]), "play", id="play-empty"),
    pytest.param(minimal(play="audio.mp3"), "play", id="play-string"),
    pytest.param(minimal(play={"type": "audio", "params": {"url": "a"}}), "play", id="play-dict"),
]


@pytest.mark.parametrize(("params", "field"), INVALID_CASES)
def test_parse_refuses_bad_field_naming_its_dotted_path(params: dict[str, Any], field: str) -> None:
    """Each invalid field raises a -32602 ProtocolError whose field is its dotted path."""
    exc = refusal(params)
    assert exc.field == field
    assert exc.code == -32602


@pytest.mark.parametrize("key", ["control_id", "call_id", "play", "collect"])
def test_parse_refuses_missing_required_field_naming_it(key: str) -> None:
    """A missing call_id, control_id, play or collect is refused naming that key."""
    params = minimal()
    del params[key]
    assert refusal(params).field == key


def test_parse_accepts_missing_node_id() -> None:
    """node_id is optional; call_id alone identifies the call."""
    params = minimal()
    del params["node_id"]
    assert PlayAndCollectParams.parse(params).call == CallRef("call-id", None)


@pytest.mark.parametrize(
    "params",
    [
        minimal(volume=10**400),
        minimal(collect={"digits": {}, "initial_timeout": 10**400}),
        minimal(play=media("silence", duration=10**400)),
    ],
    ids=["volume", "initial_timeout", "silence-duration"],
)
def test_parse_refuses_an_integer_too_big_for_a_float(params: dict[str, Any]) -> None:
    """A huge JSON integer in a number field is a ProtocolError, not an OverflowError."""
    refusal(params)


# -- Hypothesis: parse never fails with anything but ProtocolError -------------------------------
_KEYS = st.sampled_from(
    [
        "call_id",
        "node_id",
        "control_id",
        "play",
        "collect",
        "volume",
        "type",
        "params",
        "text",
        "url",
        "name",
        "duration",
        "gender",
        "language",
        "digits",
        "speech",
        "max",
        "terminators",
        "digit_timeout",
        "initial_timeout",
        "end_silence_timeout",
        "speech_timeout",
        "hints",
        "partial_results",
        "send_start_of_input",
        "barge_in",
    ]
)
# Integers stay within 64 bits: larger ones hit the OverflowError bug tested above.
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from(["audio", "tts", "silence", "ringtone", "male", "#", "12", "en-US"])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(_KEYS | st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


def _mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually (6 in 7) a plausible value, otherwise any JSON value."""
    return st.sampled_from([True] * 6 + [False]).flatmap(lambda ok: good if ok else _JSON)


_NUM = (
    st.floats(min_value=0.01, max_value=100)
    | st.integers(min_value=-5, max_value=200)
    | st.floats(min_value=-50, max_value=5000)
)


def _media(kind: str, required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy:
    params = st.fixed_dictionaries(
        {k: _mostly(v) for k, v in required.items()},
        optional={k: _mostly(v) for k, v in optional.items()},
    )
    return st.fixed_dictionaries({"type": _mostly(st.just(kind)), "params": _mostly(params)})


_MEDIA = st.one_of(
    _media("audio", {"url": st.just("a.mp3")}, {}),
    _media(
        "tts",
        {"text": st.text(min_size=1, max_size=4)},
        {"language": st.just("en-US"), "gender": st.sampled_from(["male", "female", "robot"])},
    ),
    _media("silence", {"duration": _NUM}, {}),
    _media("ringtone", {"name": st.sampled_from(["us", "uk"])}, {"duration": _NUM}),
)
_DIGITS = st.fixed_dictionaries(
    {},
    optional={
        "max": _mostly(_NUM),
        "terminators": _mostly(st.text(alphabet="0123456789*#ABCDabcdx!", max_size=3)),
        "digit_timeout": _mostly(_NUM),
    },
)
_SPEECH = st.fixed_dictionaries(
    {},
    optional={
        "end_silence_timeout": _mostly(_NUM),
        "speech_timeout": _mostly(_NUM),
        "language": _JSON,
        "hints": _mostly(st.lists(st.text(max_size=3), max_size=3)),
    },
)
_SHAPED = st.fixed_dictionaries(
    {
        "call_id": _mostly(st.just("call-id")),
        "control_id": _mostly(st.just("control-id")),
        "play": _mostly(st.lists(_mostly(_MEDIA), min_size=1, max_size=3)),
        "collect": _mostly(
            st.fixed_dictionaries(
                {"digits": _mostly(_DIGITS)},
                optional={
                    "speech": _mostly(_SPEECH),
                    "initial_timeout": _mostly(_NUM),
                    "partial_results": _JSON,
                    "send_start_of_input": _JSON,
                    "barge_in": _JSON,
                },
            )
        ),
    },
    optional={"node_id": _mostly(st.just("node-id")), "volume": _mostly(_NUM)},
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([True] * 4 + [False]).flatmap(
        lambda shaped: _SHAPED if shaped else st.dictionaries(_KEYS | st.text(max_size=4), _JSON)
    )
)
def test_parse_of_arbitrary_json_dict_returns_or_raises_protocol_error(
    params: dict[str, Any],
) -> None:
    """PlayAndCollectParams.parse either returns or raises ProtocolError with a field string."""
    try:
        parsed = PlayAndCollectParams.parse(params)
    except ProtocolError as exc:
        assert isinstance(exc.field, str)
    else:
        assert isinstance(parsed, PlayAndCollectParams)


# -- §5.2 volume ---------------------------------------------------------------------------------
def test_volume_params_parses_the_section_5_2_volume_command() -> None:
    """The §5.2 play_and_collect.volume params parse to call, control_id and volume."""
    parsed = calling.VolumeParams.parse(
        {"call_id": "call-id", "node_id": "node-id", "control_id": "control-id", "volume": -5.4}
    )
    assert parsed == calling.VolumeParams(CallRef("call-id", "node-id"), "control-id", -5.4)


def test_volume_params_requires_volume() -> None:
    """A volume command without volume is refused naming `volume`."""
    with pytest.raises(ProtocolError) as info:
        calling.VolumeParams.parse({"call_id": "c", "control_id": "x"})
    assert info.value.field == "volume"


# -- §6.1 collect events -------------------------------------------------------------------------
IDS = {"call_id": "call-id", "node_id": "node-id", "control_id": "control-id"}


def test_collect_event_builds_the_section_6_1_digit_shape() -> None:
    """A final digit event is §6.1 plus final true, state finished and result.reason."""
    event = collect_event(
        **IDS,
        result_type="digit",
        result_params={"digits": "12345", "terminator": "#"},
        reason="terminator",
    )
    assert event == {
        "control_id": "control-id",
        "call_id": "call-id",
        "node_id": "node-id",
        "result": {
            "type": "digit",
            "params": {"digits": "12345", "terminator": "#"},
            "reason": "terminator",
        },
        "final": True,
        "state": "finished",
    }


def test_collect_event_builds_the_section_6_1_speech_shape() -> None:
    """A final speech event carries text, confidence, final true and result.reason."""
    event = collect_event(
        **IDS,
        result_type="speech",
        result_params={"text": "example hello", "confidence": 83.4},
        reason="end_silence",
    )
    assert event == {
        **IDS,
        "result": {
            "type": "speech",
            "params": {"text": "example hello", "confidence": 83.4},
            "reason": "end_silence",
        },
        "final": True,
        "state": "finished",
    }


@pytest.mark.parametrize(
    ("result_type", "reason", "state"),
    [
        ("no_input", "initial_timeout", "finished"),
        ("no_match", "speech_timeout", "finished"),
        ("error", "error", "error"),
    ],
)
def test_collect_event_builds_terminal_events_without_params(
    result_type: str, reason: str, state: str
) -> None:
    """no_input, no_match and error events have no result.params; error has state error."""
    event = collect_event(**IDS, result_type=result_type, reason=reason)
    assert event == {
        **IDS,
        "result": {"type": result_type, "reason": reason},
        "final": True,
        "state": state,
    }


def test_collect_event_builds_interim_events_as_collecting() -> None:
    """An interim event carries final false and state collecting."""
    event = collect_event(
        **IDS, result_type="speech", result_params={"text": "exam", "confidence": 40.0}, final=False
    )
    assert event == {
        **IDS,
        "result": {"type": "speech", "params": {"text": "exam", "confidence": 40.0}},
        "final": False,
        "state": "collecting",
    }


def test_collect_event_copies_result_params() -> None:
    """Later changes to the caller's result_params do not reach the built event."""
    result_params = {"digits": "1", "terminator": ""}
    event = collect_event(
        **IDS, result_type="digit", result_params=result_params, reason="max_digits"
    )
    result_params["digits"] = "999"
    assert event["result"]["params"]["digits"] == "1"


@pytest.mark.parametrize(
    ("result_type", "final", "terminal"),
    [
        ("digit", True, True),
        ("speech", True, True),
        ("no_input", True, True),
        ("error", True, True),
        ("speech", False, False),
        ("start_of_input", False, False),
    ],
)
def test_built_collect_events_agree_with_the_terminal_rule(
    result_type: str, final: bool, terminal: bool
) -> None:
    """Events from collect_event are terminal exactly when built as final end results."""
    assert (
        is_terminal_collect(collect_event(**IDS, result_type=result_type, final=final)) is terminal
    )


# -- §6.1 terminal rule --------------------------------------------------------------------------
def event(result: Any, **extra: Any) -> dict[str, Any]:
    return {**IDS, "result": result, **extra}


@pytest.mark.parametrize(
    "params",
    [
        event({"type": "digit", "params": {"digits": "12345", "terminator": "#"}}),
        event({"type": "speech", "params": {"text": "example hello", "confidence": 83.4}}),
        event({"type": "no_input"}),
        event({"type": "no_match"}),
        event({"type": "error"}),
        event({"type": "digit", "params": {"digits": "1", "terminator": ""}}, final=True),
        event({"type": "speech", "params": {"text": "yes"}}, final=True, state="finished"),
        event({"type": "error"}, state="error"),
    ],
)
def test_is_terminal_collect_accepts_final_end_results(params: dict[str, Any]) -> None:
    """digit, speech, no_input, no_match and error end the prompt when final and not collecting."""
    assert is_terminal_collect(params) is True


@pytest.mark.parametrize(
    "params",
    [
        event({"type": "start_of_input"}),
        event({"type": "speech", "params": {"text": "exa"}}, final=False),
        event({"type": "digit", "params": {"digits": "1"}}, final=False),
        event({"type": "speech", "params": {"text": "yes"}}, final=True, state="collecting"),
        event({"type": "no_input"}, state="collecting"),
        event({"type": "partial"}),
        event(None),
        event("digit"),
        event({}),
        dict(IDS),
    ],
)
def test_is_terminal_collect_refuses_updates_and_unknown_types(params: dict[str, Any]) -> None:
    """start_of_input, final false, state collecting and unknown results are not terminal."""
    assert is_terminal_collect(params) is False
