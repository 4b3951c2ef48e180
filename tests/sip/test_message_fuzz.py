"""SIP parsing: well-formed messages, and malformed ones that must never crash anything."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from relaykit.sip.core import MAX_COPIED_BYTES
from relaykit.sip.events import (
    AnswerAcked,
    CallAnswered,
    CallEnded,
    CallFailed,
    CallProgress,
    IncomingCall,
    KeyPressed,
    Send,
)
from relaykit.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    parse_message,
    parse_name_addr,
    parse_uri,
)
from tests.helpers import WAIT
from tests.sip.core_peer import PHONE, Harness, response_to
from tests.sip.core_peer import SDP as SDP_BYTES
from tests.sip.core_peer import request as core_request
from tests.sip.test_user_agent import SDP, Phone

INVITE = (
    "INVITE sip:+15559870000@127.0.0.1:5060;user=phone SIP/2.0\r\n"
    "v: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1;rport, "
    "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-0\r\n"
    'f: "Alice, A." <sip:alice@127.0.0.1>;tag=a1\r\n'
    "t: <sip:+15559870000@127.0.0.1>\r\n"
    "i: abc@127.0.0.1\r\n"
    "CSeq: 7 INVITE\r\n"
    "m: <sip:alice@127.0.0.1:5061>\r\n"
    "Subject: a folded\r\n  header\r\n"
    "c: application/sdp\r\n"
    f"l: {len(SDP)}\r\n\r\n{SDP}"
).encode()


def test_compact_forms_folding_and_comma_lists_are_understood():
    message = parse_message(INVITE)
    assert isinstance(message, SipRequest)
    assert (message.method, message.uri, message.call_id, message.cseq) == (
        "INVITE",
        "sip:+15559870000@127.0.0.1:5060;user=phone",
        "abc@127.0.0.1",
        (7, "INVITE"),
    )
    assert len(message.get_all("Via")) == 2 and message.branch == "z9hG4bK-1"
    assert message.get("Subject") == "a folded header"
    assert parse_name_addr(message.get("From") or "").tag == "a1"
    assert message.body == SDP.encode()


def test_body_is_cut_at_content_length():
    data = INVITE + b"trailing junk"
    assert parse_message(data).body == SDP.encode()


def test_response_is_parsed():
    data = INVITE.replace(
        b"INVITE sip:+15559870000@127.0.0.1:5060;user=phone SIP/2.0", b"SIP/2.0 180 Ringing"
    )
    message = parse_message(data)
    assert isinstance(message, SipResponse) and (message.status, message.reason) == (180, "Ringing")


def test_serialized_request_parses_back():
    message = parse_message(INVITE)
    again = parse_message(bytes(message))
    assert again.headers == message.headers and again.body == message.body


def test_uris_are_parsed():
    uri = parse_uri("sip:+1555@[::1]:5070;transport=udp?subject=x")
    assert (uri.user, uri.host, uri.port, uri.params) == (
        "+1555",
        "::1",
        5070,
        {"transport": "udp"},
    )
    assert parse_uri("sip:example.com").address() == ("example.com", 5060)
    for bad in ("http://x", "sip:", "sip:a@b:99999", "sip:a@b:x"):
        with pytest.raises(SipParseError):
            parse_uri(bad)


def test_errors_after_the_core_headers_carry_the_request_for_a_400():
    with pytest.raises(SipParseError) as info:
        parse_message(INVITE.replace(b"CSeq: 7 INVITE", b"CSeq: 7 BYE"))
    assert info.value.request is not None and info.value.request.method == "INVITE"


@pytest.mark.parametrize(
    "header", [b"i: abc@127.0.0.1\r\n", b"t: <sip:+15559870000@127.0.0.1>\r\n"]
)
def test_a_missing_call_id_or_to_still_carries_the_request_for_a_400(header):
    """A client matches a response by its top Via and CSeq: without Call-ID a 400 still works."""
    with pytest.raises(SipParseError, match="missing") as info:
        parse_message(INVITE.replace(header, b""))
    assert info.value.request is not None and info.value.request.method == "INVITE"


@pytest.mark.parametrize("header", [b"CSeq: 7 INVITE\r\n", b"v: SIP/2.0/UDP 127.0.0.1:5061"])
def test_without_via_or_cseq_no_response_can_be_matched(header):
    data = INVITE
    if header.startswith(b"v:"):  # drop the whole (folded) Via line
        start = data.index(b"v: ")
        data = data[:start] + data[data.index(b"\r\n", start) + 2 :]
    else:
        data = data.replace(header, b"")
    with pytest.raises(SipParseError, match="missing") as info:
        parse_message(data)
    assert info.value.request is None


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_only_ever_raise_sip_parse_error(data):
    with contextlib.suppress(SipParseError):
        parse_message(data)


@st.composite
def mutated(draw):
    """The INVITE with a few random byte edits: deletions, insertions, substitutions."""
    data = bytearray(INVITE)
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["delete", "insert", "replace", "cut"]))
        byte = draw(st.sampled_from([0, 9, 10, 13, 32, 44, 58, 59, 60, 62, 61, 34, 255, 65]))
        if action == "delete":
            del data[pos]
        elif action == "insert":
            data.insert(pos, byte)
        elif action == "replace":
            data[pos] = byte
        else:
            del data[pos:]
        if not data:
            break
    return bytes(data)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_only_ever_raise_sip_parse_error(data):
    try:
        message = parse_message(data)
    except SipParseError:
        return
    bytes(message)  # whatever parsed must serialize


@pytest.mark.asyncio
async def test_live_agent_survives_thousands_of_mutated_datagrams(server, caplog):
    """A seeded mutation loop against the running server: no exception escapes, answerable
    malformed requests get 400, and a valid OPTIONS is still answered afterwards."""
    caplog.set_level(logging.ERROR, logger="relaykit")
    rng = random.Random(20261126)
    phone = Phone(server.sip.port)
    templates = [
        phone.request("OPTIONS"),
        phone.request("BYE", to_tag="x"),
        phone.request("INVITE", uri="sip:+19990000000@127.0.0.1", body=SDP),  # unrouted: 404
        phone.request("CANCEL"),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx\r\n"
        b"From: <sip:a@b>;tag=1\r\n"
        b"To: <sip:b@c>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    ]
    try:
        for i in range(3000):
            data = bytearray(rng.choice(templates))
            for _ in range(rng.randint(1, 6)):
                pos = rng.randrange(len(data))
                op = rng.random()
                if op < 0.3:
                    del data[pos]
                elif op < 0.6:
                    data.insert(pos, rng.choice(b'\x00\t\r\n :;,<>="\xff@'))
                elif op < 0.9:
                    data[pos] = rng.randrange(256)
                else:
                    del data[pos:]
                if not data:
                    data = bytearray(b"x")
            phone.send(bytes(data))
            if i % 20 == 0:
                await asyncio.sleep(0.002)  # let the server read (no socket-buffer drops)
        await asyncio.sleep(0.2)
        ua = server.sip.ua
        assert ua.bad_requests > 100  # many mutants were answerable: 400 for each
        phone.send(phone.request("OPTIONS", call_id="after-the-storm"))
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(WAIT):
            while True:
                data = await loop.sock_recv(phone.sock, 65535)
                if b"after-the-storm" in data and data.startswith(b"SIP/2.0 200"):
                    break
    finally:
        phone.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- the sans-I/O core, fed directly ----------------------------------------------------------
# Invariant: whatever arrives, the core returns outputs (never raises); everything it sends is
# well-formed SIP — or the keep-alive pong, or a 400 copying what is wrong with the request —
# and no larger than the bounded copy of the request plus our own headers and SDP.
EVENTS = (IncomingCall, CallProgress, CallAnswered, CallFailed, AnswerAcked, CallEnded, KeyPressed)
ANSWER_SDP = b"v=0\r\ns=answer\r\n"
SEND_BOUND = MAX_COPIED_BYTES + 1024 + len(ANSWER_SDP)


def check_outputs(outputs: list) -> None:
    for output in outputs:
        if not isinstance(output, Send):
            assert isinstance(output, EVENTS), output
            continue
        assert len(output.data) <= SEND_BOUND
        if output.data == b"\r\n":
            continue
        try:
            parse_message(output.data)
        except SipParseError:  # a 400 copies the bad or missing header it complains about
            assert output.data.startswith(b"SIP/2.0 400 Bad Request ("), output.data


def live_core() -> tuple[Harness, list[bytes]]:
    """A core with a ringing call, an answered call and a ringing outbound call; and
    templates of what a phone could send it (valid, before mutation)."""
    h = Harness()
    ringing = h.feed(core_request("INVITE", body=SDP_BYTES)).events[0].call
    h.core.ring(ringing, 0.0)
    batch = h.feed(core_request("INVITE", call_id="call-2", branch="z9hG4bK-2", body=SDP_BYTES))
    up = batch.events[0].call
    h.core.answer(up, ANSWER_SDP, 0.0)
    key = h.core.invite("sip:far@127.0.0.1:40000", "sip:me@x", SDP_BYTES, PHONE)
    invite = parse_message(h.core.start_call(key, 0.0)[0].data)
    h.feed(response_to(invite, 180))
    templates = [
        core_request("INVITE", call_id="call-9", branch="z9hG4bK-9", body=SDP_BYTES),
        core_request("INVITE", to_tag=up.local_tag, call_id="call-2", branch="z9hG4bK-r", cseq=2),
        core_request("ACK", to_tag=up.local_tag, call_id="call-2", branch="z9hG4bK-a"),
        core_request("CANCEL"),
        core_request("BYE", to_tag=up.local_tag, call_id="call-2", branch="z9hG4bK-b", cseq=3),
        core_request(
            "INFO", to_tag=up.local_tag, call_id="call-2", branch="z9hG4bK-i", cseq=4,
            body=b"Signal=5\r\n",
        ).replace(b"application/sdp", b"application/dtmf-relay"),
        core_request("OPTIONS", branch="z9hG4bK-o"),
        response_to(invite, 200, body=SDP_BYTES),
        response_to(invite, 486),
    ]  # fmt: skip
    return h, templates


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A few random byte edits (the live-agent test's mutations), reproducible from ``rng``."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if not out:
            break
        pos = rng.randrange(len(out))
        op = rng.random()
        if op < 0.3:
            del out[pos]
        elif op < 0.6:
            out.insert(pos, rng.choice(b'\x00\t\r\n :;,<>="\xff@'))
        elif op < 0.9:
            out[pos] = rng.randrange(256)
        else:
            del out[pos:]
    return bytes(out)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_into_the_core_never_raise(data):
    h = Harness()
    check_outputs(h.core.receive(data, PHONE, 0.0))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32))
def test_mutated_messages_into_a_core_with_live_calls_never_raise(seed):
    rng = random.Random(seed)
    h, templates = live_core()
    for _ in range(rng.randint(1, 4)):
        message = mutate(rng.choice(templates), rng)
        check_outputs(h.core.receive(message, PHONE, h.now))
        h.now += rng.uniform(0, 3)
        check_outputs(h.core.handle_timers(h.now))


class CoreMachine(RuleBasedStateMachine):
    """Messages (valid and mutated), time and user actions, interleaved at random: no input
    order reaches a transaction state without a transition (TransactionError) or raises."""

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(max_transactions=20)
        self.calls: list = []
        self.sent: list = []  # requests the core sent (to answer them)

    def run(self, outputs: list) -> None:
        check_outputs(outputs)
        for output in outputs:
            if isinstance(output, IncomingCall):
                self.calls.append(output.call)
            elif isinstance(output, Send) and not output.data.startswith(b"SIP/2.0"):
                with contextlib.suppress(SipParseError):
                    self.sent.append(parse_message(output.data))

    @rule(
        method=st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "INFO", "OPTIONS", "PRACK"]),
        call=st.integers(0, 5),
        branch=st.integers(0, 3),
        cseq=st.integers(1, 4),
        in_dialog=st.booleans(),
        data=st.data(),
    )
    def phone_sends(self, method, call, branch, cseq, in_dialog, data):
        to_tag = ""
        call_id = f"call-{call}"
        if in_dialog and self.calls:
            key = self.calls[call % len(self.calls)]
            to_tag, call_id = key.local_tag, key.call_id
        message = core_request(
            method, call_id=call_id, to_tag=to_tag, branch=f"z9hG4bK-{branch}", cseq=cseq,
            body=SDP_BYTES if method == "INVITE" else b"",
        )  # fmt: skip
        if data.draw(st.booleans()):
            message = mutate(message, random.Random(data.draw(st.integers(0, 2**32))))
        self.run(self.h.feed(message).outputs)

    @rule(status=st.sampled_from([100, 180, 183, 200, 202, 302, 486, 487, 503]), n=st.integers())
    def far_end_responds(self, status, n):
        if self.sent:
            sent = self.sent[n % len(self.sent)]
            self.run(self.h.feed(response_to(sent, status, body=SDP_BYTES)).outputs)

    @rule(action=st.sampled_from(["ring", "answer", "reject", "hangup", "cancel"]), n=st.integers())
    def app_acts(self, action, n):
        if not self.calls:
            return
        key, now = self.calls[n % len(self.calls)], self.h.now
        core = self.h.core
        outputs = {
            "ring": lambda: core.ring(key, now),
            "answer": lambda: core.answer(key, ANSWER_SDP, now),
            "reject": lambda: core.reject(key, 486, now),
            "hangup": lambda: core.hangup(key, now),
            "cancel": lambda: core.cancel(key, now),
        }[action]()
        self.run(outputs)

    @rule()
    def app_calls_out(self):
        key = self.h.core.invite("sip:far@127.0.0.1:40000", "sip:me@x", SDP_BYTES, PHONE)
        self.calls.append(key)
        self.run(self.h.core.start_call(key, self.h.now))

    @rule(seconds=st.floats(0, 40))
    def time_passes(self, seconds):
        for batch in self.h.advance(self.h.now + seconds):
            self.run(batch.outputs)

    @invariant()
    def deadlines_are_not_in_the_past(self):
        deadline = self.h.core.next_deadline()
        assert deadline is None or deadline > self.h.now - 1e-9 or deadline == self.h.now


TestCoreMachine = CoreMachine.TestCase
TestCoreMachine.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
