"""Tests for relaykit.protocol.session.Peer: reply matching and exactly one reply per request id."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from relaykit.protocol.jsonrpc import ErrorResponse, Request, Response, serialize
from relaykit.protocol.session import (
    Malformed,
    Peer,
    ReplyReceived,
    RequestReceived,
    StrayReply,
)


def request_frame(request_id: Any, method: str = "calling.answer", params: Any = None) -> str:
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
    )


def received_request(peer: Peer, request_id: Any, method: str = "calling.answer") -> Request:
    incoming = peer.receive(request_frame(request_id, method))
    assert isinstance(incoming, RequestReceived)
    return incoming.request


# -- our requests and their replies --------------------------------------------------------------
def test_request_builds_a_json_rpc_frame_with_a_fresh_id() -> None:
    """request returns its id and the serialised request, and waits for that id."""
    peer = Peer()
    request_id, text = peer.request("blade.ping", {})
    other_id, _ = peer.request("blade.ping", {})
    assert json.loads(text) == {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "blade.ping",
        "params": {},
    }
    assert other_id != request_id
    assert peer.pending == {request_id: "blade.ping", other_id: "blade.ping"}


def test_reply_is_matched_to_its_request_and_carries_the_method() -> None:
    """A result for a pending id comes back as ReplyReceived naming the request's method."""
    peer = Peer()
    ping_id, _ = peer.request("blade.ping", {})
    connect_id, _ = peer.request("blade.connect", {})
    incoming = peer.receive(serialize(Response(connect_id, {"sessionid": "s"})))
    assert incoming == ReplyReceived(connect_id, "blade.connect", {"sessionid": "s"}, None)
    assert peer.pending == {ping_id: "blade.ping"}


def test_error_reply_is_matched_and_carries_the_error() -> None:
    """An error for a pending id comes back as ReplyReceived with the ErrorResponse."""
    peer = Peer()
    request_id, _ = peer.request("blade.connect", {})
    error = ErrorResponse(request_id, -32002, "authentication failed")
    incoming = peer.receive(serialize(error))
    assert incoming == ReplyReceived(request_id, "blade.connect", None, error)


def test_second_reply_to_the_same_id_is_a_stray_reply() -> None:
    """Once a reply is matched, another one with that id is a StrayReply."""
    peer = Peer()
    request_id, _ = peer.request("blade.ping", {})
    assert isinstance(peer.receive(serialize(Response(request_id, {}))), ReplyReceived)
    assert peer.receive(serialize(Response(request_id, {}))) == StrayReply(request_id)


def test_reply_to_an_unknown_id_is_a_stray_reply() -> None:
    """A reply nobody asked for is a StrayReply, not an error reply."""
    assert Peer().receive(serialize(Response("invented", {}))) == StrayReply("invented")


def test_forget_turns_a_late_reply_into_a_stray_reply() -> None:
    """After forget, the reply to that request is a StrayReply."""
    peer = Peer()
    request_id, _ = peer.request("calling.answer", {})
    peer.forget(request_id)
    assert request_id not in peer.pending
    assert peer.receive(serialize(Response(request_id, {}))) == StrayReply(request_id)


def test_request_without_expect_reply_is_not_pending() -> None:
    """A request sent with expect_reply=False treats any answer as stray."""
    peer = Peer()
    request_id, _ = peer.request("blade.broadcast", {}, expect_reply=False)
    assert peer.pending == {}
    assert peer.receive(serialize(Response(request_id, {}))) == StrayReply(request_id)


# -- their requests and our replies --------------------------------------------------------------
def test_respond_answers_on_the_request_id() -> None:
    """respond serialises a result on the request's own id."""
    peer = Peer()
    request = received_request(peer, "r-1")
    reply = peer.respond(request, {"code": "200"})
    assert reply is not None
    assert json.loads(reply) == {"jsonrpc": "2.0", "id": "r-1", "result": {"code": "200"}}


def test_respond_twice_to_the_same_request_returns_none_the_second_time() -> None:
    """Exactly one reply per request id: the second respond gives None."""
    peer = Peer()
    request = received_request(peer, 41)
    assert peer.respond(request, {}) is not None
    assert peer.respond(request, {}) is None
    assert peer.respond_error(request, -32000, "late") is None


def test_respond_error_after_respond_error_returns_none() -> None:
    """An error reply also claims the id: no second reply of any kind."""
    peer = Peer()
    request = received_request(peer, "r-2")
    assert peer.respond_error(request, -32602, "bad") is not None
    assert peer.respond(request, {}) is None


def test_respond_error_always_carries_a_message() -> None:
    """An error reply built with an empty message still carries a non-empty message."""
    peer = Peer()
    request = received_request(peer, "r-3")
    reply = peer.respond_error(request, -32000, "")
    assert reply is not None
    error = json.loads(reply)["error"]
    assert error["code"] == -32000
    assert isinstance(error["message"], str) and error["message"]


def test_notification_gets_no_reply() -> None:
    """A request without an id is never answered."""
    peer = Peer()
    incoming = peer.receive('{"jsonrpc":"2.0","method":"blade.ping","params":{}}')
    assert isinstance(incoming, RequestReceived)
    assert peer.respond(incoming.request, {}) is None


def test_duplicate_request_id_while_unanswered_is_malformed_without_reply() -> None:
    """A second request reusing an unanswered id is Malformed, gets no reply, and the first still
    gets its one reply."""
    peer = Peer()
    first = received_request(peer, "dup")
    incoming = peer.receive(request_frame("dup", "calling.end"))
    assert isinstance(incoming, Malformed)
    assert incoming.reply is None
    assert incoming.error.field == "id"
    assert peer.respond(first, {}) is not None


def test_request_id_can_be_reused_after_it_was_answered() -> None:
    """Once answered, an id may be used again by a new request."""
    peer = Peer()
    peer.respond(received_request(peer, "again"), {})
    assert isinstance(peer.receive(request_frame("again")), RequestReceived)


# -- malformed frames ----------------------------------------------------------------------------
def malformed_reply(peer: Peer, text: str | bytes) -> dict[str, Any] | None:
    incoming = peer.receive(text)
    assert isinstance(incoming, Malformed)
    return None if incoming.reply is None else json.loads(incoming.reply)


def test_malformed_request_with_readable_id_is_answered_on_that_id() -> None:
    """A bad request whose id can be read gets an error reply on that id naming the field."""
    reply = malformed_reply(Peer(), '{"jsonrpc":"2.0","id":"r-9","method":"m","params":[1]}')
    assert reply is not None
    assert reply["id"] == "r-9"
    assert reply["error"]["code"] == -32602
    assert "params" in reply["error"]["message"]


def test_malformed_request_with_bad_jsonrpc_version_is_answered_on_its_id() -> None:
    """A request with the wrong jsonrpc version is answered on its id with -32600."""
    reply = malformed_reply(Peer(), '{"jsonrpc":"1.0","id":7,"method":"m","params":{}}')
    assert reply is not None
    assert (reply["id"], reply["error"]["code"]) == (7, -32600)


def test_unreadable_frame_is_answered_on_id_null() -> None:
    """Invalid JSON gets a -32700 error reply with id null."""
    reply = malformed_reply(Peer(), '{"jsonrpc":"2.0","id":"r-1","method":')
    assert reply is not None
    assert reply["id"] is None
    assert reply["error"]["code"] == -32700
    assert reply["error"]["message"]


def test_request_with_unreadable_id_is_answered_on_id_null() -> None:
    """A request whose id is not a string or integer is answered on id null."""
    reply = malformed_reply(Peer(), '{"jsonrpc":"2.0","id":[1],"method":"m","params":{}}')
    assert reply is not None
    assert (reply["id"], reply["error"]["code"]) == (None, -32600)


def test_malformed_request_reusing_an_unanswered_id_gets_no_reply() -> None:
    """A bad request on an id still in progress is not answered (that id has its one reply due)."""
    peer = Peer()
    first = received_request(peer, "busy")
    assert malformed_reply(peer, '{"jsonrpc":"2.0","id":"busy","method":5}') is None
    assert peer.respond(first, {}) is not None


def test_malformed_response_gets_no_reply() -> None:
    """A broken response (result not an object) is Malformed with nothing sent back."""
    peer = Peer()
    request_id, _ = peer.request("blade.ping", {})
    frame = json.dumps({"jsonrpc": "2.0", "id": request_id, "result": [1]})
    assert malformed_reply(peer, frame) is None


def test_response_without_id_gets_no_reply() -> None:
    """A response lacking an id is Malformed and not answered."""
    assert malformed_reply(Peer(), '{"jsonrpc":"2.0","error":{"code":1,"message":"x"}}') is None


# -- Hypothesis: receive never raises ------------------------------------------------------------
_ID = st.none() | st.text(max_size=4) | st.integers() | st.booleans() | st.floats() | st.just([])
_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
_FRAME = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.just("2.0") | _VALUE,
        "id": _ID,
        "method": st.sampled_from(["blade.ping", "", "calling.answer"]) | _VALUE,
        "params": _VALUE,
        "result": _VALUE,
        "error": _VALUE,
    },
).map(json.dumps)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), _FRAME, st.binary(max_size=20)))
def test_receive_never_raises_and_every_reply_is_a_json_rpc_error(data: str | bytes) -> None:
    """Peer().receive on arbitrary input returns an event; any reply is an error with a message."""
    incoming = Peer().receive(data)
    assert isinstance(incoming, RequestReceived | ReplyReceived | StrayReply | Malformed)
    if isinstance(incoming, Malformed) and incoming.reply is not None:
        reply = json.loads(incoming.reply)
        assert reply["jsonrpc"] == "2.0"
        assert isinstance(reply["error"]["code"], int)
        assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
