"""Tests for relaykit.protocol.jsonrpc: the JSON-RPC 2.0 envelope (§1.2)."""

from __future__ import annotations

import json

import pytest

from relaykit.errors import ErrorCode, ProtocolError
from relaykit.protocol.jsonrpc import (
    MAX_DEPTH,
    ErrorResponse,
    Request,
    Response,
    parse_message,
    serialize,
)


def nested(levels: int) -> dict:
    """`levels` dicts nested inside each other, the innermost holding one number."""
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


# -- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "message",
    [
        Request("blade.ping", {}, "4f1c-req"),
        Request("blade.execute", {"protocol": "signalwire", "method": "setup", "params": {}}, 7),
        Response("4f1c-req", {"requester_nodeid": "r", "result": {"code": "200"}}),
        Response(12, {}),
        ErrorResponse("4f1c-req", -32002, "error description"),
        ErrorResponse("e1", -32601, "msg", {"requester_nodeid": "rq", "responder_nodeid": "rs"}),
    ],
)
def test_serialize_then_parse_gives_the_same_message(
    message: Request | Response | ErrorResponse,
) -> None:
    """Requests, responses and errors survive serialize → parse_message unchanged."""
    assert parse_message(serialize(message)) == message


def test_serialize_is_compact_like_the_v2_sdk() -> None:
    """serialize uses `,` and `:` separators with no spaces."""
    text = serialize(Request("blade.ping", {"a": [1, 2]}, "x"))
    assert text == '{"jsonrpc":"2.0","id":"x","method":"blade.ping","params":{"a":[1,2]}}'


def test_parse_reads_the_section_1_2_error_fixture_with_routing_fields() -> None:
    """A blade.execute error keeps its code and message; other keys go to data."""
    text = (
        '{"jsonrpc":"2.0","id":"abc","error":{"requester_nodeid":"rq","responder_nodeid":"rs",'
        '"code":-32601,"message":"msg"}}'
    )
    assert parse_message(text) == ErrorResponse(
        "abc", -32601, "msg", {"requester_nodeid": "rq", "responder_nodeid": "rs"}
    )


def test_error_reply_always_carries_code_and_message_that_data_cannot_override() -> None:
    """Every serialised error has an int code and the message; data never replaces them."""
    reply = ErrorResponse("1", -32601, "no such method", {"code": "x", "message": None, "k": 1})
    error = json.loads(serialize(reply))["error"]
    assert error == {"k": 1, "code": -32601, "message": "no such method"}


def test_parsed_error_without_message_still_gets_a_message() -> None:
    """An incoming error lacking `message` (which crashes v2) is given a text message."""
    parsed = parse_message('{"jsonrpc":"2.0","id":"1","error":{"code":-32002}}')
    assert isinstance(parsed, ErrorResponse)
    assert parsed.code == -32002
    assert isinstance(parsed.message, str) and parsed.message


def test_error_response_from_exception_keeps_code_and_field_in_message() -> None:
    """from_exception uses the ProtocolError's code and its `field: reason` text."""
    exc = ProtocolError("must be an object", field="params", code=ErrorCode.INVALID_PARAMS)
    reply = json.loads(serialize(ErrorResponse.from_exception("r1", exc)))
    assert reply == {
        "jsonrpc": "2.0",
        "id": "r1",
        "error": {"code": -32602, "message": "params: must be an object"},
    }


def test_request_without_params_or_with_null_params_gets_empty_params() -> None:
    """Missing or null params read as {}."""
    assert parse_message('{"jsonrpc":"2.0","id":"1","method":"m"}') == Request("m", {}, "1")
    assert parse_message('{"jsonrpc":"2.0","id":"1","method":"m","params":null}') == Request(
        "m", {}, "1"
    )


# -- refusals ------------------------------------------------------------------------------------
def refusal(data: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_message(data)
    return info.value


@pytest.mark.parametrize("text", ["", "{", "not json", "{'jsonrpc': '2.0'}", '{"a":1,}'])
def test_invalid_json_is_a_parse_error(text: str) -> None:
    """Text that is not JSON is refused with code -32700."""
    assert refusal(text).code == -32700


@pytest.mark.parametrize("text", ["[]", "[{}]", "1", '"2.0"', "null", "true"])
def test_json_that_is_not_an_object_is_an_invalid_request(text: str) -> None:
    """A frame whose JSON is not an object is refused with code -32600."""
    assert refusal(text).code == -32600


@pytest.mark.parametrize(
    "text",
    [
        '{"id":"1","method":"m","params":{}}',
        '{"jsonrpc":"1.0","id":"1","method":"m","params":{}}',
        '{"jsonrpc":2.0,"id":"1","method":"m","params":{}}',
    ],
)
def test_missing_or_wrong_jsonrpc_version_is_refused_naming_jsonrpc(text: str) -> None:
    """A frame without `"jsonrpc": "2.0"` is -32600 naming the jsonrpc field."""
    exc = refusal(text)
    assert (exc.code, exc.field) == (-32600, "jsonrpc")


@pytest.mark.parametrize("bad_id", ["1.5", "true", "false", "[1]", '{"n":1}'])
def test_id_that_is_not_string_or_integer_is_refused_naming_id(bad_id: str) -> None:
    """An id that is a float, bool, list or object is -32600 naming `id`."""
    exc = refusal(f'{{"jsonrpc":"2.0","id":{bad_id},"method":"m","params":{{}}}}')
    assert (exc.code, exc.field) == (-32600, "id")


def test_binary_frame_is_an_invalid_request() -> None:
    """A binary frame is refused with -32600 even when it holds valid JSON."""
    assert refusal(b'{"jsonrpc":"2.0","id":"1","method":"m","params":{}}').code == -32600


def test_nesting_deeper_than_max_depth_is_an_invalid_request() -> None:
    """A message nested beyond MAX_DEPTH is refused with -32600."""
    frame = {"jsonrpc": "2.0", "id": "1", "method": "m", "params": nested(MAX_DEPTH + 1)}
    assert refusal(json.dumps(frame)).code == -32600


def test_nesting_well_within_max_depth_is_accepted() -> None:
    """A message comfortably inside MAX_DEPTH parses."""
    params = nested(MAX_DEPTH - 4)
    assert parse_message(json.dumps({"jsonrpc": "2.0", "id": "1", "method": "m", "params": params}))


@pytest.mark.parametrize("params", ["[1,2]", '"x"', "5", "true"])
def test_params_that_are_not_an_object_are_refused_naming_params(params: str) -> None:
    """Request params that are not an object are refused naming `params`."""
    exc = refusal(f'{{"jsonrpc":"2.0","id":"1","method":"m","params":{params}}}')
    assert exc.field == "params"
    assert exc.code == -32602


@pytest.mark.parametrize("method", ['""', "5", "null", '["m"]'])
def test_method_that_is_not_a_non_empty_string_is_refused_naming_method(method: str) -> None:
    """A method that is empty or not a string is -32600 naming `method`."""
    exc = refusal(f'{{"jsonrpc":"2.0","id":"1","method":{method},"params":{{}}}}')
    assert (exc.code, exc.field) == (-32600, "method")


def test_response_without_id_is_refused_naming_id() -> None:
    """A result or error with no id cannot be matched and is refused naming `id`."""
    exc = refusal('{"jsonrpc":"2.0","result":{}}')
    assert (exc.code, exc.field) == (-32600, "id")


@pytest.mark.parametrize(("key", "value"), [("result", "[1]"), ("result", "5"), ("error", '"x"')])
def test_result_or_error_that_is_not_an_object_is_refused_naming_it(key: str, value: str) -> None:
    """A non-object result or error is -32600 naming that field."""
    exc = refusal(f'{{"jsonrpc":"2.0","id":"1","{key}":{value}}}')
    assert (exc.code, exc.field) == (-32600, key)


def test_object_without_method_result_or_error_is_an_invalid_request() -> None:
    """A frame that is neither request nor response is refused with -32600."""
    assert refusal('{"jsonrpc":"2.0","id":"1"}').code == -32600


def test_integer_too_long_to_convert_is_a_protocol_error() -> None:
    """An integer literal beyond Python's int-conversion limit is refused as a ProtocolError."""
    text = '{"jsonrpc":"2.0","id":"1","method":"m","params":{"n":' + "9" * 5000 + "}}"
    assert refusal(text).code in (-32700, -32600)
