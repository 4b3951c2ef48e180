"""The sans-I/O SIP core, driven with datagrams and a fake clock only (no sockets, no loop)."""

from __future__ import annotations

import pytest

from relaykit.sip.core import MAX_COPIED_BYTES, DialogState
from relaykit.sip.events import (
    AnswerAcked,
    CallAnswered,
    CallEnded,
    CallFailed,
    CallKey,
    CallProgress,
    IncomingCall,
    KeyPressed,
)
from relaykit.sip.message import SipRequest, SipResponse, parse_message, parse_via
from relaykit.sip.transaction import ServerNonInvite, TransactionError
from tests.sip.core_peer import ME, PHONE, SDP, Harness, request, response_to, tag

ANSWER = b"v=0\r\ns=answer\r\n"


def incoming(h: Harness, **kwargs: object) -> tuple[CallKey, IncomingCall]:
    batch = h.feed(request("INVITE", body=SDP, **kwargs))  # type: ignore[arg-type]
    assert batch.statuses == [100]
    [event] = batch.events
    assert isinstance(event, IncomingCall)
    return event.call, event


def answered(h: Harness) -> tuple[CallKey, SipResponse]:
    key, _ = incoming(h)
    ok = h.act(h.core.answer(key, ANSWER, h.now)).response(200)
    return key, ok


def ack_for(ok: SipResponse, *, branch: str = "z9hG4bK-ack", cseq: int = 1) -> bytes:
    return request("ACK", to_tag=tag(ok), branch=branch, cseq=cseq)


def times_of(batches: list, status: int) -> list[float]:
    return [b.at for b in batches for s in b.statuses if s == status]


# -- UAS: INVITE server transaction --------------------------------------------------------------
def test_incoming_invite_is_100_trying_then_an_event_with_the_offer():
    h = Harness()
    key, event = incoming(h)
    assert (event.offer, event.source, event.from_uri) == (SDP, PHONE, f"sip:phone@{PHONE[0]}")
    assert event.request_uri == f"sip:+15559870000@{ME[0]}:{ME[1]}"
    assert h.core.call_state(key) is DialogState.EARLY


def test_the_200_is_resent_on_timer_g_until_the_ack_which_is_absorbed():
    h = Harness()
    key, ok = answered(h)
    assert ok.body == ANSWER and tag(ok) == key.local_tag
    batches = h.advance(4.0)
    assert times_of(batches, 200) == [0.5, 1.5, 3.5]  # T1, 2·T1, 4·T1
    assert all(bytes(b.messages[0]) == bytes(ok) for b in batches)
    h.now = 4.2
    acked = h.feed(ack_for(ok))
    assert acked.sends == [] and acked.events == [AnswerAcked(key)]
    assert h.advance(60.0) == []  # nothing more, ever
    assert h.feed(ack_for(ok)).outputs == []  # a retransmitted ACK is absorbed silently
    assert h.core.call_state(key) is DialogState.CONFIRMED


def test_no_ack_within_64_t1_sends_bye_and_ends_the_call_with_error():
    h = Harness()
    key, _ = answered(h)
    batches = h.advance(40.0)
    # interval doubles up to T2 = 4 s; timer L gives up at 64·T1 = 32 s
    assert times_of(batches, 200) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    last = next(b for b in batches if b.events)
    assert last.at == 32.0 and last.events == [CallEnded(key, "error")]
    assert [r.method for r in last.requests] == ["BYE"]
    assert h.core.call_state(key) is DialogState.TERMINATED


def test_a_retransmitted_invite_is_answered_from_the_transaction():
    h = Harness()
    key, _ = incoming(h)
    again = h.feed(request("INVITE", body=SDP))
    assert again.statuses == [100] and again.events == []  # no second call
    h.act(h.core.ring(key, h.now))
    assert h.feed(request("INVITE", body=SDP)).statuses == [180]  # the latest provisional
    ok = h.act(h.core.answer(key, ANSWER, h.now)).response(200)
    assert [bytes(m) for m in h.feed(request("INVITE", body=SDP)).messages] == [bytes(ok)]
    assert h.core.calls == 1


def test_a_rejection_is_resent_until_its_ack_on_the_invite_branch():
    h = Harness()
    key, _ = incoming(h)
    busy = h.act(h.core.reject(key, 486, h.now)).response(486)
    assert h.core.call_state(key) is DialogState.TERMINATED
    assert times_of(h.advance(2.0), 486) == [0.5, 1.5]
    assert h.feed(request("INVITE", body=SDP)).statuses == [486]  # retransmission: same answer
    # the ACK of a non-2xx has the INVITE's branch (§17.1.1.3)
    assert h.feed(request("ACK", to_tag=tag(busy), cseq=1)).outputs == []
    assert h.advance(40.0) == []
    assert h.core.transactions == 0  # timer I then ended it


def test_an_unacknowledged_rejection_stops_after_timer_h_without_events():
    h = Harness()
    key, _ = incoming(h)
    h.act(h.core.reject(key, 480, h.now))
    batches = h.advance(40.0)
    assert times_of(batches, 480)[-1] < 32.0 and all(not b.events for b in batches)
    assert h.core.transactions == 0


def test_rejecting_with_a_success_status_is_an_error():
    h = Harness()
    key, _ = incoming(h)
    with pytest.raises(ValueError, match="3xx-6xx"):
        h.core.reject(key, 200, h.now)


def test_actions_after_the_final_response_do_nothing():
    h = Harness()
    key, _ = incoming(h)
    h.act(h.core.reject(key, 486, h.now))
    assert h.core.answer(key, ANSWER, h.now) == []
    assert h.core.ring(key, h.now) == []
    assert h.core.hangup(key, h.now) == []


# -- CANCEL and BYE --------------------------------------------------------------------------------
def test_cancel_gets_200_and_the_invite_487_and_the_call_ends_with_cancel():
    h = Harness()
    key, _ = incoming(h)
    h.act(h.core.ring(key, h.now))
    batch = h.feed(request("CANCEL"))
    assert sorted(batch.statuses) == [200, 487]
    assert batch.response(200).get("CSeq") == "1 CANCEL"
    assert batch.response(487).get("CSeq") == "1 INVITE"
    assert batch.events == [CallEnded(key, "cancel")]
    assert h.core.answer(key, ANSWER, h.now) == []  # too late


def test_cancel_after_the_answer_changes_nothing():
    h = Harness()
    key, _ = answered(h)
    batch = h.feed(request("CANCEL"))
    assert batch.statuses == [200] and batch.events == []
    assert h.core.call_state(key) is DialogState.CONFIRMED


def test_cancel_without_its_invite_gets_481():
    assert Harness().feed(request("CANCEL", branch="z9hG4bK-nope")).statuses == [481]


def test_bye_from_the_phone_gets_200_and_ends_the_call_with_hangup():
    h = Harness()
    key, ok = answered(h)
    h.feed(ack_for(ok))
    batch = h.feed(request("BYE", to_tag=key.local_tag, branch="z9hG4bK-bye", cseq=2))
    assert batch.statuses == [200] and batch.events == [CallEnded(key, "hangup")]
    again = h.feed(request("BYE", to_tag=key.local_tag, branch="z9hG4bK-bye", cseq=2))
    assert again.statuses == [200] and again.events == []  # retransmission: same answer
    assert h.feed(request("BYE", to_tag=key.local_tag, branch="z9hG4bK-2", cseq=3)).statuses == [
        481
    ]


def test_bye_before_the_ack_stops_the_200_retransmissions_without_error():
    h = Harness()
    key, _ = answered(h)
    h.feed(request("BYE", to_tag=key.local_tag, branch="z9hG4bK-bye", cseq=2))
    assert times_of(h.advance(40.0), 200) == []  # no 200 re-sent, no BYE, no "error"


def test_bye_in_an_early_dialog_also_ends_the_invite_with_487():
    h = Harness()
    key, _ = incoming(h)
    h.act(h.core.ring(key, h.now))
    batch = h.feed(request("BYE", to_tag=key.local_tag, branch="z9hG4bK-bye", cseq=2))
    assert sorted(batch.statuses) == [200, 487] and batch.events == [CallEnded(key, "hangup")]


def test_our_bye_is_resent_on_timer_e_until_its_final_response():
    h = Harness()
    key, ok = answered(h)
    h.feed(ack_for(ok))
    [bye] = h.act(h.core.hangup(key, h.now)).requests
    assert bye.method == "BYE" and bye.uri == f"sip:phone@{PHONE[0]}:{PHONE[1]}"
    assert tag(bye) == "phone" and tag(bye, "From") == key.local_tag
    assert bye.cseq == (2, "BYE")
    assert h.core.call_state(key) is DialogState.TERMINATED
    batches = h.advance(2.0)
    assert [b.at for b in batches] == [0.5, 1.5]
    assert all(bytes(b.requests[0]) == bytes(bye) for b in batches)
    assert h.feed(response_to(bye, 200)).outputs == []
    assert h.advance(60.0) == []


def test_a_provisional_response_to_our_bye_slows_timer_e_to_t2():
    """§17.1.2.2: once proceeding, the request is re-sent every T2 (4 s) until timer F."""
    h = Harness()
    key, ok = answered(h)
    h.feed(ack_for(ok))
    [bye] = h.act(h.core.hangup(key, h.now)).requests
    h.now = 0.2
    assert h.feed(response_to(bye, 100)).outputs == []
    assert h.feed(response_to(bye, 100)).outputs == []
    batches = h.advance(40.0)
    assert [b.at for b in batches] == [0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5]
    assert h.core.transactions == 0


def test_our_bye_gives_up_after_timer_f():
    h = Harness()
    key, ok = answered(h)
    h.feed(ack_for(ok))
    h.act(h.core.hangup(key, h.now))
    batches = h.advance(60.0)
    assert [b.at for b in batches] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert h.core.transactions == 0


def test_hanging_up_before_the_answer_rejects_with_the_status():
    h = Harness()
    key, _ = incoming(h)
    assert h.act(h.core.hangup(key, h.now, 486)).statuses == [486]


def test_requests_for_an_unknown_dialog_get_481():
    h = Harness()
    for method in ("BYE", "INFO", "INVITE"):
        batch = h.feed(request(method, to_tag="nope", branch=f"z9hG4bK-{method}"))
        assert batch.statuses == [481], method


def test_an_in_dialog_request_with_an_old_cseq_gets_500():
    h = Harness()
    key, ok = answered(h)
    h.feed(ack_for(ok))
    info = request("INFO", to_tag=key.local_tag, branch="z9hG4bK-i5", cseq=5)
    assert h.feed(info).statuses == [200]
    stale = h.feed(request("BYE", to_tag=key.local_tag, branch="z9hG4bK-b4", cseq=4))
    assert stale.statuses == [500] and stale.events == []
    assert h.core.call_state(key) is DialogState.CONFIRMED


# -- in-dialog requests ----------------------------------------------------------------------------
def test_info_keys_become_events():
    h = Harness()
    key, ok = answered(h)
    h.feed(ack_for(ok))
    for n, (kind, body, key_pressed) in enumerate(
        [
            ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", "5"),
            ("application/dtmf", b"#", "#"),
            ("application/dtmf-relay", b"Signal=X\r\n", None),
        ]
    ):
        data = request(
            "INFO",
            to_tag=key.local_tag,
            branch=f"z9hG4bK-info{n}",
            cseq=2 + n,
            extra=f"Content-Type: {kind}\r\n",
            body=body,
        ).replace(b"Content-Type: application/sdp\r\n", b"")
        batch = h.feed(data)
        assert batch.statuses == [200]
        assert batch.events == ([KeyPressed(key, key_pressed)] if key_pressed else [])
    other = request(
        "INFO", to_tag=key.local_tag, branch="z9hG4bK-x", cseq=9, extra="", body=b"hello"
    ).replace(b"application/sdp", b"text/plain")
    assert h.feed(other).statuses == [415]


def test_a_reinvite_gets_our_sdp_again_resent_until_its_ack():
    h = Harness()
    key, ok = answered(h)
    h.feed(ack_for(ok))
    re_invite = request("INVITE", to_tag=key.local_tag, branch="z9hG4bK-re", cseq=2, body=SDP)
    batch = h.feed(re_invite)
    assert batch.statuses == [200] and batch.response(200).body == ANSWER
    assert batch.events == []
    assert times_of(h.advance(1.0), 200) == [0.5]
    h.feed(ack_for(ok, branch="z9hG4bK-reack", cseq=2))
    assert h.advance(60.0) == []  # stopped, and no BYE for a re-INVITE


def test_a_reinvite_before_we_answered_gets_500_with_retry_after():
    h = Harness()
    key, _ = incoming(h)
    h.act(h.core.ring(key, h.now))
    batch = h.feed(request("INVITE", to_tag=key.local_tag, branch="z9hG4bK-re", cseq=2))
    assert batch.statuses == [500] and batch.response(500).get("Retry-After") == "1"


# -- out of dialog ---------------------------------------------------------------------------------
def test_options_register_and_unknown_methods():
    h = Harness()
    ok = h.feed(request("OPTIONS")).response(200)
    assert "INVITE" in (ok.get("Allow") or "") and ok.get("Accept") == "application/sdp"
    reg = h.feed(request("REGISTER", branch="z9hG4bK-r", extra="Expires: 60\r\n")).response(200)
    assert reg.get("Expires") == "60" and tag(reg)
    assert h.feed(request("SUBSCRIBE", branch="z9hG4bK-s")).statuses == [405]
    required = h.feed(request("OPTIONS", branch="z9hG4bK-q", extra="Require: 100rel\r\n"))
    assert required.response(420).get("Unsupported") == "100rel"


def test_draining_answers_options_with_503():
    h = Harness()
    h.core.draining = True
    assert h.feed(request("OPTIONS")).statuses == [503]
    h.core.draining = False
    assert h.feed(request("OPTIONS", branch="z9hG4bK-2")).statuses == [200]


def test_crlf_keepalive_gets_a_pong_and_blank_datagrams_nothing():
    h = Harness()
    assert [s.data for s in h.feed(b"\r\n\r\n").sends] == [b"\r\n"]
    assert h.feed(b"\r\n").outputs == [] and h.feed(b"\0").outputs == []


# -- symmetric responses (RFC 3581) ----------------------------------------------------------------
def test_responses_go_to_the_source_with_rport_and_received_filled_in():
    h = Harness()
    nat = ("203.0.113.7", 61000)
    batch = h.feed(request("OPTIONS"), source=nat)
    [send] = batch.sends
    assert send.address == nat
    via = parse_via(batch.response(200).get("Via") or "")
    assert (via.params["rport"], via.params["received"]) == ("61000", "203.0.113.7")


def test_without_rport_received_is_added_only_when_the_host_differs():
    h = Harness()
    plain = h.feed(request("OPTIONS", rport=False)).response(200)
    assert "received" not in parse_via(plain.get("Via") or "").params
    moved = h.feed(request("OPTIONS", rport=False, branch="z9hG4bK-2"), source=("10.1.1.1", 5))
    via = parse_via(moved.response(200).get("Via") or "")
    assert via.params == {"branch": "z9hG4bK-2", "received": "10.1.1.1"}
    assert moved.sends[0].address == ("10.1.1.1", 5)


def test_in_dialog_requests_go_to_the_address_the_invite_came_from():
    h = Harness()
    nat = ("203.0.113.7", 61000)
    [event] = h.feed(request("INVITE", body=SDP), source=nat).events
    assert isinstance(event, IncomingCall)
    h.act(h.core.answer(event.call, ANSWER, h.now))
    [bye] = h.act(h.core.hangup(event.call, h.now)).sends
    assert bye.address == nat


# -- bad input (the hardening issue) ---------------------------------------------------------------
def test_an_invite_without_call_id_gets_400():
    h = Harness()
    data = request("INVITE", body=SDP).replace(b"Call-ID: call-1\r\n", b"")
    batch = h.feed(data)
    [send] = batch.sends
    head = send.data.decode()
    assert send.address == PHONE
    assert head.startswith("SIP/2.0 400 Bad Request (missing Call-ID)\r\n")
    assert "\r\nCSeq: 1 INVITE\r\n" in head and ";branch=z9hG4bK-1;" in head
    assert "Call-ID" not in head.split("\r\n", 1)[1]  # nothing made up
    assert batch.events == [] and h.core.bad_requests == 1 and h.core.transactions == 0


def test_an_ack_without_call_id_is_dropped():
    h = Harness()
    assert h.feed(request("ACK").replace(b"Call-ID: call-1\r\n", b"")).outputs == []
    assert h.core.dropped == 1


def test_a_60_kb_via_list_is_refused_with_only_the_top_via_copied():
    h = Harness()
    vias = "".join(
        f"Via: SIP/2.0/UDP 10.0.{i // 250}.{i % 250}:5060;branch=z9hG4bK-hop{i}\r\n"
        for i in range(1100)
    )
    data = request("INVITE", body=SDP, extra=vias)
    assert 60_000 < len(data) < 65_535
    batch = h.feed(data)
    [send] = batch.sends
    bad = batch.response(400)
    assert "Via" in bad.reason and len(bad.get_all("Via")) == 1
    assert parse_via(bad.get_all("Via")[0]).branch == "z9hG4bK-1"
    assert len(send.data) < 1024 and batch.events == []
    assert h.core.transactions == 0 and h.core.calls == 0  # nothing kept, nothing re-sent


def test_a_short_via_list_is_copied_whole():
    h = Harness()
    extra = "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-p1\r\n"
    ok = h.feed(request("OPTIONS", extra=extra)).response(200)
    assert len(ok.get_all("Via")) == 2


def test_a_request_whose_copied_headers_are_too_large_is_dropped():
    h = Harness()
    huge = request("OPTIONS").replace(b"tag=phone", b"tag=phone;x=" + b"a" * MAX_COPIED_BYTES)
    assert h.feed(huge).outputs == [] and h.core.dropped == 1


@pytest.mark.parametrize(
    ("method", "header", "count"),
    [("INVITE", "Record-Route", 200), ("REGISTER", "Contact", 200), ("OPTIONS", "Require", 1)],
)
def test_other_echoed_headers_are_bounded_too(method, header, count):
    """Record-Route goes into the 2xx, Contact into REGISTER's 200, Require into the 420."""
    h = Harness()
    value = "x" * (MAX_COPIED_BYTES + 1) if count == 1 else "<sip:10.0.0.1:5060;lr>"
    extra = "".join(f"{header}: {value}\r\n" for _ in range(count))
    assert h.feed(request(method, body=SDP, extra=extra)).outputs == []
    assert h.core.dropped == 1 and h.core.calls == 0


def test_an_invite_with_an_unparsable_contact_gets_400():
    h = Harness()
    broken = request("INVITE", body=SDP).replace(
        b"Contact: <sip:phone@127.0.0.1:40000>", b"Contact: Phone <sip:phone@127.0.0.1:40000"
    )
    batch = h.feed(broken)
    assert "unclosed" in batch.response(400).reason
    assert batch.statuses == [400] and batch.events == [] and h.core.calls == 0


@pytest.mark.parametrize("uri", ["sip:phone@127.0.0.1: 40000", "http://x", "sip:a b@127.0.0.1"])
def test_an_invite_whose_contact_cannot_be_a_request_uri_gets_400(uri):
    h = Harness()
    data = request("INVITE", body=SDP).replace(b"sip:phone@127.0.0.1:40000", uri.encode())
    batch = h.feed(data)
    assert batch.statuses == [400] and batch.events == [] and h.core.calls == 0


def test_a_2xx_whose_contact_cannot_be_a_request_uri_keeps_the_request_uri():
    """Found by the fuzzer: a mutated Contact became the Request-URI of our ACK and BYE."""
    h = Harness()
    key, invite = outbound(h)
    ok = response_to(invite, 200).replace(b"127.0.0.1:40000>", b"127.0.0.1: 40000>")
    [ack] = h.feed(ok).requests
    assert ack.uri == invite.uri
    [bye] = h.act(h.core.hangup(key, h.now)).requests
    assert bye.uri == invite.uri


def test_beyond_max_transactions_requests_are_answered_without_state():
    h = Harness(max_transactions=2)
    for n in range(2):
        assert h.feed(request("OPTIONS", branch=f"z9hG4bK-{n}")).statuses == [200]
    assert h.core.transactions == 2
    assert h.feed(request("OPTIONS", branch="z9hG4bK-x")).statuses == [200]
    assert h.core.transactions == 2  # answered, not kept
    # a flood of non-INVITEs never locks out calls
    key, _ = incoming(h, branch="z9hG4bK-i")
    assert h.core.transactions == 3 and h.core.call_state(key) is DialogState.EARLY
    h.advance(40.0)  # timer J frees them
    assert h.feed(request("OPTIONS", branch="z9hG4bK-y")).statuses == [200]
    assert h.core.transactions == 2  # the INVITE's (it waits for an answer) and the new one


def test_malformed_requests_get_400_with_the_reason():
    h = Harness()
    bad = h.feed(request("OPTIONS").replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 BYE")).response(400)
    assert "CSeq" in bad.reason and h.core.bad_requests == 1


def test_unmatchable_garbage_is_dropped():
    h = Harness()
    assert h.feed(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\r\n").outputs == []
    assert h.feed(b"\xff\xfe garbage\r\n\r\n").outputs == []
    assert h.core.dropped == 2


# -- UAC: INVITE client transaction ----------------------------------------------------------------
def outbound(h: Harness) -> tuple[CallKey, SipRequest]:
    key = h.core.invite(f"sip:far@{PHONE[0]}:{PHONE[1]}", "sip:me@x", SDP, PHONE, from_name="Me")
    assert h.core.call_state(key) is DialogState.EARLY
    [invite] = h.act(h.core.start_call(key, h.now)).requests
    assert invite.method == "INVITE" and invite.body == SDP
    assert invite.get("From") == f'"Me" <sip:me@x>;tag={key.local_tag}'
    return key, invite


def test_our_invite_is_resent_on_timer_a_then_fails_408_on_timer_b():
    h = Harness()
    key, invite = outbound(h)
    batches = h.advance(40.0)
    sent = [b.at for b in batches if b.requests]
    assert sent == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # doubling, no cap (§17.1.1.2)
    assert all(bytes(b.requests[0]) == bytes(invite) for b in batches if b.requests)
    assert batches[-1].at == 32.0 and batches[-1].events == [
        CallFailed(key, 408, "Request Timeout")
    ]
    assert h.core.call_state(key) is DialogState.TERMINATED and h.core.transactions == 0


def test_progress_answer_and_a_retransmitted_2xx_acked_again():
    h = Harness()
    key, invite = outbound(h)
    trying = h.feed(response_to(invite, 100))
    assert trying.outputs == []
    assert h.advance(10.0) == []  # a provisional response stops timer A (and B)
    assert h.feed(response_to(invite, 180)).events == [CallProgress(key, 180)]
    ok = h.feed(response_to(invite, 200, body=ANSWER))
    [ack] = ok.requests
    assert ok.events == [CallAnswered(key, ANSWER)]
    assert ack.method == "ACK" and ack.cseq == (1, "ACK") and tag(ack) == "far"
    assert ack.uri == f"sip:far@{PHONE[0]}:{PHONE[1]}"  # the Contact of the 2xx
    assert ack.branch != invite.branch  # a 2xx ACK is a new transaction
    again = h.feed(response_to(invite, 200, body=ANSWER))
    assert [bytes(r) for r in again.requests] == [bytes(ack)] and again.events == []
    assert h.core.call_state(key) is DialogState.CONFIRMED
    [bye] = h.act(h.core.hangup(key, h.now)).requests
    assert bye.method == "BYE" and bye.cseq == (2, "BYE") and tag(bye) == "far"


def test_a_failure_is_acked_on_the_invite_branch_and_reported_once():
    h = Harness()
    key, invite = outbound(h)
    busy = h.feed(response_to(invite, 486))
    [ack] = busy.requests
    assert ack.method == "ACK" and ack.branch == invite.branch and tag(ack) == "far"
    assert busy.events == [CallFailed(key, 486, "Busy Here")]
    again = h.feed(response_to(invite, 486))
    assert [bytes(r) for r in again.requests] == [bytes(ack)] and again.events == []
    assert h.advance(40.0) == [] and h.core.transactions == 0  # timer D ended it


def test_bye_from_the_far_end_of_an_outbound_call():
    h = Harness()
    key, invite = outbound(h)
    h.feed(response_to(invite, 200, body=ANSWER))
    bye = request("BYE", call_id=key.call_id, to_tag=key.local_tag, branch="z9hG4bK-fb", cseq=5)
    batch = h.feed(bye)
    assert batch.statuses == [200] and batch.events == [CallEnded(key, "hangup")]


def test_cancel_waits_for_a_provisional_response_then_the_487_fails_the_call():
    h = Harness()
    key, invite = outbound(h)
    assert h.act(h.core.cancel(key, h.now)).sends == []  # §9.1: not before a provisional
    ringing = h.feed(response_to(invite, 180))
    [cancel] = ringing.requests
    assert ringing.events == []  # no progress reported once cancelling
    assert cancel.method == "CANCEL" and cancel.branch == invite.branch
    assert cancel.cseq == (1, "CANCEL") and cancel.uri == invite.uri
    assert h.feed(response_to(cancel, 200)).outputs == []
    terminated = h.feed(response_to(invite, 487))
    assert terminated.events == [CallFailed(key, 487, "Terminated")]
    assert [r.method for r in terminated.requests] == ["ACK"]


def test_a_cancel_never_answered_with_a_final_response_fails_408():
    h = Harness()
    key, invite = outbound(h)
    h.feed(response_to(invite, 180))
    h.act(h.core.hangup(key, h.now))
    batches = h.advance(40.0)
    assert [e for b in batches for e in b.events] == [CallFailed(key, 408, "Request Timeout")]
    assert h.core.calls == 0


def test_answered_while_cancelling_is_acked_then_hung_up():
    h = Harness()
    key, invite = outbound(h)
    h.feed(response_to(invite, 180))
    h.act(h.core.cancel(key, h.now))
    batch = h.feed(response_to(invite, 200, body=ANSWER))
    assert [r.method for r in batch.requests] == ["ACK", "BYE"] and batch.events == []
    assert h.core.call_state(key) is DialogState.TERMINATED


def test_hanging_up_a_call_never_started_forgets_it():
    h = Harness()
    key = h.core.invite("sip:far@127.0.0.1", "sip:me@x", SDP, PHONE)
    assert h.core.hangup(key, 0.0) == [] and h.core.call_state(key) is DialogState.TERMINATED


def test_a_stray_response_is_ignored():
    h = Harness()
    _, invite = outbound(h)
    stray = response_to(invite, 200).replace(invite.branch.encode(), b"z9hG4bK-other")
    assert h.feed(stray).outputs == []


def test_close_hangs_up_every_call_once_and_forgets_everything():
    h = Harness()
    incoming(h)  # ringing: 603
    up, _ = incoming(h, call_id="c2", branch="z9hG4bK-2")
    h.act(h.core.answer(up, ANSWER, h.now))  # answered: BYE
    _, invite = outbound(h)
    h.feed(response_to(invite, 180))
    batch = h.act(h.core.close(h.now))
    assert sorted(batch.statuses) == [603]
    assert sorted(r.method for r in batch.requests) == ["BYE", "CANCEL"]
    assert h.core.calls == 0 and h.core.transactions == 0 and h.core.next_deadline() is None


# -- the tables ------------------------------------------------------------------------------------
def test_a_missing_transition_is_a_clear_error():
    h = Harness()
    tx = ServerNonInvite(h.core, ("b", "h", "OPTIONS"), PHONE)
    with pytest.raises(TransactionError, match="ServerNonInvite: no transition for request"):
        tx.received_again()  # a retransmission cannot reach a transaction still trying


def test_every_output_parses_back():
    """Whatever the core sends is well-formed SIP (or the keep-alive pong)."""
    h = Harness()
    key, ok = answered(h)
    outputs = [*h.advance(3.0), h.feed(ack_for(ok)), h.act(h.core.hangup(key, h.now))]
    for batch in outputs:
        for send in batch.sends:
            assert isinstance(parse_message(send.data), SipRequest | SipResponse)
