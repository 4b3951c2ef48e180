"""The SIP user agent on a real UDP socket, driven by a bare test socket: responses and errors."""

from __future__ import annotations

import asyncio
import socket

import pytest

from relaykit.sip.message import SipParseError, SipResponse, parse_message
from relaykit.sip.ua import InboundCall, SipUserAgent
from tests.helpers import WAIT
from tests.sip.peers import IVR_NUMBER, LOOPBACK

pytestmark = pytest.mark.asyncio

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)


class Phone:
    """A bare UDP socket that sends SIP text and reads responses."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.setblocking(False)
        self.local = self.sock.getsockname()[1]
        self.n = 0

    def close(self) -> None:
        self.sock.close()

    def request(
        self,
        method: str,
        *,
        uri: str | None = None,
        to_tag: str = "",
        call_id: str | None = None,
        branch: str | None = None,
        cseq: str | None = None,
        body: str = "",
        extra: str = "",
        content_type: str = "application/sdp",
    ) -> bytes:
        self.n += 1
        to = f"<sip:{IVR_NUMBER}@{LOOPBACK}>" + (f";tag={to_tag}" if to_tag else "")
        text = (
            f"{method} {uri or f'sip:{IVR_NUMBER}@{LOOPBACK}:{self.port}'} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOOPBACK}:{self.local};rport;"
            f"branch={branch or f'z9hG4bK-t{self.n}'}\r\n"
            f"From: <sip:tester@{LOOPBACK}>;tag=tester\r\n"
            f"To: {to}\r\n"
            f"Call-ID: {call_id or f'call-{self.n}'}\r\n"
            f"CSeq: {cseq or f'1 {method}'}\r\n"
            f"Contact: <sip:tester@{LOOPBACK}:{self.local}>\r\n"
            "Max-Forwards: 70\r\n"
            f"{extra}"
            + (f"Content-Type: {content_type}\r\n" if body else "")
            + f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
        )
        return text.encode()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, (LOOPBACK, self.port))

    async def response(self, status: int | None = None, timeout: float = WAIT) -> SipResponse:
        """The next response (skipping others until ``status`` when given)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                data = await loop.sock_recv(self.sock, 65535)
                try:
                    message = parse_message(data)
                except SipParseError:  # a 400 echoes the bad header it complains about
                    first = data.split(b"\r\n", 1)[0].decode().split(" ", 2)
                    message = SipResponse(status=int(first[1]), reason=first[2])
                if isinstance(message, SipResponse) and (
                    status is None or message.status == status
                ):
                    return message

    async def nothing(self, seconds: float = 0.3) -> bool:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(seconds):
                await loop.sock_recv(self.sock, 65535)
        except TimeoutError:
            return True
        return False


@pytest.fixture
def phone(server):
    p = Phone(server.sip.port)
    yield p
    p.close()


async def test_options_is_answered_with_allow_and_accept(phone):
    """OPTIONS (a keep-alive or capability probe) gets 200 with Allow and Accept."""
    phone.send(phone.request("OPTIONS"))
    response = await phone.response()
    assert response.status == 200
    assert "INVITE" in (response.get("Allow") or "")
    assert response.get("Accept") == "application/sdp"
    assert response.get("Call-ID") == "call-1"


async def test_response_via_carries_rport_and_received(phone):
    """RFC 3581: the response says which address and port the request came from."""
    phone.send(phone.request("OPTIONS"))
    via = (await phone.response()).get("Via") or ""
    assert f"rport={phone.local}" in via and "received=127.0.0.1" in via


async def test_unknown_method_gets_405_with_allow(phone):
    phone.send(phone.request("SUBSCRIBE"))
    response = await phone.response()
    assert response.status == 405
    assert "BYE" in (response.get("Allow") or "")


async def test_bye_for_an_unknown_dialog_gets_481(phone):
    phone.send(phone.request("BYE", to_tag="nope"))
    assert (await phone.response()).status == 481


async def test_invite_to_an_unrouted_number_gets_404(phone):
    phone.send(phone.request("INVITE", uri=f"sip:+19990000000@{LOOPBACK}", body=SDP))
    assert (await phone.response(404)).status == 404


async def test_invite_without_a_common_codec_gets_488(phone):
    sdp = SDP.replace("RTP/AVP 0 101", "RTP/AVP 18").replace(
        "a=rtpmap:101", "a=rtpmap:18 G729/8000\r\na=x"
    )
    phone.send(phone.request("INVITE", body=sdp))
    assert (await phone.response(488)).status == 488


async def test_invite_with_no_consumer_gets_480(server, phone):
    server.sip.offer_timeout = 0.2
    phone.send(phone.request("INVITE", body=SDP))
    assert (await phone.response(100)).status == 100
    assert (await phone.response(480)).status == 480


async def test_required_extension_is_refused_with_420(phone):
    phone.send(phone.request("OPTIONS", extra="Require: 100rel\r\n"))
    response = await phone.response()
    assert response.status == 420
    assert response.get("Unsupported") == "100rel"


async def test_retransmitted_request_gets_the_same_response(phone):
    """A retransmission (same branch) is answered from the transaction, not handled twice."""
    request = phone.request("BYE", to_tag="x", branch="z9hG4bK-same")
    phone.send(request)
    first = await phone.response()
    phone.send(request)
    second = await phone.response()
    assert bytes(first) == bytes(second)


async def test_register_is_accepted_by_the_null_registrar(phone):
    phone.send(phone.request("REGISTER", uri=f"sip:{LOOPBACK}", extra="Expires: 600\r\n"))
    response = await phone.response()
    assert response.status == 200
    assert response.get("Expires") == "600"


@pytest.mark.parametrize(
    ("name", "mutate"),
    [
        ("bad CSeq", lambda t: t.replace("CSeq: 1 OPTIONS", "CSeq: one OPTIONS")),
        ("CSeq method mismatch", lambda t: t.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")),
        ("short body", lambda t: t.replace("Content-Length: 0", "Content-Length: 50")),
        ("bad header line", lambda t: t.replace("Max-Forwards: 70", "Max Forwards 70")),
        ("bad request URI", lambda t: t.replace("OPTIONS sip:", "OPTIONS http:", 1)),
        ("bad Max-Forwards", lambda t: t.replace("Max-Forwards: 70", "Max-Forwards: many")),
    ],
)
async def test_malformed_request_gets_400(phone, name, mutate):
    """A request that can be answered but is malformed gets 400 Bad Request (RFC 3261 §21.4.1)."""
    phone.send(mutate(phone.request("OPTIONS").decode()).encode())
    response = await phone.response()
    assert response.status == 400, name


async def test_unanswerable_garbage_is_dropped_and_the_agent_keeps_working(server, phone):
    """No Via/From/To/Call-ID/CSeq: no response can be built; silence, then business as usual."""
    phone.send(b"\x00\xffnot sip at all\r\n\r\n")
    phone.send(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\r\n")
    assert await phone.nothing()
    assert server.sip.ua.dropped == 2
    phone.send(phone.request("OPTIONS"))
    assert (await phone.response()).status == 200


async def test_crlf_keepalive_gets_a_pong(phone):
    """RFC 5626 §4.4.1: a double-CRLF ping is answered with a single CRLF."""
    phone.send(b"\r\n\r\n")
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(WAIT):
        assert await loop.sock_recv(phone.sock, 100) == b"\r\n"


# -- the user agent alone, with fast timers ----------------------------------------------------
async def test_missing_ack_retransmits_the_200_then_hangs_up_with_error():
    """No ACK for the 200 OK: it is re-sent (timer G style), then BYE and end reason error."""
    ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_invite(call: InboundCall) -> None:
        call.on_end = lambda reason: ended.done() or ended.set_result(reason)
        call.answer(b"v=0\r\n")

    ua = await SipUserAgent(LOOPBACK, 0, on_invite=on_invite, t1=0.01).start()
    phone = Phone(ua.port)
    try:
        phone.send(phone.request("INVITE", body=SDP))
        first = await phone.response(200)
        again = await phone.response(200)
        assert bytes(first) == bytes(again)
        assert await asyncio.wait_for(ended, WAIT) == "error"
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(WAIT):
            while True:
                message = parse_message(await loop.sock_recv(phone.sock, 65535))
                if not isinstance(message, SipResponse) and message.method == "BYE":
                    break
    finally:
        phone.close()
        await ua.close()


async def test_ack_stops_the_200_retransmissions():
    acked = asyncio.Event()

    def on_invite(call: InboundCall) -> None:
        call.on_ack = acked.set
        call.answer(b"v=0\r\n")

    ua = await SipUserAgent(LOOPBACK, 0, on_invite=on_invite, t1=0.02).start()
    phone = Phone(ua.port)
    try:
        phone.send(phone.request("INVITE", body=SDP, call_id="c1"))
        ok = await phone.response(200)
        to_tag = (ok.get("To") or "").split("tag=")[1]
        phone.send(phone.request("ACK", to_tag=to_tag, call_id="c1", cseq="1 ACK"))
        await asyncio.wait_for(acked.wait(), WAIT)
        await asyncio.sleep(0.05)  # drain anything sent before the ACK arrived
        while not await phone.nothing(0.2):
            pass
    finally:
        phone.close()
        await ua.close()


# -- hardening -------------------------------------------------------------------------------------
async def test_invite_without_call_id_gets_400(phone):
    """It used to be dropped silently; the Via branch and CSeq are enough to answer it."""
    data = phone.request("INVITE", body=SDP).replace(b"Call-ID: call-1\r\n", b"")
    phone.send(data)
    response = await phone.response()
    assert (response.status, response.reason) == (400, "Bad Request (missing Call-ID)")


async def test_a_60_kb_via_list_is_not_copied_back(server, phone):
    """A response copies a bounded Via list: this request gets a small 400 with one Via."""
    hops = "".join(
        f"Via: SIP/2.0/UDP 10.0.{i // 250}.{i % 250}:5060;branch=z9hG4bK-hop{i}\r\n"
        for i in range(1100)
    )
    data = phone.request("INVITE", body=SDP, extra=hops)
    assert len(data) > 60_000
    phone.send(data)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(WAIT):
        raw = await loop.sock_recv(phone.sock, 65535)
    response = parse_message(raw)
    assert isinstance(response, SipResponse) and response.status == 400
    assert len(response.get_all("Via")) == 1 and len(raw) < 1024
    assert await phone.nothing()  # no 100 Trying, no call, nothing re-sent
    assert server.sip.ua.core.calls == 0


async def test_draining_answers_options_with_503(server, phone):
    server.sip.ua.draining = True
    phone.send(phone.request("OPTIONS"))
    assert (await phone.response()).status == 503
    server.sip.ua.draining = False
    phone.send(phone.request("OPTIONS"))
    assert (await phone.response()).status == 200
