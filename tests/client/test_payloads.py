"""Tests for relaykit.client.payloads: v2 prompt kwargs → play/collect wire JSON (§5.1.3, §7.5)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from relaykit.client.payloads import PROMPT_KWARGS, build_collect, build_media_list


def canonical(value: Any) -> str:
    """Key-order-free JSON text that still tells 10 from 10.0."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def assert_json(actual: Any, expected_text: str) -> None:
    assert canonical(actual) == canonical(json.loads(expected_text))


# -- §5.1.3: every row ---------------------------------------------------------------------------
# The media lists are the flat forms the Call methods build; the kwargs are the v2 caller's kwargs
# exactly as written in the row (prompt_tts/prompt_ringtone also receive gender/duration there).
AUDIO_FLAT = [{"type": "audio", "url": "audio.mp3"}]
AUDIO_WIRE = '[{"type":"audio","params":{"url":"audio.mp3"}}]'

SECTION_5_1_3_ROWS = [
    pytest.param("both", AUDIO_FLAT, {}, AUDIO_WIRE, '{"digits":{},"speech":{}}', id="prompt-both"),
    pytest.param("speech", AUDIO_FLAT, {}, AUDIO_WIRE, '{"speech":{}}', id="prompt-speech"),
    pytest.param(
        "digits",
        AUDIO_FLAT,
        {"digits_max": 5, "digits_timeout": 30},
        AUDIO_WIRE,
        '{"digits":{"max":5,"digit_timeout":30}}',
        id="prompt-digits-max-timeout",
    ),
    pytest.param(
        "both",
        AUDIO_FLAT,
        {"digits_max": 5},
        AUDIO_WIRE,
        '{"digits":{"max":5},"speech":{}}',
        id="prompt_audio-both-digits_max",
    ),
    pytest.param(
        "both",
        AUDIO_FLAT,
        {"speech_language": "it-IT"},
        AUDIO_WIRE,
        '{"digits":{},"speech":{"language":"it-IT"}}',
        id="prompt_audio_async-speech_language",
    ),
    pytest.param(
        "both",
        [{"type": "tts", "text": "hi there!", "gender": "male"}],
        {"gender": "male", "digits_max": 5},
        '[{"type":"tts","params":{"text":"hi there!","gender":"male"}}]',
        '{"digits":{"max":5},"speech":{}}',
        id="prompt_tts-gender-digits_max",
    ),
    pytest.param(
        "both",
        [{"type": "ringtone", "name": "us", "duration": 10}],
        {"duration": 10, "digits_max": 5},
        '[{"type":"ringtone","params":{"name":"us","duration":10}}]',
        '{"digits":{"max":5},"speech":{}}',
        id="prompt_ringtone-duration-digits_max",
    ),
    pytest.param(
        "both",
        [{"type": "ringtone", "name": "us"}],
        {"speech_language": "it-IT"},
        '[{"type":"ringtone","params":{"name":"us"}}]',
        '{"digits":{},"speech":{"language":"it-IT"}}',
        id="prompt_ringtone_async-speech_language",
    ),
]


@pytest.mark.parametrize(
    ("prompt_type", "media_list", "kwargs", "play_json", "collect_json"), SECTION_5_1_3_ROWS
)
def test_section_5_1_3_row_produces_exact_play_and_collect(
    prompt_type: str,
    media_list: list[dict[str, Any]],
    kwargs: dict[str, Any],
    play_json: str,
    collect_json: str,
) -> None:
    """Each §5.1.3 row gives exactly the documented play and collect JSON."""
    assert_json(build_media_list(copy.deepcopy(media_list)), play_json)
    assert_json(build_collect(prompt_type, dict(kwargs)), collect_json)


# -- build_collect: kwarg mapping (§7.5) ---------------------------------------------------------
KWARG_LOCATIONS = [
    ("initial_timeout", 10, ("initial_timeout",)),
    ("digits_max", 4, ("digits", "max")),
    ("digits_terminators", "#*", ("digits", "terminators")),
    ("digits_timeout", 5.0, ("digits", "digit_timeout")),
    ("end_silence_timeout", 1.5, ("speech", "end_silence_timeout")),
    ("speech_timeout", 30.0, ("speech", "speech_timeout")),
    ("speech_language", "it-IT", ("speech", "language")),
    ("speech_hints", ["yes", "no"], ("speech", "hints")),
]


@pytest.mark.parametrize(("kwarg", "value", "location"), KWARG_LOCATIONS)
def test_build_collect_puts_each_kwarg_at_its_payload_location_and_nothing_else(
    kwarg: str, value: Any, location: tuple[str, ...]
) -> None:
    """A passed kwarg lands at its §7.5 location and adds no other key."""
    expected: dict[str, Any] = {"digits": {}, "speech": {}}
    target = expected
    for key in location[:-1]:
        target = target[key]
    target[location[-1]] = value
    assert canonical(build_collect("both", {kwarg: value})) == canonical(expected)


@pytest.mark.parametrize(
    ("prompt_type", "expected"),
    [
        ("digits", {"digits": {}}),
        ("speech", {"speech": {}}),
        ("both", {"digits": {}, "speech": {}}),
    ],
)
def test_build_collect_without_kwargs_sends_empty_sections(
    prompt_type: str, expected: dict[str, Any]
) -> None:
    """With no kwargs only the empty section objects of the prompt type are sent."""
    assert build_collect(prompt_type, {}) == expected


def test_build_collect_maps_digits_timeout_to_digit_timeout() -> None:
    """digits_timeout is renamed digit_timeout on the wire."""
    collect = build_collect("digits", {"digits_timeout": 7})
    assert collect == {"digits": {"digit_timeout": 7}}
    assert "digits_timeout" not in collect["digits"]


@pytest.mark.parametrize(
    "kwarg", ["end_silence_timeout", "speech_timeout", "speech_language", "speech_hints"]
)
def test_build_collect_refuses_speech_kwarg_for_digits_prompt_with_value_error(kwarg: str) -> None:
    """A speech kwarg with prompt_type 'digits' is a ValueError naming it, not a KeyError."""
    value: Any = ["yes"] if kwarg == "speech_hints" else 1.0
    with pytest.raises(ValueError, match=kwarg):
        build_collect("digits", {kwarg: value})


@pytest.mark.parametrize("kwarg", ["digits_max", "digits_terminators", "digits_timeout"])
def test_build_collect_refuses_digits_kwarg_for_speech_prompt_with_value_error(kwarg: str) -> None:
    """A digits kwarg with prompt_type 'speech' is a ValueError naming it, not a KeyError."""
    with pytest.raises(ValueError, match=kwarg):
        build_collect("speech", {kwarg: "#" if kwarg == "digits_terminators" else 3})


@pytest.mark.parametrize("prompt_type", ["digit", "DIGITS", "", "dtmf"])
def test_build_collect_refuses_unknown_prompt_type(prompt_type: str) -> None:
    """An unknown prompt_type is a ValueError instead of v2's silent `collect: {}`."""
    with pytest.raises(ValueError, match="prompt_type"):
        build_collect(prompt_type, {})


def test_build_collect_refuses_unknown_kwarg_with_type_error_listing_valid_ones() -> None:
    """An unknown kwarg is a TypeError that names it and lists every valid prompt kwarg."""
    with pytest.raises(TypeError) as info:
        build_collect("both", {"digits_maximum": 4})
    message = str(info.value)
    assert "digits_maximum" in message
    for name in PROMPT_KWARGS:
        assert name in message


def test_build_collect_accepts_and_ignores_media_kwargs() -> None:
    """language, gender and duration (media options) are accepted and leave collect alone."""
    kwargs = {"language": "en-US", "gender": "female", "duration": 3}
    assert build_collect("digits", kwargs) == {"digits": {}}


def test_build_collect_keeps_volume_out_of_collect() -> None:
    """volume is a top-level prompt field, never part of collect."""
    assert build_collect("speech", {"volume": -4}) == {"speech": {}}


def test_build_collect_copies_hints_instead_of_aliasing_the_callers_list() -> None:
    """The hints list sent is not the caller's list object."""
    hints = ["yes", "no"]
    collect = build_collect("speech", {"speech_hints": hints})
    collect["speech"]["hints"].append("maybe")
    assert hints == ["yes", "no"]


def test_build_collect_refuses_a_bare_string_as_speech_hints() -> None:
    """speech_hints given as one string is refused rather than split into characters."""
    with pytest.raises((TypeError, ValueError), match="speech_hints"):
        build_collect("speech", {"speech_hints": "yes"})


# -- build_media_list (§7.4) ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flat", "wire"),
    [
        ({"type": "audio", "url": "a.wav"}, '{"type":"audio","params":{"url":"a.wav"}}'),
        (
            {"type": "tts", "text": "Hello", "language": "en-US", "gender": "male"},
            '{"type":"tts","params":{"text":"Hello","language":"en-US","gender":"male"}}',
        ),
        ({"type": "silence", "duration": 2.0}, '{"type":"silence","params":{"duration":2.0}}'),
        (
            {"type": "ringtone", "name": "us", "duration": 10},
            '{"type":"ringtone","params":{"name":"us","duration":10}}',
        ),
    ],
)
def test_build_media_list_wraps_flat_media_in_type_and_params(
    flat: dict[str, Any], wire: str
) -> None:
    """A flat media dict becomes {"type", "params": {every other key}}."""
    assert_json(build_media_list([flat]), f"[{wire}]")


def test_build_media_list_never_mutates_the_callers_dicts() -> None:
    """The caller's media dicts keep their `type` key and contents (v2 defect §8.2.11)."""
    media_list = [
        {"type": "tts", "text": "hi", "gender": "female"},
        {"type": "audio", "params": {"url": "a.mp3"}},
    ]
    before = copy.deepcopy(media_list)
    wire = build_media_list(media_list)
    assert media_list == before
    wire[1]["params"]["url"] = "changed.mp3"
    assert media_list[1]["params"] == {"url": "a.mp3"}


def test_build_media_list_gives_the_same_payload_when_called_twice_with_one_list() -> None:
    """Reusing a media list gives the same payload (v2 lost `type` on the second call)."""
    media_list = [{"type": "audio", "url": "a.mp3"}]
    assert build_media_list(media_list) == build_media_list(media_list)


def test_build_media_list_accepts_nested_media_without_double_wrapping() -> None:
    """A nested {"type","params"} item is sent as is, mixed freely with flat items."""
    media_list = [
        {"type": "tts", "params": {"text": "Hello", "language": "en-US"}},
        {"type": "silence", "duration": 1.0},
    ]
    assert_json(
        build_media_list(media_list),
        '[{"type":"tts","params":{"text":"Hello","language":"en-US"}},'
        '{"type":"silence","params":{"duration":1.0}}]',
    )


@pytest.mark.parametrize(
    ("media_list", "field"),
    [
        ([{"type": "tts"}], "media_list[0].params.text"),
        ([{"type": "audio", "url": "a.mp3"}, {"type": "tts"}], "media_list[1].params.text"),
        ([{"type": "video", "url": "a.mp4"}], "media_list[0].type"),
        ([{"url": "a.mp3"}], "media_list[0].type"),
        ([{"type": "audio"}], "media_list[0].params.url"),
        ([{"type": "silence"}], "media_list[0].params.duration"),
        ([{"type": "tts", "text": "hi", "gender": "robot"}], "media_list[0].params.gender"),
    ],
)
def test_build_media_list_refuses_bad_item_naming_its_index_and_field(
    media_list: list[dict[str, Any]], field: str
) -> None:
    """A bad media item is a ValueError that names `media_list[i]…`."""
    with pytest.raises(ValueError) as info:
        build_media_list(media_list)
    assert str(info.value).startswith(f"{field}:")


def test_build_media_list_refuses_non_dict_item_with_type_error() -> None:
    """A media item that is not a dict is a TypeError naming its index."""
    with pytest.raises(TypeError, match=r"media_list\[1\]"):
        build_media_list([{"type": "audio", "url": "a.mp3"}, "b.mp3"])  # type: ignore[list-item]


def test_build_media_list_refuses_an_empty_list() -> None:
    """An empty media list is a ValueError: play must hold at least one item."""
    with pytest.raises(ValueError, match="media_list"):
        build_media_list([])


def test_build_media_list_refuses_a_single_dict_instead_of_a_list() -> None:
    """Passing one media dict instead of a list is a TypeError."""
    with pytest.raises(TypeError, match="media_list"):
        build_media_list({"type": "audio", "url": "a.mp3"})  # type: ignore[arg-type]
