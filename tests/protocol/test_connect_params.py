"""calling.connect and calling.disconnect params, phone devices, and the connect event's shape
as the 2.1.1 SDK reads it."""

from __future__ import annotations

from typing import Any

import pytest

from relaykit.errors import ProtocolError
from relaykit.protocol import calling

IDS = {"node_id": "n", "call_id": "c"}
PHONE = {"type": "phone", "params": {"from_number": "+1", "to_number": "+2"}}


def error(params: dict[str, Any]) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        calling.ConnectParams.parse({**IDS, **params})
    return info.value


def test_connect_takes_what_v2_sends_series_and_parallel_with_a_ringback():
    """signalwire 2.1.1's connect([{...}, [{...}, {...}]], ringback_list=[ringtone])."""
    params = calling.ConnectParams.parse(
        {
            **IDS,
            "devices": [[PHONE], [PHONE, {"type": "sip", "params": {"to": "sip:a@b"}}]],
            "ringback": [{"type": "ringtone", "params": {"name": "us", "duration": 10}}],
        }
    )
    assert params.call == calling.CallRef("c", "n")
    assert [[d.type for d in group] for group in params.devices] == [["phone"], ["phone", "sip"]]
    assert params.devices[1][1].field == "devices[1][1]"
    assert params.ringback == (calling.RingtoneMedia("us", 10.0),)
    assert calling.ConnectParams.parse({**IDS, "devices": [[PHONE]]}).ringback == ()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"devices": []}, "devices"),
        ({}, "devices"),
        ({"devices": [PHONE]}, "devices[0]"),
        ({"devices": [[]]}, "devices[0]"),
        ({"devices": [[{"params": {}}]]}, "devices[0][0].type"),
        ({"devices": [[{"type": "phone"}]]}, "devices[0][0].params"),
        ({"devices": [[PHONE]], "ringback": {"type": "silence"}}, "ringback"),
        ({"devices": [[PHONE]], "ringback": [{"type": "beep", "params": {}}]}, "ringback[0].type"),
        ({"devices": [[PHONE] * 101]}, "devices"),
    ],
)
def test_a_bad_connect_names_the_field(params, field):
    assert error(params).field == field


def test_disconnect_names_the_call():
    assert calling.DisconnectParams.parse(IDS).call == calling.CallRef("c", "n")
    with pytest.raises(ProtocolError) as info:
        calling.DisconnectParams.parse({"node_id": "n"})
    assert info.value.field == "call_id"


def test_phone_devices_take_v2s_params_and_default_the_timeout():
    device = calling.Device.parse(
        {"type": "phone", "params": {"to_number": "+2", "from_number": "+1", "timeout": 20}},
        "device",
    )
    assert calling.PhoneDevice.parse(device) == calling.PhoneDevice("+2", "+1", 20.0)
    bare = calling.Device.parse({"type": "phone", "params": {"to_number": "+2"}}, "device")
    assert calling.PhoneDevice.parse(bare) == calling.PhoneDevice("+2", "", 30.0)
    assert calling.PhoneDevice("+2", "+1").to_wire() == {
        "type": "phone",
        "params": {"from_number": "+1", "to_number": "+2"},
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "devices[0][1].params.to_number"),
        ({"to_number": 5}, "devices[0][1].params.to_number"),
        ({"to_number": "+2", "from_number": 1}, "devices[0][1].params.from_number"),
        ({"to_number": "+2", "timeout": 0}, "devices[0][1].params.timeout"),
        ({"to_number": "+2", "timeout": "30"}, "devices[0][1].params.timeout"),
        ({"to_number": "+2", "timeout": 601}, "devices[0][1].params.timeout"),
    ],
)
def test_a_bad_phone_device_names_the_field(params, field):
    device = calling.Device.parse({"type": "phone", "params": params}, "devices[0][1]")
    with pytest.raises(ProtocolError) as info:
        calling.PhoneDevice.parse(device)
    assert info.value.field == field


def test_connect_events_have_the_shape_v2_routes_and_reads():
    """§6.6: connect_state, call_id and node_id (v2 finds the call by id), peer with the
    other leg's call_id (v2 sets call.peer from it), failed_reason on failures."""
    peer = {"call_id": "p", "node_id": "n", "device": PHONE}
    assert calling.connect_event(
        call_id="c", node_id="n", connect_state="connected", peer=peer
    ) == {"connect_state": "connected", "call_id": "c", "node_id": "n", "peer": peer}
    assert calling.connect_event(
        call_id="c", node_id="n", connect_state="failed", failed_reason="busy"
    ) == {"connect_state": "failed", "call_id": "c", "node_id": "n", "failed_reason": "busy"}
    state = calling.call_state_event(
        call_id="b",
        node_id="n",
        call_state="created",
        from_number="+1",
        to_number="+2",
        direction="outbound",
        peer={"call_id": "c", "node_id": "n"},
    )
    assert state["peer"] == {"call_id": "c", "node_id": "n"} and "tag" not in state
