"""calling.record, send_digits, detect and tap: parsing with v2's defaults, errors naming fields,
and the events' shapes as the 2.1.1 SDK reads them."""

from __future__ import annotations

from typing import Any

import pytest

from relaykit.errors import ProtocolError
from relaykit.protocol import calling

IDS = {"node_id": "n", "call_id": "c", "control_id": "x"}
RTP = {"addr": "h", "port": 1}


def error(parse: Any, params: dict[str, Any]) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse({**IDS, **params})
    return info.value


def test_record_takes_v2s_payload_with_its_defaults():
    """What signalwire 2.1.1 sends for record() with no arguments, and with all of them."""
    bare = calling.RecordParams.parse({**IDS, "record": {"audio": {}}})
    assert bare.audio == calling.RecordAudio(
        beep=False,
        format=None,
        stereo=False,
        direction="speak",
        initial_timeout=5.0,
        end_silence_timeout=1.0,
        terminators="#*",
    )
    full = calling.RecordParams.parse(
        {
            **IDS,
            "record": {
                "audio": {
                    "beep": True,
                    "format": "WAV",
                    "stereo": True,
                    "direction": "both",
                    "initial_timeout": 0,
                    "end_silence_timeout": 2.5,
                    "terminators": "#",
                }
            },
        }
    )
    assert full.audio.to_wire("wav") == {
        "audio": {
            "beep": True,
            "format": "wav",
            "stereo": True,
            "direction": "both",
            "initial_timeout": 0.0,
            "end_silence_timeout": 2.5,
            "terminators": "#",
        }
    }


@pytest.mark.parametrize(
    ("record", "field", "words"),
    [
        ({}, "record.audio", "required"),
        ({"video": {}}, "record", "only audio"),
        ({"audio": {"format": "ogg"}}, "record.audio.format", "mp3, wav"),
        ({"audio": {"direction": "up"}}, "record.audio.direction", "speak, listen, both"),
        ({"audio": {"initial_timeout": -1}}, "record.audio.initial_timeout", "at least 0"),
        ({"audio": {"end_silence_timeout": "1"}}, "record.audio.end_silence_timeout", "number"),
        ({"audio": {"terminators": "#x"}}, "record.audio.terminators", "not DTMF"),
        ({"audio": {"beep": "yes"}}, "record.audio.beep", "true or false"),
    ],
)
def test_bad_record_params_name_the_field(record, field, words):
    exc = error(calling.RecordParams.parse, {"record": record})
    assert exc.field == field and words in str(exc)


def test_send_digits_accepts_keys_and_pauses_only():
    assert calling.SendDigitsParams.parse({**IDS, "digits": "12w*#W9"}).digits == "12w*#W9"
    for digits, words in (("", "empty"), ("12x", "'X'"), ("1" * 300, "at most 256")):
        exc = error(calling.SendDigitsParams.parse, {"digits": digits})
        assert exc.field == "digits" and words in str(exc).replace("'x'", "'X'")


def test_detect_parses_each_type_with_v2s_defaults():
    machine = calling.DetectParams.parse({**IDS, "detect": {"type": "machine", "params": {}}})
    assert machine.timeout == 30.0
    assert machine.detector == calling.MachineDetect(4.5, 1.0, 1.25, 6)
    digit = calling.DetectParams.parse(
        {**IDS, "detect": {"type": "digit", "params": {"digits": "12"}}, "timeout": 5}
    )
    assert (digit.detector, digit.timeout) == (calling.DigitDetect("12"), 5.0)
    fax = calling.DetectParams.parse({**IDS, "detect": {"type": "fax", "params": {"tone": "cng"}}})
    assert fax.detector == calling.FaxDetect("CNG")
    assert fax.detector.to_wire() == {"type": "fax", "params": {"tone": "CNG"}}


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"detect": {"type": "voice"}}, "detect.type", "unknown detect type 'voice'"),
        ({"detect": {}}, "detect.type", "digit, fax, machine"),
        ({"detect": {"type": "fax", "params": {"tone": "XYZ"}}}, "detect.params.tone", "CED"),
        (
            {"detect": {"type": "machine", "params": {"initial_timeout": -2}}},
            "detect.params.initial_timeout",
            "greater than 0",
        ),
        (
            {"detect": {"type": "machine", "params": {"machine_words_threshold": 0}}},
            "detect.params.machine_words_threshold",
            "between 1",
        ),
        ({"detect": {"type": "digit", "params": {"digits": ""}}}, "detect.params.digits", "key"),
        ({"detect": {"type": "digit"}, "timeout": -1}, "timeout", "greater than 0"),
    ],
)
def test_bad_detect_params_name_the_field(params, field, words):
    exc = error(calling.DetectParams.parse, params)
    assert exc.field == field and words in str(exc)


def test_tap_takes_v2s_rtp_and_ws_devices():
    """signalwire 2.1.1's tap payload: tap.params.direction, device.params addr/port/ptime…"""
    rtp = calling.TapParams.parse(
        {
            **IDS,
            "tap": {"type": "audio", "params": {"direction": "listen"}},
            "device": {"type": "rtp", "params": {"addr": "127.0.0.1", "port": 4000, "ptime": 30}},
        }
    )
    assert (rtp.direction, rtp.device) == (
        "listen",
        calling.TapDevice("rtp", addr="127.0.0.1", port=4000, codec="PCMU", ptime=30),
    )
    ws = calling.TapParams.parse(
        {
            **IDS,
            "tap": {"type": "audio", "params": {"direction": "both"}},
            "device": {
                "type": "ws",
                "params": {"uri": "ws://127.0.0.1:9/t", "codec": "pcma", "rate": 8000},
            },
        }
    )
    assert ws.device.to_wire() == {
        "type": "ws",
        "params": {"codec": "PCMA", "ptime": 20, "uri": "ws://127.0.0.1:9/t", "rate": 8000},
    }


@pytest.mark.parametrize(
    ("device", "field", "words"),
    [
        ({"type": "sip", "params": {}}, "device.type", "rtp, ws"),
        ({"type": "rtp", "params": {"port": 4000}}, "device.params.addr", "required"),
        ({"type": "rtp", "params": {"addr": "h"}}, "device.params.port", "required"),
        ({"type": "rtp", "params": {"addr": "h", "port": 70000}}, "device.params.port", "65535"),
        ({"type": "rtp", "params": {**RTP, "codec": "OPUS"}}, "device.params.codec", "PCMU or"),
        ({"type": "rtp", "params": {**RTP, "ptime": 25}}, "device.params.ptime", "10, 20"),
        ({"type": "ws", "params": {"uri": "http://x"}}, "device.params.uri", "ws://"),
        ({"type": "ws", "params": {"uri": "ws://x", "rate": 16000}}, "device.params.rate", "8000"),
    ],
)  # fmt: skip
def test_bad_tap_devices_name_the_field(device, field, words):
    exc = error(calling.TapParams.parse, {"tap": {"type": "audio"}, "device": device})
    assert exc.field == field and words in str(exc)


def test_events_have_the_shapes_v2_reads():
    """The 2.1.1 components read state/url/duration/size, detect.params.event, tap/device."""
    ids = {"call_id": "c", "node_id": "n", "control_id": "x"}
    record = calling.record_event(
        **ids, state="finished", record={"audio": {}}, url="http://h/r.wav", duration=1.5, size=9
    )
    assert record == {
        **ids,
        "state": "finished",
        "record": {"audio": {}},
        "url": "http://h/r.wav",
        "duration": 1.5,
        "size": 9,
    }
    assert calling.detect_event(**ids, detect_type="machine", event="HUMAN")["detect"] == {
        "type": "machine",
        "params": {"event": "HUMAN"},
    }
    tap = calling.tap_event(**ids, state="tapping", tap={"type": "audio"}, device={"type": "rtp"})
    assert (tap["state"], tap["tap"], tap["device"]) == (
        "tapping",
        {"type": "audio"},
        {"type": "rtp"},
    )
    assert calling.send_digits_event(**ids, state="finished") == {**ids, "state": "finished"}
