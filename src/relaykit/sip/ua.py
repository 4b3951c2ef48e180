"""A SIP user agent over UDP on asyncio: the RFC 3261 subset a phone call needs.

What it does
    * UAS: INVITE (100 Trying, 180 Ringing, 200 OK with SDP retransmitted until the ACK,
      or a final error retransmitted until its ACK), CANCEL (200, then 487 to the INVITE),
      BYE (200), re-INVITE (200 with the same SDP), OPTIONS (200 with Allow/Accept),
      REGISTER (200: a null registrar, so softphones that insist on registering work),
      INFO with ``application/dtmf-relay`` or ``application/dtmf`` (keys), anything else
      405. Malformed requests get ``400 Bad Request`` when a response can be built (see
      :mod:`.message`), others are dropped; an unknown dialog gets 481; an unsupported
      ``Require`` gets 420.
    * UAC: INVITE with SDP, retransmitted (timer A) until a response, 408 after timer B;
      provisional responses, 2xx (ACK sent, and re-sent for each retransmitted 2xx),
      failures (hop-by-hop ACK); CANCEL once a provisional response has arrived.
    * In-dialog BYE from either side, retransmitted (timer E) until its final response.
    * Retransmitted requests are answered from the server transaction (same branch).
    * Responses go to the address the request came from, and in-dialog requests to the
      address the dialog's peer sends from (symmetric signalling, RFC 3581 ``rport``), so a
      phone behind NAT is reached.

What it does not do (not needed for a phone calling an IVR on the same host or LAN):
TCP/TLS, DNS SRV/NAPTR (hostnames are resolved with ``getaddrinfo``), authentication,
PRACK/100rel, UPDATE, forking, session timers, SDP-less INVITE (delayed offer).

Why not a library: the issue preferred ``sippy`` 2.x; it was evaluated and not used. Its
event dispatcher is a module-level singleton created at import (bound to the importing
thread, driven by its own blocking loop on a C timer), its UDP I/O runs on its own threads,
and it pulls in flask, flask-login, pycryptodome, g722 and rtpsynth. Driving it from the
server's asyncio loop would need cross-thread marshalling for every message, and two servers
in one process (as the test suite runs) would share one global dispatcher. The subset here
is small, sans-I/O at its core (:mod:`.message`), and fuzzed.
"""

from __future__ import annotations

__all__ = ["DialogState", "InboundCall", "OutboundCall", "SipUserAgent"]

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable
from enum import Enum
from typing import Any

from .message import (
    SipParseError,
    SipRequest,
    SipResponse,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)

log = logging.getLogger("relaykit.sip")

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REGISTER"
Address = tuple[str, int]

_REASONS = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    503: "Service Unavailable",
    603: "Decline",
}


def reason_phrase(status: int) -> str:
    return _REASONS.get(status, "Unknown")


def _token() -> str:
    return secrets.token_hex(6)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class DialogState(Enum):
    EARLY = "early"  # INVITE sent or received, no final response yet
    CONFIRMED = "confirmed"  # 2xx sent or received
    TERMINATED = "terminated"


class _Dialog:
    """What both kinds of call share: the dialog identifiers and in-dialog requests."""

    def __init__(self, ua: SipUserAgent, call_id: str, local_tag: str, peer: Address) -> None:
        self.ua = ua
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = ""
        self.local_uri = ""  # our From/To value without the tag
        self.remote_uri = ""
        self.remote_target = ""
        self.route_set: list[str] = []
        self.local_cseq = 1
        self.peer = peer
        self.state = DialogState.EARLY
        self.on_end: Callable[[str], None] | None = None
        self.on_key: Callable[[str], None] | None = None
        self.local_sdp = b""
        self._bye_sent = False

    @property
    def ended(self) -> bool:
        return self.state is DialogState.TERMINATED

    def _request(
        self, method: str, body: bytes = b"", content_type: str | None = None
    ) -> SipRequest:
        self.local_cseq += 1
        headers = [
            ("Via", self.ua.via()),
            ("Max-Forwards", "70"),
            ("From", f"{self.local_uri};tag={self.local_tag}"),
            (
                "To",
                f"{self.remote_uri};tag={self.remote_tag}" if self.remote_tag else self.remote_uri,
            ),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.local_cseq} {method}"),
            *[("Route", r) for r in self.route_set],
            ("User-Agent", self.ua.user_agent),
        ]
        if content_type:
            headers.append(("Content-Type", content_type))
        return SipRequest(headers=headers, body=body, method=method, uri=self.remote_target)

    def bye(self) -> None:
        """Send BYE (once); the dialog ends now, whatever the far end answers."""
        if self._bye_sent:
            return
        self._bye_sent = True
        self.ua._send_request(self._request("BYE"), self.peer)
        self._terminate()

    def _terminate(self) -> None:
        if self.state is not DialogState.TERMINATED:
            self.state = DialogState.TERMINATED
            self.ua._forget(self)

    def _ended_by_peer(self, reason: str) -> None:
        if self.state is DialogState.TERMINATED:
            return
        self._terminate()
        if self.on_end is not None:
            self.on_end(reason)


class InboundCall(_Dialog):
    """The UAS side of an INVITE. Set ``on_end`` (``"cancel"``, ``"hangup"``, ``"error"``).

    ``on_end`` is called only for ends the far end (or a timeout) caused; the application's
    own :meth:`reject`/:meth:`hangup` do not call it.
    """

    def __init__(self, ua: SipUserAgent, invite: SipRequest, source: Address) -> None:
        super().__init__(ua, invite.call_id, _token(), source)
        self.invite = invite
        frm = parse_name_addr(invite.get("From") or "")
        to = parse_name_addr(invite.get("To") or "")
        self.remote_tag = frm.tag
        self.remote_uri = _without_tag(invite.get("From") or "")
        self.local_uri = _without_tag(invite.get("To") or "")
        self.from_uri = frm.uri
        self.to_uri = to.uri
        self.request_uri = invite.uri
        contact = invite.get("Contact")
        self.remote_target = parse_name_addr(contact).uri if contact else frm.uri
        self.route_set = invite.get_all("Record-Route")
        self.offer = invite.body
        self.branch = invite.branch
        self.on_ack: Callable[[], None] | None = None
        self.acked = False
        self._final: SipResponse | None = None
        self._retransmit: asyncio.TimerHandle | None = None
        self._interval = ua.t1

    @property
    def answered(self) -> bool:
        return self._final is not None and self._final.status < 300

    @property
    def finished(self) -> bool:
        """A final response has been sent."""
        return self._final is not None

    def ring(self) -> None:
        if self._final is None:
            self._respond(180)

    def answer(self, sdp: bytes) -> None:
        """Send 200 OK with ``sdp``; retransmitted until the ACK (then on_ack)."""
        if self._final is not None or self.ended:
            return
        self.local_sdp = sdp
        self.state = DialogState.CONFIRMED
        self._final = self._respond(200, body=sdp, content_type="application/sdp")
        self._schedule()

    def reject(self, status: int, reason: str | None = None) -> None:
        """Send a final error response (retransmitted until its ACK); the call is over."""
        if self._final is not None:
            return
        self._final = self._respond(status, reason)
        self._schedule()
        self._terminate()

    def hangup(self, status: int = 603) -> None:
        """End from our side: BYE once answered, else reject with ``status``."""
        if self.answered:
            self._stop_retransmit()
            self.bye()
        elif self._final is None:
            self.reject(status)

    def _respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipResponse:
        extra: list[tuple[str, str]] = []
        if 200 <= status < 300:
            extra.append(("Contact", self.ua.contact()))
            extra.append(("Allow", ALLOW))
            extra += [("Record-Route", r) for r in self.route_set]
        if content_type:
            extra.append(("Content-Type", content_type))
        response = self.ua.response(
            self.invite, status, reason, to_tag=self.local_tag, headers=extra, body=body
        )
        self.ua._reply(self.invite, response, self.peer)
        return response

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._give_up = loop.time() + 64 * self.ua.t1
        self._retransmit = loop.call_later(self._interval, self._resend)

    def _resend(self) -> None:
        self._retransmit = None
        if self.acked or self._final is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() >= self._give_up:
            if self.answered and not self.ended:
                log.info("! no ACK for the 200 OK of %s; hanging up", self.call_id)
                self.bye()
                if self.on_end is not None:
                    self.on_end("error")
            return
        self.ua._send(bytes(self._final), self.peer)
        self._interval = min(self._interval * 2, self.ua.t2)
        self._retransmit = loop.call_later(self._interval, self._resend)

    def _stop_retransmit(self) -> None:
        if self._retransmit is not None:
            self._retransmit.cancel()
            self._retransmit = None

    def _ack(self) -> None:
        if self.acked:
            return
        self.acked = True
        self._stop_retransmit()
        if self.answered and self.on_ack is not None:
            self.on_ack()

    def _cancelled(self) -> None:
        if self._final is not None:
            return
        self._final = self._respond(487)
        self._schedule()
        self._ended_by_peer("cancel")


class OutboundCall(_Dialog):
    """The UAC side of an INVITE we send.

    Callbacks: ``on_progress(status)`` for 180/183, ``on_answer(sdp)`` for the 2xx,
    ``on_fail(status, reason)`` for a final error (408 on timeout, 487 after a CANCEL),
    ``on_end(reason)`` when the far end hangs up after answering.
    """

    def __init__(
        self,
        ua: SipUserAgent,
        target: str,
        from_uri: str,
        to_uri: str,
        sdp: bytes,
        peer: Address,
        *,
        from_name: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(ua, f"{secrets.token_hex(12)}@relaykit", _token(), peer)
        self.local_uri = f'"{from_name}" <{from_uri}>' if from_name else f"<{from_uri}>"
        self.remote_uri = f"<{to_uri}>"
        self.remote_target = target
        self.local_sdp = sdp
        self.local_cseq = 1
        self.branch = ua.new_branch()
        self.on_progress: Callable[[int], None] | None = None
        self.on_answer: Callable[[bytes], None] | None = None
        self.on_fail: Callable[[int, str], None] | None = None
        self.answer_sdp = b""
        self._extra = headers or []
        self._provisional = False
        self._cancel_wanted = False
        self._final_status: int | None = None
        self._ack: bytes | None = None
        self._answer_told = False
        self._timer: asyncio.TimerHandle | None = None
        self._interval = ua.t1
        self._started = 0.0

    def _invite(self) -> SipRequest:
        return SipRequest(
            headers=[
                ("Via", self.ua.via(self.branch)),
                ("Max-Forwards", "70"),
                ("From", f"{self.local_uri};tag={self.local_tag}"),
                ("To", self.remote_uri),
                ("Call-ID", self.call_id),
                ("CSeq", "1 INVITE"),
                ("Contact", self.ua.contact()),
                ("Allow", ALLOW),
                ("User-Agent", self.ua.user_agent),
                *self._extra,
                ("Content-Type", "application/sdp"),
            ],
            body=self.local_sdp,
            method="INVITE",
            uri=self.remote_target,
        )

    def start(self) -> None:
        self._request_bytes = bytes(self._invite())
        self.ua._outbound[self.branch] = self
        self.ua._dialogs[(self.call_id, self.local_tag)] = self
        self.ua._send(self._request_bytes, self.peer)
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        self._timer = loop.call_later(self._interval, self._resend)

    def _resend(self) -> None:
        self._timer = None
        if self._provisional or self._final_status is not None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._started >= 64 * self.ua.t1:
            self._fail(408, "Request Timeout")
            return
        self.ua._send(self._request_bytes, self.peer)
        self._interval *= 2
        self._timer = loop.call_later(self._interval, self._resend)

    def cancel(self) -> None:
        """Stop ringing: CANCEL now if a provisional response came, else as soon as one does."""
        if self._final_status is not None or self.ended:
            if self.state is DialogState.CONFIRMED:
                self.bye()
            return
        self._cancel_wanted = True
        if self._provisional:
            self._send_cancel()

    def hangup(self, status: int = 0) -> None:
        if self.state is DialogState.CONFIRMED:
            self.bye()
        else:
            self.cancel()

    def _send_cancel(self) -> None:
        via = self._invite().get("Via") or ""
        request = SipRequest(
            headers=[
                ("Via", via),
                ("Max-Forwards", "70"),
                ("From", f"{self.local_uri};tag={self.local_tag}"),
                ("To", self.remote_uri),
                ("Call-ID", self.call_id),
                ("CSeq", "1 CANCEL"),
                ("User-Agent", self.ua.user_agent),
            ],
            method="CANCEL",
            uri=self.remote_target,
        )
        self.ua._send_request(request, self.peer, branch=self.branch)

    def _response(self, response: SipResponse, source: Address) -> None:
        status = response.status
        if status < 200:
            if not self._provisional:
                self._provisional = True
                if self._cancel_wanted:
                    self._send_cancel()
            if status > 100 and self.on_progress is not None and not self._cancel_wanted:
                self.on_progress(status)
            return
        to = parse_name_addr(response.get("To") or "")
        if status < 300:
            if self._final_status is None:
                self._final_status = status
                self._stop_timer()
                self.remote_tag = to.tag
                contact = response.get("Contact")
                if contact:
                    self.remote_target = parse_name_addr(contact).uri
                self.route_set = list(reversed(response.get_all("Record-Route")))
                self.state = DialogState.CONFIRMED
                self.answer_sdp = response.body
                self._ack = bytes(self._ack_request())
            if self._ack is not None:
                self.ua._send(self._ack, self.peer)
            if self._final_status == status and self._cancel_wanted and not self._bye_sent:
                self.bye()  # answered while we were cancelling: ACK, then BYE
                return
            if not self._bye_sent and not self._answer_told:
                self._answer_told = True
                if self.on_answer is not None:
                    self.on_answer(self.answer_sdp)
            return
        # 3xx-6xx: hop-by-hop ACK (same branch), then fail once
        ack = SipRequest(
            headers=[
                ("Via", self.ua.via(self.branch)),
                ("Max-Forwards", "70"),
                ("From", f"{self.local_uri};tag={self.local_tag}"),
                ("To", response.get("To") or self.remote_uri),
                ("Call-ID", self.call_id),
                ("CSeq", "1 ACK"),
            ],
            method="ACK",
            uri=self.remote_target,
        )
        self.ua._send(bytes(ack), self.peer)
        if self._final_status is None:
            self._fail(status, response.reason)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _ack_request(self) -> SipRequest:
        return SipRequest(
            headers=[
                ("Via", self.ua.via()),
                ("Max-Forwards", "70"),
                ("From", f"{self.local_uri};tag={self.local_tag}"),
                ("To", f"{self.remote_uri};tag={self.remote_tag}"),
                ("Call-ID", self.call_id),
                ("CSeq", "1 ACK"),
                *[("Route", r) for r in self.route_set],
            ],
            method="ACK",
            uri=self.remote_target,
        )

    def _fail(self, status: int, reason: str) -> None:
        self._final_status = status
        self._stop_timer()
        self._terminate()
        if self.on_fail is not None:
            self.on_fail(status, reason)


class _ClientTransaction:
    """A non-INVITE request we sent (BYE, CANCEL): retransmitted until a final response."""

    def __init__(self, ua: SipUserAgent, data: bytes, peer: Address, branch: str) -> None:
        self.ua = ua
        self.data = data
        self.peer = peer
        self.branch = branch
        self.interval = ua.t1
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + 64 * ua.t1
        self.timer: asyncio.TimerHandle | None = loop.call_later(self.interval, self._resend)

    def _resend(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() >= self.deadline:
            self.done()
            return
        self.ua._send(self.data, self.peer)
        self.interval = min(self.interval * 2, self.ua.t2)
        self.timer = loop.call_later(self.interval, self._resend)

    def done(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.ua._transactions.pop(self.branch, None)


class SipUserAgent(asyncio.DatagramProtocol):
    """A SIP UA on one UDP socket.

    Args:
        host, port: where to listen (port 0 picks a free one; read it back from ``port``).
        on_invite: called with each new :class:`InboundCall` (after 100 Trying); it must
            answer, ring or reject it.
        t1: the RFC 3261 round-trip estimate (0.5 s); every timer scales with it.
        user_agent: the User-Agent/Server header.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5060,
        *,
        on_invite: Callable[[InboundCall], None] | None = None,
        t1: float = 0.5,
        user_agent: str = "relaykit",
    ) -> None:
        self.host = host
        self.port = port
        self.on_invite = on_invite
        self.t1 = t1
        self.t2 = 8 * t1
        self.user_agent = user_agent
        self.transport: asyncio.DatagramTransport | None = None
        self._dialogs: dict[tuple[str, str], _Dialog] = {}
        self._invites: dict[str, InboundCall] = {}  # INVITE branch → call (CANCEL, retransmits)
        self._outbound: dict[str, OutboundCall] = {}  # our INVITE branch → call
        self._transactions: dict[str, _ClientTransaction] = {}
        self._answered: dict[tuple[str, str], tuple[SipResponse, float]] = {}  # (branch, method)
        self.bad_requests = 0
        self.dropped = 0

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> SipUserAgent:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.host, self.port)
        )
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        log.info("= SIP listening on udp:%s:%d", self.host, self.port)
        return self

    async def close(self) -> None:
        for call in list(self._dialogs.values()):
            with contextlib.suppress(Exception):
                call.hangup()  # type: ignore[attr-defined]
        for tx in list(self._transactions.values()):
            tx.done()
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # -- outbound ----------------------------------------------------------------------------
    async def invite(
        self,
        to_uri: str,
        from_uri: str,
        sdp: bytes,
        *,
        from_name: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> OutboundCall:
        """Start an outbound call (INVITE sent); set its callbacks before yielding."""
        uri = parse_uri(to_uri)
        host, port = uri.address()
        if not _is_ip(host):
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            host = infos[0][4][0]
        call = OutboundCall(
            self, to_uri, from_uri, to_uri, sdp, (host, port), from_name=from_name, headers=headers
        )
        return call

    # -- building blocks ---------------------------------------------------------------------
    def new_branch(self) -> str:
        return "z9hG4bK" + secrets.token_hex(8)

    def via(self, branch: str | None = None) -> str:
        return f"SIP/2.0/UDP {self.host}:{self.port};branch={branch or self.new_branch()};rport"

    def contact(self) -> str:
        return f"<sip:relaykit@{self.host}:{self.port}>"

    def response(
        self,
        request: SipRequest,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> SipResponse:
        """A response to ``request`` (§8.2.6): Via, From, To (+tag), Call-ID, CSeq copied."""
        copied: list[tuple[str, str]] = [("Via", v) for v in request.get_all("Via")]
        to = request.get("To") or ""
        if to_tag and status > 100 and "tag=" not in to:
            to = f"{to};tag={to_tag}"
        copied += [
            ("From", request.get("From") or ""),
            ("To", to),
            ("Call-ID", request.call_id),
            ("CSeq", request.get("CSeq") or ""),
            ("Server", self.user_agent),
        ]
        copied += headers or []
        return SipResponse(
            headers=copied, body=body, status=status, reason=reason or reason_phrase(status)
        )

    # -- the wire ----------------------------------------------------------------------------
    def _send(self, data: bytes, address: Address) -> None:
        if self.transport is not None:
            self.transport.sendto(data, address)

    def _send_request(
        self, request: SipRequest, address: Address, *, branch: str | None = None
    ) -> None:
        """Send a non-INVITE request and retransmit it until its final response."""
        if branch is None:
            branch = parse_via(request.get_all("Via")[0]).branch
        data = bytes(request)
        self._send(data, address)
        key = f"{branch}:{request.method}"
        self._transactions[key] = _ClientTransaction(self, data, address, key)

    def _reply(self, request: SipRequest, response: SipResponse, address: Address) -> None:
        name, top = response.headers[0] if response.headers else ("", "")
        if name == "Via" and "rport" in parse_via(top).params and ";rport=" not in top:
            # RFC 3581: tell the client where its request came from
            fixed = top.replace(";rport", f";rport={address[1]};received={address[0]}", 1)
            response.headers[0] = ("Via", fixed)
        self._answered[(request.branch, request.method)] = (
            response,
            asyncio.get_running_loop().time() + 64 * self.t1,
        )
        self._send(bytes(response), address)

    def _forget(self, dialog: _Dialog) -> None:
        self._dialogs.pop((dialog.call_id, dialog.local_tag), None)
        if isinstance(dialog, OutboundCall):
            self._outbound.pop(dialog.branch, None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def error_received(self, exc: Exception) -> None:
        log.debug("! SIP socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        address: Address = (addr[0], addr[1])
        if not data.strip(b"\r\n \t\0"):
            if data.startswith(b"\r\n\r\n"):
                self._send(b"\r\n", address)  # RFC 5626 keep-alive pong
            return
        try:
            message = parse_message(data)
        except SipParseError as exc:
            request = exc.request
            if request is not None and request.method != "ACK":
                self.bad_requests += 1
                self._send(
                    bytes(self.response(request, 400, f"Bad Request ({exc})"[:120])), address
                )
            else:
                self.dropped += 1
            log.debug("! unparsable SIP from %s: %s", address, exc)
            return
        except Exception:  # the parser must not crash the server
            self.dropped += 1
            log.exception("! SIP parser failed")
            return
        try:
            if isinstance(message, SipResponse):
                self._on_response(message, address)
            else:
                self._on_request(message, address)
        except Exception:
            log.exception("! SIP handling failed")
            if isinstance(message, SipRequest) and message.method != "ACK":
                with contextlib.suppress(Exception):
                    self._send(bytes(self.response(message, 500)), address)

    # -- requests ----------------------------------------------------------------------------
    def _on_request(self, request: SipRequest, source: Address) -> None:
        method = request.method
        self._expire_answered()
        if method == "ACK":
            self._on_ack(request)
            return
        done = self._answered.get((request.branch, method))
        if done is not None and request.branch:
            self._send(bytes(done[0]), source)  # retransmission: same answer
            return
        if method != "CANCEL" and (require := request.get("Require")):
            self._reply(
                request,
                self.response(request, 420, headers=[("Unsupported", require)]),
                source,
            )
            return
        handler = {
            "INVITE": self._on_invite,
            "CANCEL": self._on_cancel,
            "BYE": self._on_bye,
            "OPTIONS": self._on_options,
            "REGISTER": self._on_register,
            "INFO": self._on_info,
        }.get(method)
        if handler is None:
            self._reply(request, self.response(request, 405, headers=[("Allow", ALLOW)]), source)
            return
        handler(request, source)

    def _dialog_of(self, request: SipRequest) -> _Dialog | None:
        to_tag = parse_name_addr(request.get("To") or "").tag
        return self._dialogs.get((request.call_id, to_tag))

    def _on_invite(self, request: SipRequest, source: Address) -> None:
        if parse_name_addr(request.get("To") or "").tag:
            dialog = self._dialog_of(request)
            if dialog is None or dialog.ended:
                self._reply(request, self.response(request, 481), source)
                return
            # re-INVITE (hold, session refresh): keep our media, answer with the same SDP
            response = self.response(
                request,
                200,
                headers=[("Contact", self.contact()), ("Content-Type", "application/sdp")],
                body=dialog.local_sdp,
            )
            self._reply(request, response, source)
            return
        if request.branch in self._invites:
            return  # a retransmission racing the 100 Trying
        call = InboundCall(self, request, source)
        self._invites[request.branch] = call
        self._dialogs[(call.call_id, call.local_tag)] = call
        self._reply(request, self.response(request, 100), source)
        asyncio.get_running_loop().call_later(
            64 * self.t1 + 32, self._invites.pop, request.branch, None
        )
        if self.on_invite is None:
            call.reject(480)
            return
        self.on_invite(call)

    def _on_ack(self, request: SipRequest) -> None:
        call = self._invites.get(request.branch)
        if call is not None and call.finished and not call.answered:
            call._ack()  # ACK of our error response: stop retransmitting it
            return
        dialog = self._dialog_of(request)
        if isinstance(dialog, InboundCall):
            dialog._ack()

    def _on_cancel(self, request: SipRequest, source: Address) -> None:
        call = self._invites.get(request.branch)
        if call is None:
            self._reply(request, self.response(request, 481), source)
            return
        self._reply(request, self.response(request, 200), source)
        call._cancelled()

    def _on_bye(self, request: SipRequest, source: Address) -> None:
        dialog = self._dialog_of(request)
        if dialog is None:
            self._reply(request, self.response(request, 481), source)
            return
        self._reply(request, self.response(request, 200), source)
        if isinstance(dialog, InboundCall):
            dialog._stop_retransmit()
        dialog._ended_by_peer("hangup")

    def _on_options(self, request: SipRequest, source: Address) -> None:
        extra = [("Allow", ALLOW), ("Accept", "application/sdp"), ("Supported", "")]
        self._reply(request, self.response(request, 200, headers=extra), source)

    def _on_register(self, request: SipRequest, source: Address) -> None:
        extra = [("Expires", request.get("Expires") or "3600")]
        extra += [("Contact", c) for c in request.get_all("Contact")]
        self._reply(request, self.response(request, 200, to_tag=_token(), headers=extra), source)

    def _on_info(self, request: SipRequest, source: Address) -> None:
        dialog = self._dialog_of(request)
        if dialog is None:
            self._reply(request, self.response(request, 481), source)
            return
        kind = (request.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind and kind not in ("application/dtmf-relay", "application/dtmf"):
            self._reply(request, self.response(request, 415), source)
            return
        self._reply(request, self.response(request, 200), source)
        key = _info_key(request.body.decode("utf-8", "replace"), kind)
        if key and dialog.on_key is not None:
            dialog.on_key(key)

    def _expire_answered(self) -> None:
        if len(self._answered) < 256:
            return
        now = asyncio.get_running_loop().time()
        for key, (_, until) in list(self._answered.items()):
            if until < now:
                del self._answered[key]

    # -- responses ---------------------------------------------------------------------------
    def _on_response(self, response: SipResponse, source: Address) -> None:
        branch = response.branch
        _, method = response.cseq
        if method == "INVITE":
            call = self._outbound.get(branch)
            if call is None:
                # a 2xx retransmission after the call ended: ACK it so it stops
                for dialog in self._dialogs.values():
                    if isinstance(dialog, OutboundCall) and dialog.branch == branch:
                        dialog._response(response, source)
                return
            call._response(response, source)
            return
        tx = self._transactions.get(f"{branch}:{method}")
        if tx is not None and response.status >= 200:
            tx.done()


def _without_tag(value: str) -> str:
    """A From/To value with its tag parameter removed (kept as written otherwise)."""
    out = [p for p in value.split(";") if not p.strip().lower().startswith("tag=")]
    return ";".join(out).strip()


def _info_key(body: str, kind: str) -> str | None:
    """The key in a SIP INFO body: ``Signal=5`` (dtmf-relay) or a bare ``5`` (dtmf)."""
    for line in body.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip().lower() == "signal":
            key = value.strip().upper()
            return key if len(key) == 1 and key in "0123456789*#ABCD" else None
    text = body.strip().upper()
    if kind == "application/dtmf" and len(text) == 1 and text in "0123456789*#ABCD":
        return text
    return None
