"""The SIP user agent, sans-I/O: datagrams and time in; datagrams, deadlines and events out.

:class:`SipCore` is the transaction user of :mod:`.transaction` (RFC 3261 §8, §12-§15):
it matches requests and responses to transactions and dialogs and decides the answers. It
never touches a socket or reads a clock. Every entry point takes ``now`` (seconds on any
monotonic clock) and returns a list of outputs (:mod:`.events`): datagrams to send first,
then events (``IncomingCall``, ``CallProgress``, ``CallAnswered``, ``CallFailed``,
``AnswerAcked``, ``CallEnded``, ``KeyPressed``). Timers are deadlines: after
any call, :meth:`SipCore.next_deadline` says when :meth:`SipCore.handle_timers` is next due.
:mod:`.ua` runs it on an asyncio UDP socket.

What it does
    * UAS: INVITE (100 Trying, 180 Ringing, 200 OK with SDP re-sent until the ACK — no ACK
      after 64·T1: BYE, and the call ends with ``error`` — or a final error re-sent until its
      ACK), CANCEL (200, then 487 to the INVITE), BYE (200; in an early dialog also 487 to
      the INVITE), re-INVITE (200 with the same SDP), OPTIONS (200 with Allow/Accept, or 503
      while :attr:`SipCore.draining`), REGISTER (200: a null registrar, so softphones that
      insist on registering work), INFO with ``application/dtmf-relay`` or
      ``application/dtmf`` (keys), anything else 405. An unknown dialog gets 481, an
      unsupported ``Require`` 420, an in-dialog request with an old CSeq 500.
    * UAC: INVITE with SDP (timer A re-sends it; 408 after timer B), provisional responses,
      2xx (ACK sent, and re-sent for each retransmitted 2xx), failures (hop-by-hop ACK);
      CANCEL once a provisional response has arrived (408 if no final response follows
      within 64·T1).
    * In-dialog BYE from either side, re-sent (timer E) until its final response.
    * Retransmitted requests are answered from their server transaction (same branch).
    * Responses go to the address the request came from, and in-dialog requests to the
      address the dialog's peer sent its INVITE from (symmetric signalling): the top Via of a
      response gets ``received`` and, when asked (RFC 3581), ``rport``.

Bad input
    * A malformed request gets ``400 Bad Request (why)`` when a response can be matched to
      it — it has a top Via and a CSeq (§17.1.3); a missing From, To or Call-ID is such a
      400 — otherwise it is dropped and counted in :attr:`SipCore.dropped`. ACKs are never
      answered.
    * What a response copies back is bounded (no reflection of attacker-sized headers,
      re-sent on every retransmission): a request with more than :data:`MAX_VIAS` Via values
      or more than :data:`MAX_VIA_BYTES` bytes of them is refused with a 400 that copies only
      its top Via; a request whose echoed headers (that Via or Via list, From, To, Call-ID,
      CSeq, Require, and an INVITE's Record-Route or a REGISTER's Contact) exceed
      :data:`MAX_COPIED_BYTES` in all is dropped and counted in :attr:`SipCore.dropped`.
    * At most ``max_transactions`` non-INVITE server transactions are kept (each lives
      64·T1 after its answer); beyond that such requests are answered without one, so a
      flood of unique branches costs bounded memory and never locks out calls. INVITEs
      always get a transaction: each is a call, which the server's own limits bound.

Not done (not needed for a phone calling an IVR on the same host or LAN): TCP/TLS,
authentication, PRACK/100rel, UPDATE, forking, session timers, SDP-less INVITE.

Why not a library: the issue preferred ``sippy`` 2.x; it was evaluated and not used. Its
event dispatcher is a module-level singleton created at import (bound to the importing
thread, driven by its own blocking loop on a C timer), its UDP I/O runs on its own threads,
and it pulls in flask, flask-login, pycryptodome, g722 and rtpsynth. The subset here is
small, sans-I/O, and fuzzed.
"""

from __future__ import annotations

__all__ = [
    "MAX_COPIED_BYTES",
    "MAX_VIAS",
    "MAX_VIA_BYTES",
    "DialogState",
    "SipCore",
    "reason_phrase",
]

import contextlib
import logging
import secrets
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from .events import (
    Address,
    AnswerAcked,
    CallAnswered,
    CallEnded,
    CallFailed,
    CallKey,
    CallProgress,
    Event,
    IncomingCall,
    KeyPressed,
    Output,
    Send,
)
from .message import (
    SipParseError,
    SipRequest,
    SipResponse,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)
from .transaction import (
    ClientInvite,
    ClientNonInvite,
    Notice,
    ServerInvite,
    ServerNonInvite,
    State,
    Timers,
    Transaction,
)

log = logging.getLogger("relaykit.sip")

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REGISTER"
MAX_VIAS = 10
MAX_VIA_BYTES = 2048
MAX_COPIED_BYTES = 4096
_MAGIC = "z9hG4bK"
_KEYS = "0123456789*#ABCD"

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
    491: "Request Pending",
    500: "Server Internal Error",
    503: "Service Unavailable",
    603: "Decline",
}


def reason_phrase(status: int) -> str:
    return _REASONS.get(status, "Unknown")


class DialogState(Enum):
    """Where a call's dialog is (RFC 3261 §12)."""

    EARLY = "early"  # INVITE sent or received, no final response yet
    CONFIRMED = "confirmed"  # 2xx sent or received
    TERMINATED = "terminated"


# -- dialogs --------------------------------------------------------------------------------------
@dataclass(eq=False, slots=True)
class _Dialog:
    key: CallKey
    peer: Address
    local_uri: str  # our From/To value without the tag
    remote_uri: str
    remote_target: str
    remote_tag: str = ""
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 1
    remote_cseq: int = 0
    state: DialogState = DialogState.EARLY
    local_sdp: bytes = b""
    invites: dict[int, ServerInvite] = field(default_factory=dict)  # by CSeq, for ACKs
    bye_sent: bool = False


@dataclass(eq=False, slots=True)
class _Inbound(_Dialog):
    invite: SipRequest = field(default_factory=SipRequest)
    ist: ServerInvite | None = None


@dataclass(eq=False, slots=True)
class _Outbound(_Dialog):
    headers: tuple[tuple[str, str], ...] = ()
    ict: ClientInvite | None = None
    provisional: bool = False
    cancel_wanted: bool = False
    cancel_sent: bool = False
    final_status: int | None = None
    ack: bytes | None = None
    answered: bool = False  # CallAnswered was emitted


_ServerKey = tuple[str, str, str]


class _Stateless:
    """Stands in for a server transaction when none is kept: the response is sent once."""

    def __init__(self, core: SipCore, address: Address) -> None:
        self.core = core
        self.address = address

    def respond(self, response: SipResponse) -> None:
        self.core.send(bytes(response), self.address)


_Answerer = ServerInvite | ServerNonInvite | _Stateless


class SipCore:
    """A SIP user agent's protocol logic on one UDP address.

    Args:
        host, port: the address in our Via and Contact (set ``port`` once the socket is bound).
        t1: the RFC 3261 round-trip estimate (0.5 s); every timer scales with it.
        user_agent: the User-Agent/Server header.
        max_transactions: non-INVITE server transactions kept at most (see "Bad input").
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        t1: float = 0.5,
        user_agent: str = "relaykit",
        max_transactions: int = 10_000,
    ) -> None:
        if not t1 > 0:
            raise ValueError("t1 must be positive")
        self.host = host
        self.port = port
        self.t1 = t1
        self.t2 = 8 * t1
        self.t4 = 10 * t1
        self.user_agent = user_agent
        self.max_transactions = max_transactions
        self.draining = False  # OPTIONS get 503: a balancer stops sending new calls here
        self.bad_requests = 0  # requests answered 400
        self.dropped = 0  # datagrams nothing could be answered to
        self._timers = Timers()
        self._server_tx: dict[Hashable, ServerInvite | ServerNonInvite] = {}
        self._non_invites = 0  # ServerNonInvite in _server_tx
        self._client_tx: dict[Hashable, ClientInvite | ClientNonInvite] = {}
        self._owner: dict[Transaction, _Dialog] = {}
        self._dialogs: dict[CallKey, _Dialog] = {}
        self._now = 0.0
        self._sends: list[Send] = []
        self._events: list[Event] = []

    # -- the Host of the transactions ------------------------------------------------------------
    def send(self, data: bytes, address: Address) -> None:
        self._sends.append(Send(data, address))

    def start_timer(self, owner: Transaction, name: str, delay: float) -> None:
        self._timers.start(owner, name, self._now + delay)

    def stop_timer(self, owner: Transaction, name: str) -> None:
        self._timers.stop(owner, name)

    def forget(self, tx: Transaction) -> None:
        self._timers.stop_all(tx)
        if isinstance(tx, ServerInvite | ServerNonInvite):
            if self._server_tx.pop(tx.key, None) is not None and isinstance(tx, ServerNonInvite):
                self._non_invites -= 1
        else:
            self._client_tx.pop(tx.key, None)
        dialog = self._owner.pop(tx, None)
        if dialog is not None and isinstance(tx, ServerInvite):
            for number, invite in list(dialog.invites.items()):
                if invite is tx:
                    del dialog.invites[number]

    # -- entry points ----------------------------------------------------------------------------
    def receive(self, data: bytes, source: Address, now: float) -> list[Output]:
        """One UDP datagram from ``source``."""
        self._begin(now)
        if not data.strip(b"\r\n \t\0"):
            if data.startswith(b"\r\n\r\n"):
                self.send(b"\r\n", source)  # RFC 5626 keep-alive pong
            return self._flush()
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self._malformed(exc, source)
            return self._flush()
        if isinstance(message, SipResponse):
            self._on_response(message)
        else:
            self._on_request(message, source)
        return self._flush()

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timers` is next due (None: no timer is armed)."""
        return self._timers.next_deadline()

    def handle_timers(self, now: float) -> list[Output]:
        """Fire every timer due at ``now``, earliest first."""
        self._begin(now)
        while (due := self._timers.pop_due(now)) is not None:
            tx, name = due
            dialog = self._owner.get(tx)
            notice = tx.fire(name)
            if notice is not None and dialog is not None:
                self._on_notice(tx, dialog, notice)
        return self._flush()

    def invite(
        self,
        to_uri: str,
        from_uri: str,
        sdp: bytes,
        peer: Address,
        *,
        from_name: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> CallKey:
        """Prepare an outbound call to ``peer`` (nothing is sent until :meth:`start_call`)."""
        key = CallKey(f"{secrets.token_hex(12)}@relaykit", _token())
        self._dialogs[key] = _Outbound(
            key,
            peer,
            local_uri=f'"{from_name}" <{from_uri}>' if from_name else f"<{from_uri}>",
            remote_uri=f"<{to_uri}>",
            remote_target=to_uri,
            local_sdp=sdp,
            headers=tuple(headers),
        )
        return key

    def start_call(self, key: CallKey, now: float) -> list[Output]:
        """Send the INVITE of a call :meth:`invite` prepared."""
        self._begin(now)
        dialog = self._dialogs.get(key)
        if isinstance(dialog, _Outbound) and dialog.ict is None:
            branch = _branch()
            request = SipRequest(
                headers=[
                    ("Via", self._via(branch)),
                    ("Max-Forwards", "70"),
                    ("From", f"{dialog.local_uri};tag={key.local_tag}"),
                    ("To", dialog.remote_uri),
                    ("Call-ID", key.call_id),
                    ("CSeq", "1 INVITE"),
                    ("Contact", self._contact()),
                    ("Allow", ALLOW),
                    ("User-Agent", self.user_agent),
                    *dialog.headers,
                    ("Content-Type", "application/sdp"),
                ],
                body=dialog.local_sdp,
                method="INVITE",
                uri=dialog.remote_target,
            )
            tx = ClientInvite(self, (branch, "INVITE"), dialog.peer, request)
            self._client_tx[(branch, "INVITE")] = tx
            self._owner[tx] = dialog
            dialog.ict = tx
            tx.start()
        return self._flush()

    def ring(self, key: CallKey, now: float) -> list[Output]:
        """180 Ringing (an inbound call without a final response; otherwise nothing)."""
        self._begin(now)
        dialog = self._pending_inbound(key)
        if dialog is not None and dialog.ist is not None:
            dialog.ist.respond(self._invite_response(dialog, 180))
        return self._flush()

    def answer(self, key: CallKey, sdp: bytes, now: float) -> list[Output]:
        """200 OK with ``sdp``, re-sent until the ACK (then :class:`AnswerAcked`)."""
        self._begin(now)
        dialog = self._pending_inbound(key)
        if dialog is not None and dialog.ist is not None:
            dialog.local_sdp = sdp
            dialog.state = DialogState.CONFIRMED
            response = self._invite_response(dialog, 200, sdp)
            dialog.ist.respond(response)
        return self._flush()

    def reject(
        self, key: CallKey, status: int, now: float, reason: str | None = None
    ) -> list[Output]:
        """A final error response (re-sent until its ACK); the call is over."""
        self._begin(now)
        dialog = self._pending_inbound(key)
        if dialog is not None:
            self._reject(dialog, status, reason)
        return self._flush()

    def hangup(self, key: CallKey, now: float, status: int = 603) -> list[Output]:
        """End a call from our side: BYE once answered; before that an inbound call is
        rejected with ``status`` and an outbound one cancelled."""
        self._begin(now)
        dialog = self._dialogs.get(key)
        if isinstance(dialog, _Inbound):
            if dialog.state is DialogState.CONFIRMED:
                if dialog.ist is not None and dialog.ist.state is State.ACCEPTED:
                    dialog.ist.stop()
                self._bye(dialog)
            elif (pending := self._pending_inbound(key)) is not None:
                self._reject(pending, status, None)
        elif isinstance(dialog, _Outbound):
            self._cancel(dialog)
        return self._flush()

    def cancel(self, key: CallKey, now: float) -> list[Output]:
        """Stop an outbound call: CANCEL once a provisional response came (BYE if answered)."""
        self._begin(now)
        dialog = self._dialogs.get(key)
        if isinstance(dialog, _Outbound):
            self._cancel(dialog)
        return self._flush()

    def call_state(self, key: CallKey) -> DialogState:
        dialog = self._dialogs.get(key)
        return DialogState.TERMINATED if dialog is None else dialog.state

    @property
    def calls(self) -> int:
        """Calls not yet terminated."""
        return len(self._dialogs)

    @property
    def transactions(self) -> int:
        return len(self._server_tx) + len(self._client_tx)

    def close(self, now: float) -> list[Output]:
        """Hang up every call (BYE, 603 or CANCEL, sent once) and forget all state."""
        self._begin(now)
        for dialog in list(self._dialogs.values()):
            if isinstance(dialog, _Outbound):
                self._cancel(dialog)
            elif dialog.state is DialogState.CONFIRMED:
                self._bye(dialog)
            elif isinstance(dialog, _Inbound) and self._pending_inbound(dialog.key) is not None:
                self._reject(dialog, 603, None)
        self._dialogs.clear()
        self._server_tx.clear()
        self._non_invites = 0
        self._client_tx.clear()
        self._owner.clear()
        self._timers.clear()
        return self._flush()

    # -- plumbing --------------------------------------------------------------------------------
    def _begin(self, now: float) -> None:
        self._now = now
        self._sends = []
        self._events = []

    def _flush(self) -> list[Output]:
        out: list[Output] = [*self._sends, *self._events]
        self._sends = []
        self._events = []
        return out

    def _via(self, branch: str) -> str:
        return f"SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport"

    def _contact(self) -> str:
        return f"<sip:relaykit@{self.host}:{self.port}>"

    def _response(
        self,
        request: SipRequest,
        status: int,
        address: Address,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> SipResponse:
        """A response to ``request`` (§8.2.6.2): Via (bounded), From, To (+tag), Call-ID and
        CSeq copied; the top Via stamped with where the request came from."""
        copied = [("Via", v) for v in _vias_to_copy(request)]
        if copied:
            copied[0] = ("Via", _stamp_via(copied[0][1], address))
        for name in ("From", "To", "Call-ID", "CSeq"):
            value = request.get(name)
            if value is None:
                continue
            if name == "To" and to_tag and status > 100 and not _tag_of(value):
                value = f"{value};tag={to_tag}"
            copied.append((name, value))
        copied.append(("Server", self.user_agent))
        copied += headers
        return SipResponse(
            headers=copied, body=body, status=status, reason=reason or reason_phrase(status)
        )

    def _invite_response(
        self, dialog: _Inbound, status: int, sdp: bytes = b"", reason: str | None = None
    ) -> SipResponse:
        extra: list[tuple[str, str]] = []
        if 200 <= status < 300:
            extra += [("Contact", self._contact()), ("Allow", ALLOW)]
            extra += [("Record-Route", r) for r in dialog.route_set]
            extra.append(("Content-Type", "application/sdp"))
        return self._response(
            dialog.invite,
            status,
            dialog.peer,
            reason,
            to_tag=dialog.key.local_tag,
            headers=extra,
            body=sdp,
        )

    def _in_dialog_request(self, dialog: _Dialog, method: str) -> SipRequest:
        dialog.local_cseq += 1
        remote = dialog.remote_uri
        return SipRequest(
            headers=[
                ("Via", self._via(_branch())),
                ("Max-Forwards", "70"),
                ("From", f"{dialog.local_uri};tag={dialog.key.local_tag}"),
                ("To", f"{remote};tag={dialog.remote_tag}" if dialog.remote_tag else remote),
                ("Call-ID", dialog.key.call_id),
                ("CSeq", f"{dialog.local_cseq} {method}"),
                *[("Route", r) for r in dialog.route_set],
                ("User-Agent", self.user_agent),
            ],
            method=method,
            uri=dialog.remote_target,
        )

    def _request_out(self, request: SipRequest, address: Address) -> None:
        """Send a non-INVITE request, re-sent until its final response."""
        branch = parse_via(request.get_all("Via")[0]).branch
        tx = ClientNonInvite(self, (branch, request.method), address, request)
        self._client_tx[(branch, request.method)] = tx
        tx.start()

    def _terminate(self, dialog: _Dialog) -> None:
        dialog.state = DialogState.TERMINATED
        self._dialogs.pop(dialog.key, None)

    def _ended(self, dialog: _Dialog, reason: str) -> None:
        if dialog.state is not DialogState.TERMINATED:
            self._terminate(dialog)
            self._events.append(CallEnded(dialog.key, reason))

    def _bye(self, dialog: _Dialog) -> None:
        """Send BYE (once); the dialog ends now, whatever the far end answers."""
        if not dialog.bye_sent:
            dialog.bye_sent = True
            self._request_out(self._in_dialog_request(dialog, "BYE"), dialog.peer)
        self._terminate(dialog)

    def _reject(self, dialog: _Inbound, status: int, reason: str | None) -> None:
        if not 300 <= status <= 699:
            raise ValueError(f"a rejection is a 3xx-6xx status, not {status}")
        assert dialog.ist is not None
        dialog.ist.respond(self._invite_response(dialog, status, reason=reason))
        self._terminate(dialog)

    def _pending_inbound(self, key: CallKey) -> _Inbound | None:
        """The inbound call ``key`` if it has no final response yet."""
        dialog = self._dialogs.get(key)
        if (
            isinstance(dialog, _Inbound)
            and dialog.ist is not None
            and dialog.ist.state is State.PROCEEDING
        ):
            return dialog
        return None

    # -- requests --------------------------------------------------------------------------------
    def _malformed(self, exc: SipParseError, source: Address) -> None:
        request = exc.request
        if request is None or request.method == "ACK" or not _fits(request):
            self.dropped += 1
            log.debug("! unanswerable SIP from %s: %s", source, exc)
            return
        self.bad_requests += 1
        log.debug("! bad SIP request from %s: %s", source, exc)
        reason = f"Bad Request ({exc})"[:120].replace("\r", " ").replace("\n", " ")
        self.send(bytes(self._response(request, 400, source, reason)), source)

    def _on_request(self, request: SipRequest, source: Address) -> None:
        if not _fits(request):
            self.dropped += 1
            return
        method = request.method
        if not _vias_bounded(request.get_all("Via")):
            if method == "ACK":
                self.dropped += 1
                return
            self.bad_requests += 1
            reason = "Bad Request (Via list too long)"
            self.send(bytes(self._response(request, 400, source, reason)), source)
            return
        key = _server_key(request)
        if method == "ACK":
            self._on_ack(request, key)
            return
        known = self._server_tx.get(key)
        if known is not None:
            known.received_again()
            return
        tx: _Answerer
        if method == "INVITE":
            tx = ServerInvite(self, key, source)
        elif self._non_invites < self.max_transactions:
            tx = ServerNonInvite(self, key, source)
        else:
            tx = _Stateless(self, source)
        self._dispatch(request, key, tx, source)
        if not isinstance(tx, _Stateless) and tx.state is not State.TERMINATED:
            self._server_tx[key] = tx  # kept once answered: retransmissions get the answer
            self._non_invites += isinstance(tx, ServerNonInvite)

    def _dispatch(
        self, request: SipRequest, key: _ServerKey, tx: _Answerer, source: Address
    ) -> None:
        method = request.method
        if method != "CANCEL" and (require := request.get("Require")) is not None:
            headers = [("Unsupported", require)]
            tx.respond(self._response(request, 420, source, headers=headers))
            return
        if method == "INVITE":
            self._on_invite(request, tx, source)
        elif method == "CANCEL":
            self._on_cancel(request, key, tx, source)
        elif method == "BYE":
            self._on_bye(request, tx, source)
        elif method == "INFO":
            self._on_info(request, tx, source)
        elif method == "OPTIONS":
            if self.draining:
                tx.respond(self._response(request, 503, source))
            else:
                extra = [("Allow", ALLOW), ("Accept", "application/sdp"), ("Supported", "")]
                tx.respond(self._response(request, 200, source, headers=extra))
        elif method == "REGISTER":
            extra = [("Expires", request.get("Expires") or "3600")]
            extra += [("Contact", c) for c in request.get_all("Contact")]
            tx.respond(self._response(request, 200, source, to_tag=_token(), headers=extra))
        else:
            tx.respond(self._response(request, 405, source, headers=[("Allow", ALLOW)]))

    def _dialog_of(self, request: SipRequest) -> _Dialog | None:
        to_tag = _tag_of(request.get("To") or "")
        return self._dialogs.get(CallKey(request.call_id, to_tag)) if to_tag else None

    def _in_order(self, request: SipRequest, dialog: _Dialog, tx: _Answerer) -> bool:
        """§12.2.2: a request with a lower CSeq than the last one gets 500."""
        number, _ = request.cseq
        if number < dialog.remote_cseq:
            tx.respond(self._response(request, 500, tx.address, "Server Internal Error (CSeq)"))
            return False
        dialog.remote_cseq = number
        return True

    def _on_invite(self, request: SipRequest, tx: _Answerer, source: Address) -> None:
        if _tag_of(request.get("To") or ""):
            self._on_reinvite(request, tx, source)
            return
        assert isinstance(tx, ServerInvite)  # a new INVITE without room gets 503 above
        contact = request.get("Contact")
        try:
            frm = parse_name_addr(request.get("From") or "")
            to = parse_name_addr(request.get("To") or "")
            target = _target(contact) if contact else frm.uri
        except SipParseError as exc:
            self.bad_requests += 1
            tx.respond(self._response(request, 400, source, f"Bad Request ({exc})"[:120]))
            return
        route_set = request.get_all("Record-Route")  # bounded by _fits
        key = CallKey(request.call_id, _token())
        number, _ = request.cseq
        dialog = _Inbound(
            key,
            source,
            local_uri=_without_tag(request.get("To") or ""),
            remote_uri=_without_tag(request.get("From") or ""),
            remote_target=target,
            remote_tag=frm.tag,
            route_set=route_set,
            remote_cseq=number,
            invite=request,
            ist=tx,
        )
        self._dialogs[key] = dialog
        self._owner[tx] = dialog
        dialog.invites[number] = tx
        tx.respond(self._response(request, 100, source))
        self._events.append(IncomingCall(key, request.uri, frm.uri, to.uri, request.body, source))

    def _on_reinvite(self, request: SipRequest, tx: _Answerer, source: Address) -> None:
        dialog = self._dialog_of(request)
        if dialog is None:
            tx.respond(self._response(request, 481, source))
            return
        if not self._in_order(request, dialog, tx):
            return
        if dialog.state is not DialogState.CONFIRMED:
            # §14.2: our INVITE (491) or our answer to theirs (500) is still pending
            if isinstance(dialog, _Outbound):
                tx.respond(self._response(request, 491, source))
            else:
                tx.respond(self._response(request, 500, source, headers=[("Retry-After", "1")]))
            return
        # hold or session refresh: keep our media, answer with the same SDP
        response = self._response(
            request,
            200,
            source,
            headers=[("Contact", self._contact()), ("Content-Type", "application/sdp")],
            body=dialog.local_sdp,
        )
        if isinstance(tx, ServerInvite):
            self._owner[tx] = dialog
            dialog.invites[request.cseq[0]] = tx
        tx.respond(response)

    def _on_ack(self, request: SipRequest, key: _ServerKey) -> None:
        """ACK of a final error (same branch as the INVITE) or of a 2xx (in the dialog)."""
        tx = self._server_tx.get(key)
        if not isinstance(tx, ServerInvite):
            dialog = self._dialog_of(request)
            tx = dialog.invites.get(request.cseq[0]) if dialog is not None else None
        if tx is None:
            return  # a stray ACK is never answered
        dialog = self._owner.get(tx)
        if tx.ack() and isinstance(dialog, _Inbound) and dialog.ist is tx:
            self._events.append(AnswerAcked(dialog.key))

    def _on_cancel(
        self,
        request: SipRequest,
        key: _ServerKey,
        tx: _Answerer,
        source: Address,
    ) -> None:
        ist = self._server_tx.get((key[0], key[1], "INVITE"))
        if not isinstance(ist, ServerInvite):
            tx.respond(self._response(request, 481, source))
            return
        tx.respond(self._response(request, 200, source))
        dialog = self._owner.get(ist)
        if ist.state is State.PROCEEDING and isinstance(dialog, _Inbound):
            ist.respond(self._invite_response(dialog, 487))
            self._ended(dialog, "cancel")

    def _on_bye(self, request: SipRequest, tx: _Answerer, source: Address) -> None:
        dialog = self._dialog_of(request)
        if dialog is None:
            tx.respond(self._response(request, 481, source))
            return
        if not self._in_order(request, dialog, tx):
            return
        tx.respond(self._response(request, 200, source))
        if isinstance(dialog, _Inbound) and (ist := dialog.ist) is not None:
            if ist.state is State.PROCEEDING:  # §15.1.2: BYE in an early dialog
                ist.respond(self._invite_response(dialog, 487))
            elif ist.state is State.ACCEPTED:
                ist.stop()
        self._ended(dialog, "hangup")

    def _on_info(self, request: SipRequest, tx: _Answerer, source: Address) -> None:
        dialog = self._dialog_of(request)
        if dialog is None:
            tx.respond(self._response(request, 481, source))
            return
        if not self._in_order(request, dialog, tx):
            return
        kind = (request.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind and kind not in ("application/dtmf-relay", "application/dtmf"):
            tx.respond(self._response(request, 415, source))
            return
        tx.respond(self._response(request, 200, source))
        key = _info_key(request.body.decode("utf-8", "replace"), kind)
        if key is not None:
            self._events.append(KeyPressed(dialog.key, key))

    # -- responses and timers --------------------------------------------------------------------
    def _on_response(self, response: SipResponse) -> None:
        _, method = response.cseq
        tx = self._client_tx.get((response.branch, method))
        if isinstance(tx, ClientInvite):
            dialog = self._owner.get(tx)
            if tx.receive(response) and isinstance(dialog, _Outbound):
                self._on_invite_response(dialog, response)
        elif tx is not None:
            tx.receive(response)  # BYE/CANCEL: the outcome changes nothing
        # no transaction: a stray or late response, ignored

    def _on_invite_response(self, dialog: _Outbound, response: SipResponse) -> None:
        status = response.status
        if status < 200:
            if not dialog.provisional:
                dialog.provisional = True
                if dialog.cancel_wanted:
                    self._send_cancel(dialog)
            if status > 100 and not dialog.cancel_wanted:
                self._events.append(CallProgress(dialog.key, status))
            return
        if status >= 300:
            if dialog.final_status is None:  # the transaction sent the ACK
                self._fail(dialog, status, response.reason)
            return
        if dialog.final_status is None:
            dialog.final_status = status
            dialog.remote_tag = _tag_of(response.get("To") or "")
            contact = response.get("Contact")
            if contact:
                with contextlib.suppress(SipParseError):  # else the request URI stays
                    dialog.remote_target = _target(contact)
            dialog.route_set = list(reversed(response.get_all("Record-Route")))[:MAX_VIAS]
            if dialog.state is DialogState.EARLY:
                dialog.state = DialogState.CONFIRMED
            dialog.ack = bytes(self._ack_2xx(dialog))
        if dialog.ack is not None:
            self.send(dialog.ack, dialog.peer)  # again for each retransmitted 2xx
        if dialog.cancel_wanted and not dialog.bye_sent:
            self._bye(dialog)  # answered while we were cancelling: ACK, then BYE
        elif not dialog.bye_sent and not dialog.answered and dialog.state is DialogState.CONFIRMED:
            dialog.answered = True
            self._events.append(CallAnswered(dialog.key, response.body))

    def _ack_2xx(self, dialog: _Outbound) -> SipRequest:
        """The ACK of a 2xx (§13.2.2.4): a new transaction, CSeq number of the INVITE."""
        return SipRequest(
            headers=[
                ("Via", self._via(_branch())),
                ("Max-Forwards", "70"),
                ("From", f"{dialog.local_uri};tag={dialog.key.local_tag}"),
                ("To", f"{dialog.remote_uri};tag={dialog.remote_tag}"),
                ("Call-ID", dialog.key.call_id),
                ("CSeq", "1 ACK"),
                *[("Route", r) for r in dialog.route_set],
            ],
            method="ACK",
            uri=dialog.remote_target,
        )

    def _cancel(self, dialog: _Outbound) -> None:
        if dialog.state is DialogState.TERMINATED:
            return
        if dialog.final_status is not None:
            if dialog.state is DialogState.CONFIRMED:
                self._bye(dialog)
            return
        if dialog.ict is None:  # never started
            self._terminate(dialog)
            return
        dialog.cancel_wanted = True
        if dialog.provisional:
            self._send_cancel(dialog)

    def _send_cancel(self, dialog: _Outbound) -> None:
        """CANCEL (§9.1): the INVITE's Via, From, To, Call-ID and CSeq number."""
        if dialog.cancel_sent or dialog.ict is None or dialog.ict.state is not State.PROCEEDING:
            return
        dialog.cancel_sent = True
        invite = dialog.ict.request
        request = SipRequest(
            headers=[
                ("Via", invite.get_all("Via")[0]),
                ("Max-Forwards", "70"),
                ("From", invite.get("From") or ""),
                ("To", invite.get("To") or ""),
                ("Call-ID", invite.call_id),
                ("CSeq", "1 CANCEL"),
                ("User-Agent", self.user_agent),
            ],
            method="CANCEL",
            uri=invite.uri,
        )
        self._request_out(request, dialog.peer)
        dialog.ict.cancel_sent()

    def _fail(self, dialog: _Outbound, status: int, reason: str) -> None:
        dialog.final_status = status
        self._terminate(dialog)
        self._events.append(CallFailed(dialog.key, status, reason))

    def _on_notice(self, tx: Transaction, dialog: _Dialog, notice: Notice) -> None:
        if notice is Notice.TIMEOUT and isinstance(dialog, _Outbound):
            if dialog.final_status is None and dialog.state is not DialogState.TERMINATED:
                self._fail(dialog, 408, "Request Timeout")
        elif (
            notice is Notice.NO_ACK
            and isinstance(dialog, _Inbound)
            and tx is dialog.ist
            and dialog.state is DialogState.CONFIRMED
        ):
            log.info("! no ACK for the 200 OK of %s; hanging up", dialog.key.call_id)
            self._bye(dialog)
            self._events.append(CallEnded(dialog.key, "error"))


# -- helpers --------------------------------------------------------------------------------------
def _token() -> str:
    return secrets.token_hex(6)


def _branch() -> str:
    return _MAGIC + secrets.token_hex(8)


def _tag_of(value: str) -> str:
    try:
        return parse_name_addr(value).tag
    except SipParseError:
        return ""


def _target(contact: str) -> str:
    """The URI of a Contact, to be our Request-URI: it must parse and hold no whitespace."""
    uri = parse_name_addr(contact).uri
    parse_uri(uri)
    if any(c.isspace() for c in uri):
        raise SipParseError(f"whitespace in Contact URI {uri[:60]!r}")
    return uri


def _vias_bounded(values: list[str]) -> bool:
    return len(values) <= MAX_VIAS and sum(len(v) for v in values) <= MAX_VIA_BYTES


def _vias_to_copy(request: SipRequest) -> list[str]:
    vias = request.get_all("Via")
    return vias if _vias_bounded(vias) else vias[:1]


def _fits(request: SipRequest) -> bool:
    """Whether what our responses copy from ``request`` stays within MAX_COPIED_BYTES."""
    echoed = [*_vias_to_copy(request)]
    echoed += [request.get(name) or "" for name in ("From", "To", "Call-ID", "CSeq", "Require")]
    if request.method == "INVITE":
        echoed += request.get_all("Record-Route")  # into the 2xx, and our route set
    elif request.method == "REGISTER":
        echoed += request.get_all("Contact")  # into the 200
    return sum(len(value) for value in echoed) <= MAX_COPIED_BYTES


def _server_key(request: SipRequest) -> _ServerKey:
    """§17.2.3: branch, sent-by and method (an ACK matches its INVITE). Without the RFC 3261
    magic cookie the branch is not unique, so Call-ID, From tag, CSeq and the Via stand in."""
    top = request.get_all("Via")[0]
    via = parse_via(top)  # the parser checked it
    method = "INVITE" if request.method == "ACK" else request.method
    if via.branch.startswith(_MAGIC):
        return via.branch, f"{via.host}:{via.port or ''}", method
    number, _ = request.cseq
    from_tag = _tag_of(request.get("From") or "")
    return f"{request.call_id}|{from_tag}|{number}|{top}", "", method


def _stamp_via(via: str, source: Address) -> str:
    """The top Via of a response: ``received`` when the request came from elsewhere than its
    sent-by (§18.2.1), ``rport`` filled in when the client asked for it (RFC 3581)."""
    try:
        parsed = parse_via(via)
    except SipParseError:
        return via  # a 400 copies a bad Via as it is
    ip, port = source
    params = via.split(";")
    wants_rport = "rport" in parsed.params and not parsed.params["rport"]
    if wants_rport:
        params = [f"rport={port}" if p.strip().lower() == "rport" else p for p in params]
    if "received" not in parsed.params and (wants_rport or parsed.host != ip):
        params.append(f"received={ip}")
    return ";".join(params)


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
            return key if len(key) == 1 and key in _KEYS else None
    text = body.strip().upper()
    if kind == "application/dtmf" and len(text) == 1 and text in _KEYS:
        return text
    return None
