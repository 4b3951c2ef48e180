"""Tests for relaykit.protocol.blade: handshake, execute wrapper, broadcasts (§0.1, §1.3–§3.1)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from relaykit.errors import CommandError, ProtocolError
from relaykit.protocol import blade
from relaykit.protocol.jsonrpc import Request, parse_message, request_text

# The exact frames signalwire 2.1.1 sent (§0.1 item 1), ids filled in.
CONNECT_FRAME_2_1_1 = (
    '{"method":"blade.connect","jsonrpc":"2.0","id":"c-1","params":{"version":{"major":2,'
    '"minor":3,"revision":0},"authentication":{"project":"<project>","token":"<token>"},'
    '"agent":"Python SDK/2.1.1"}}'
)
SETUP_FRAME_2_1_1 = (
    '{"method":"blade.execute","jsonrpc":"2.0","id":"c-2","params":{"protocol":"signalwire",'
    '"method":"setup","params":{}}}'
)
SUBSCRIPTION_FRAME_2_1_1 = (
    '{"method":"blade.subscription","jsonrpc":"2.0","id":"c-3","params":{"command":"add",'
    '"protocol":"signalwire_abc","channels":["notifications"]}}'
)
RECEIVE_FRAME_2_1_1 = (
    '{"method":"blade.execute","jsonrpc":"2.0","id":"c-5","params":{"protocol":"signalwire_abc",'
    '"method":"signalwire.receive","params":{"contexts":["office"]}}}'
)


def request_params(text: str) -> dict[str, Any]:
    message = parse_message(text)
    assert isinstance(message, Request)
    return message.params


def connect_params(**changes: Any) -> dict[str, Any]:
    params = copy.deepcopy(request_params(CONNECT_FRAME_2_1_1))
    params.update(changes)
    return params


# -- blade.connect -------------------------------------------------------------------------------
def test_connect_params_accepts_the_exact_signalwire_2_1_1_frame() -> None:
    """The §0.1 blade.connect frame parses into project, token and agent."""
    parsed = blade.ConnectParams.parse(request_params(CONNECT_FRAME_2_1_1))
    assert parsed == blade.ConnectParams("<project>", "<token>", "Python SDK/2.1.1", None)


def test_connect_params_keeps_sessionid_for_session_restore() -> None:
    """The §2.1 sessionid variant is accepted and its sessionid kept."""
    parsed = blade.ConnectParams.parse(connect_params(sessionid="87cf6699-7a89"))
    assert parsed.sessionid == "87cf6699-7a89"


def test_connect_params_accepts_node_v2_version_2_1_0_without_agent() -> None:
    """[node2] sends version 2.1.0 and may omit agent; the agent then reads as ''."""
    params = connect_params(version={"major": 2, "minor": 1, "revision": 0})
    del params["agent"]
    assert blade.ConnectParams.parse(params) == blade.ConnectParams(
        "<project>", "<token>", "", None
    )


@pytest.mark.parametrize(
    ("drop", "field"),
    [
        (("authentication",), "params.authentication"),
        (("authentication", "project"), "params.authentication.project"),
        (("authentication", "token"), "params.authentication.token"),
    ],
)
def test_connect_params_refuses_missing_credentials_naming_the_field_path(
    drop: tuple[str, ...], field: str
) -> None:
    """Missing authentication, project or token is refused with its dotted path."""
    params = connect_params()
    target = params
    for key in drop[:-1]:
        target = target[key]
    del target[drop[-1]]
    with pytest.raises(ProtocolError) as info:
        blade.ConnectParams.parse(params)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("authentication", "field"),
    [
        ({"project": "", "token": "t"}, "params.authentication.project"),
        ({"project": 5, "token": "t"}, "params.authentication.project"),
        ({"project": "p", "token": 5}, "params.authentication.token"),
        ({"project": "p", "jwt_token": "eyJ"}, "params.authentication.jwt_token"),
        ("p:t", "params.authentication"),
    ],
)
def test_connect_params_refuses_bad_credentials_naming_the_field_path(
    authentication: Any, field: str
) -> None:
    """Empty or non-string credentials, JWT-only auth and a non-object are refused by path."""
    with pytest.raises(ProtocolError) as info:
        blade.ConnectParams.parse(connect_params(authentication=authentication))
    assert info.value.field == field


@pytest.mark.parametrize(
    ("version", "field"),
    [
        ({"major": 3, "minor": 0, "revision": 0}, "params.version.major"),
        ({"major": "2", "minor": 3, "revision": 0}, "params.version.major"),
        ({"minor": 3, "revision": 0}, "params.version.major"),
        ("2.3.0", "params.version"),
    ],
)
def test_connect_params_refuses_other_major_versions(version: Any, field: str) -> None:
    """Major version 3 (or an unreadable version) is refused naming the version field."""
    with pytest.raises(ProtocolError) as info:
        blade.ConnectParams.parse(connect_params(version=version))
    assert info.value.field == field


def test_connect_params_builder_matches_section_2_1() -> None:
    """connect_params builds the §2.1 params: version 2.3.0, project/token, agent."""
    assert blade.connect_params("<project>", "<token>", agent="Python SDK/2.1.1") == (
        request_params(CONNECT_FRAME_2_1_1)
    )


def test_connect_result_has_every_field_of_the_section_2_1_fixture() -> None:
    """connect_result equals the §2.1 success fixture, field for field."""
    fixture = json.loads(
        '{"session_restored":false,"sessionid":"87cf6699-7a89-4491-b732-b51144155d46",'
        '"nodeid":"node-uuid","master_nodeid":"00000000-0000-0000-0000-000000000000",'
        '"authorization":{"project":"proj","expires_at":null,"scopes":["calling"],'
        '"signature":"abc123"},"routes":[],"protocols":[],"subscriptions":[],"authorities":[],'
        '"authorizations":[],"accesses":[],"protocols_uncertified":["signalwire"]}'
    )
    built = blade.connect_result(
        sessionid="87cf6699-7a89-4491-b732-b51144155d46",
        nodeid="node-uuid",
        project="proj",
        signature="abc123",
        restored=False,
    )
    assert built == fixture


# -- blade.execute / blade.subscription ----------------------------------------------------------
def test_execute_params_parses_the_setup_frame() -> None:
    """The §0.1 setup execute parses to protocol signalwire, method setup, empty params."""
    parsed = blade.ExecuteParams.parse(request_params(SETUP_FRAME_2_1_1))
    assert parsed == blade.ExecuteParams(blade.SETUP_PROTOCOL, "setup", {})


def test_execute_params_parses_the_receive_frame() -> None:
    """The §0.1 signalwire.receive execute keeps its inner params."""
    parsed = blade.ExecuteParams.parse(request_params(RECEIVE_FRAME_2_1_1))
    assert parsed == blade.ExecuteParams(
        "signalwire_abc", "signalwire.receive", {"contexts": ["office"]}
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"method": "setup", "params": {}}, "params.protocol"),
        ({"protocol": "signalwire", "params": {}}, "params.method"),
        ({"protocol": "signalwire", "method": "setup", "params": [1]}, "params.params"),
    ],
)
def test_execute_params_refuses_bad_fields_naming_them(params: dict[str, Any], field: str) -> None:
    """A missing protocol or method, or non-object inner params, is refused by path."""
    with pytest.raises(ProtocolError) as info:
        blade.ExecuteParams.parse(params)
    assert info.value.field == field


def test_execute_params_builder_wraps_the_command_as_section_1_3() -> None:
    """execute_params gives {protocol, method, params}, the §1.3 wrapper."""
    assert blade.execute_params("signalwire_abc", "calling.answer", {"call_id": "c"}) == {
        "protocol": "signalwire_abc",
        "method": "calling.answer",
        "params": {"call_id": "c"},
    }


def test_execute_result_nests_the_relay_result_with_a_string_code() -> None:
    """execute_result + relay_result give the §1.3 nested success response, code as a string."""
    built = blade.execute_result(
        blade.relay_result(200, "Playing", call_id="call-id"),
        requester_nodeid="rq",
        responder_nodeid="rs",
    )
    assert built == {
        "requester_nodeid": "rq",
        "responder_nodeid": "rs",
        "result": {"code": "200", "message": "Playing", "call_id": "call-id"},
    }


def test_subscription_params_parses_the_signalwire_2_1_1_frame() -> None:
    """The §0.1 blade.subscription parses to add / protocol / (notifications,)."""
    parsed = blade.SubscriptionParams.parse(request_params(SUBSCRIPTION_FRAME_2_1_1))
    assert parsed == blade.SubscriptionParams("add", "signalwire_abc", ("notifications",))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"command": "list"}, "params.command"),
        ({"channels": "notifications"}, "params.channels"),
        ({"channels": [""]}, "params.channels"),
        ({"protocol": ""}, "params.protocol"),
    ],
)
def test_subscription_params_refuses_bad_fields_naming_them(
    change: dict[str, Any], field: str
) -> None:
    """An unknown command, non-list channels or empty protocol is refused by path."""
    params = {**request_params(SUBSCRIPTION_FRAME_2_1_1), **change}
    with pytest.raises(ProtocolError) as info:
        blade.SubscriptionParams.parse(params)
    assert info.value.field == field


# -- §1.4 classification -------------------------------------------------------------------------
def test_unwrap_returns_the_inner_result_when_code_is_200() -> None:
    """Inner code "200" succeeds and yields the inner RELAY result."""
    outer = {
        "requester_nodeid": "rq",
        "responder_nodeid": "rs",
        "result": {"code": "200", "message": "Playing", "call_id": "call-id"},
    }
    assert blade.unwrap_execute_result(outer) == {
        "code": "200",
        "message": "Playing",
        "call_id": "call-id",
    }


@pytest.mark.parametrize("code", ["400", "404", "500", "201"])
def test_unwrap_raises_command_error_with_message_and_code_for_other_codes(code: str) -> None:
    """Any inner code but "200" fails with a CommandError carrying its message and code."""
    outer = {"requester_nodeid": "rq", "result": {"code": code, "message": "Call not found"}}
    with pytest.raises(CommandError) as info:
        blade.unwrap_execute_result(outer)
    assert info.value.message == "Call not found"
    assert info.value.code == code


def test_unwrap_failure_without_message_still_raises_a_command_error_naming_the_code() -> None:
    """A non-"200" result lacking message still fails, with a message naming the code."""
    with pytest.raises(CommandError) as info:
        blade.unwrap_execute_result({"result": {"code": "402"}})
    assert "402" in info.value.message


def test_unwrap_returns_the_inner_result_when_it_has_no_code() -> None:
    """A setup reply (inner result without code) succeeds with that inner result."""
    outer = {"requester_nodeid": "rq", "result": {"protocol": "signalwire_abc"}}
    assert blade.unwrap_execute_result(outer) == {"protocol": "signalwire_abc"}


@pytest.mark.parametrize(
    "outer",
    [
        {},
        {"protocol": "signalwire_abc", "command": "add", "subscribe_channels": ["notifications"]},
        {"sessionid": "s", "authorization": {"signature": "x"}},
    ],
)
def test_unwrap_returns_the_outer_result_when_there_is_no_inner_result(
    outer: dict[str, Any],
) -> None:
    """Ping, subscription and connect replies (no inner result) succeed with the outer result."""
    assert blade.unwrap_execute_result(outer) == outer


# -- §3.1 broadcasts -----------------------------------------------------------------------------
SECTION_3_1_PARAMS = {
    "broadcaster_nodeid": "b-node",
    "protocol": "signalwire_abc",
    "channel": "notifications",
    "event": "queuing.relay.events",
    "params": {
        "event_type": "calling.call.receive",
        "event_channel": "signalwire_abc",
        "timestamp": 1569514183.0130031,
        "project_id": "proj",
        "space_id": "space",
        "context": "office",
        "params": {"call_state": "created", "call_id": "call-id", "node_id": "node-id"},
    },
}


def test_parse_broadcast_of_section_3_1_copies_event_type_into_params() -> None:
    """The §3.1 example unwraps with event_type injected into the event params."""
    original = copy.deepcopy(SECTION_3_1_PARAMS)
    parsed = blade.parse_broadcast(SECTION_3_1_PARAMS)
    assert parsed == blade.Broadcast(
        protocol="signalwire_abc",
        event="queuing.relay.events",
        event_type="calling.call.receive",
        context="office",
        params={
            "call_state": "created",
            "call_id": "call-id",
            "node_id": "node-id",
            "event_type": "calling.call.receive",
        },
    )
    assert original == SECTION_3_1_PARAMS


def test_parse_broadcast_refuses_relay_event_without_event_type() -> None:
    """A queuing.relay.events broadcast without event_type is refused naming it."""
    params = copy.deepcopy(SECTION_3_1_PARAMS)
    del params["params"]["event_type"]
    with pytest.raises(ProtocolError) as info:
        blade.parse_broadcast(params)
    assert info.value.field == "params.params.event_type"


@pytest.mark.parametrize(
    ("drop", "field"), [("protocol", "params.protocol"), ("event", "params.event")]
)
def test_parse_broadcast_refuses_missing_routing_fields(drop: str, field: str) -> None:
    """A broadcast without protocol or event is refused naming the field."""
    params = copy.deepcopy(SECTION_3_1_PARAMS)
    del params[drop]
    with pytest.raises(ProtocolError) as info:
        blade.parse_broadcast(params)
    assert info.value.field == field


def test_broadcast_params_builds_the_section_3_1_shape_exactly() -> None:
    """broadcast_params gives exactly the §3.1 blade.broadcast params."""
    built = blade.broadcast_params(
        protocol="signalwire_abc",
        event_type="calling.call.receive",
        params={"call_state": "created", "call_id": "call-id", "node_id": "node-id"},
        broadcaster_nodeid="b-node",
        project_id="proj",
        space_id="space",
        context="office",
        timestamp=1569514183.0130031,
    )
    assert built == SECTION_3_1_PARAMS


def test_broadcast_params_round_trips_through_parse_broadcast() -> None:
    """What the server builds, the client parses back to the same event."""
    built = blade.broadcast_params(
        protocol="p",
        event_type="calling.call.collect",
        params={"control_id": "c"},
        broadcaster_nodeid="b",
        project_id="proj",
        space_id="s",
    )
    parsed = blade.parse_broadcast(built)
    assert (parsed.protocol, parsed.event_type, parsed.context) == (
        "p",
        "calling.call.collect",
        None,
    )
    assert parsed.params == {"control_id": "c", "event_type": "calling.call.collect"}


@pytest.mark.parametrize(
    "identity",
    [
        {"protocol": "signalwire_abc_1f", "broadcaster_nodeid": "node-1", "project_id": "p"},
        {"protocol": "signalwire_é", "broadcaster_nodeid": 'n"1', "project_id": "p\x7f"},
    ],
)
@pytest.mark.parametrize(
    ("params", "context", "timestamp"),
    [
        ({"call_id": "c", "control_id": "d", "state": "playing"}, None, 1765146000.123456),
        ({"result": {"type": "digit", "params": {"digits": "1"}}}, "office", 0.1),
        ({"text": "é"}, None, 1e-7),  # json writes 1e-07 where orjson writes 1e-7
        ({"n": [1, 2.5, None, {"a": True}], "big": 2**70}, 'q"uote', 1.5e16),
        ({}, "bureau é", 3.0),
    ],
)
def test_broadcast_envelope_frames_are_the_general_frames_character_for_character(
    identity, params, context, timestamp
):
    """The per-session envelope writes exactly what broadcast_params + request_text write."""
    envelope = blade.BroadcastEnvelope(space_id="space", **identity)
    expected = request_text(
        blade.BROADCAST,
        blade.broadcast_params(
            event_type="calling.call.collect",
            params=params,
            context=context,
            timestamp=timestamp,
            space_id="space",
            **identity,
        ),
        "id-1",
    )
    frame = envelope.frame(
        "id-1", "calling.call.collect", params, context=context, timestamp=timestamp
    )
    assert frame == expected
    assert json.loads(frame)["params"]["params"]["params"] == params
