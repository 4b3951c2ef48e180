"""The SIP gateway: real phones in and out of a :class:`RelayServer`.

Inbound
    An INVITE to a routed number (``routes``: dialled user part or URI → RELAY context) gets
    180 Ringing and is offered to a consumer of that context with ``calling.call.receive``
    (as a phone device: ``from_number``/``to_number`` are the SIP user parts, so both SDKs
    take it). ``calling.answer`` sends 200 OK; media flows once answered. A BYE from the
    phone ends the call with ``end_reason`` ``hangup``, a CANCEL before the answer with
    ``cancel``, a missing ACK with ``error``. The IVR's ``calling.end`` sends BYE (or, before
    the answer, a final response that matches the reason: busy → 486, noAnswer → 480,
    decline/hangup → 603, error → 500). Unrouted numbers get 404, unusable SDP 488, and no
    consumer within ``offer_timeout`` 480; a draining node (``ua.draining``) answers 503.

Outbound
    ``calling.begin`` (one device), ``calling.dial`` and ``calling.connect`` (``devices``:
    groups tried in series, the devices of a group in parallel, by the call service) place
    SIP calls to ``sip`` devices
    (``{"type":"sip","params":{"to":"sip:…","from":"sip:…","timeout":30}}``). State events
    carry the request's ``tag`` and the device: ``created``, ``ringing`` (180/183),
    ``answered`` (2xx), then ``ending``/``ended``; a failure ends the call with busy
    (486/600), decline (603), noAnswer (408/480/487 or the device timeout) or error. A call
    placed by a connect carries its A leg as ``peer``, and once answered its audio is
    bridged to it.
"""

from __future__ import annotations

__all__ = ["SipDevice", "SipGateway", "parse_routes"]

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..calls import Call, CallService, CallState, EventSink
from ..errors import ProtocolError, RelayTimeoutError
from ..protocol.calling import Device
from .g711 import ALAW, ULAW
from .leg import RtpHub, RtpLeg
from .message import SipParseError, parse_uri
from .sdp import Negotiated, SdpError, build_sdp, negotiate, parse_sdp
from .ua import InboundCall, OutboundCall, SipUserAgent

log = logging.getLogger("relaykit.sip")

OUR_TELEPHONE_EVENT = 101
_REJECT_STATUS = {"busy": 486, "noAnswer": 480, "decline": 603, "hangup": 603, "error": 500}


def _end_reason(status: int) -> str:
    if status in (486, 600):
        return "busy"
    if status == 603:
        return "decline"
    if status in (408, 480, 487):
        return "noAnswer"
    return "error"


@dataclass(frozen=True, slots=True)
class SipDevice:
    """A RELAY ``sip`` device to call: URIs, ring timeout, extra X- headers, display name."""

    to: str
    from_: str
    timeout: float = 30.0
    headers: tuple[tuple[str, str], ...] = ()
    from_name: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"type": "sip", "params": {"from": self.from_, "to": self.to}}

    @classmethod
    def from_device(cls, device: Device) -> SipDevice:
        """Validate a RELAY ``sip`` device's params. Raises ProtocolError naming the field."""
        path = device.field
        if device.type != "sip":
            raise ProtocolError('only "sip" devices can be dialled here', field=f"{path}.type")
        params = device.params
        to = params.get("to")
        frm = params.get("from", "sip:relaykit@localhost")
        for name, value in (("to", to), ("from", frm)):
            if not isinstance(value, str):
                raise ProtocolError("must be a sip: URI", field=f"{path}.params.{name}")
            try:
                uri = parse_uri(value)
            except SipParseError:
                raise ProtocolError("must be a sip: URI", field=f"{path}.params.{name}") from None
            if uri.scheme not in ("sip",):
                raise ProtocolError("must be a sip: URI", field=f"{path}.params.{name}")
        timeout = params.get("timeout", 30)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= 600
        ):
            raise ProtocolError(
                "must be a number of seconds (0-600]", field=f"{path}.params.timeout"
            )
        headers: list[tuple[str, str]] = []
        raw_headers = params.get("headers", [])
        if not isinstance(raw_headers, list):
            raise ProtocolError("must be a list", field=f"{path}.params.headers")
        for i, header in enumerate(raw_headers):
            header_name = header.get("name") if isinstance(header, Mapping) else None
            header_value = header.get("value") if isinstance(header, Mapping) else None
            if (
                not isinstance(header_name, str)
                or not isinstance(header_value, str)
                or not header_name.startswith("X-")
                or any(c in header_name + header_value for c in "\r\n")
            ):
                raise ProtocolError(
                    "must be {name: 'X-…', value: '…'}", field=f"{path}.params.headers[{i}]"
                )
            headers.append((header_name, header_value))
        from_name = params.get("from_name")
        if from_name is not None and (not isinstance(from_name, str) or '"' in from_name):
            raise ProtocolError("must be a plain string", field=f"{path}.params.from_name")
        assert isinstance(to, str) and isinstance(frm, str)
        return cls(to, frm, float(timeout), tuple(headers), from_name)


def parse_routes(routes: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    """``{"+15559870000": "office"}`` or ``["+15559870000=office", "*=support"]``."""
    if isinstance(routes, Mapping):
        items = list(routes.items())
    else:
        items = []
        for text in routes:
            number, sep, context = text.partition("=")
            if not sep or not number.strip() or not context.strip():
                raise ValueError(f"a route is NUMBER=CONTEXT, not {text!r}")
            items.append((number.strip(), context.strip()))
    return {k: v for k, v in items}


@dataclass(eq=False, slots=True)
class _SipCall:
    """What the gateway keeps per call; the call's far end (its :class:`~relaykit.calls.Leg`)."""

    gateway: SipGateway
    rtp: RtpLeg
    call: Call | None = None
    inbound: InboundCall | None = None
    outbound: OutboundCall | None = None
    negotiated: Negotiated | None = None
    remote_media: tuple[str, int] | None = None
    signalling_ip: str | None = None  # where the peer's SIP comes from (RTP latching)
    device: SipDevice | None = None
    ended_by_peer: bool = False
    closed: bool = False
    timer: asyncio.TimerHandle | None = None

    def answered(self, call: Call) -> None:
        """``calling.answer`` on an inbound SIP call: 200 OK with our SDP, media starts."""
        if self.inbound is None or self.negotiated is None:
            return
        te = self.negotiated.telephone_event
        sdp = build_sdp(self.gateway.host, self.rtp.port, (self.negotiated.codec,), te)
        self.inbound.answer(sdp)
        self.gateway.start_media(self)

    def ended(self, call: Call, reason: str) -> None:
        """The call ends (either side): hang up the SIP side unless it ended it, free the RTP."""
        if self.closed:
            return
        self.closed = True
        self.gateway.calls.pop(call.call_id, None)
        if self.timer is not None:
            self.timer.cancel()
        self.rtp.close()
        if self.ended_by_peer:
            return
        if self.inbound is not None:
            self.inbound.hangup(_REJECT_STATUS.get(reason, 603))
        elif self.outbound is not None:
            self.outbound.hangup()


class SipGateway:
    """Real phones as the far end of calls: an adapter on the call interface.

    Args:
        service: the call service the calls run on.
        host, port: the SIP (and RTP) address; port 0 picks a free one.
        routes: dialled number or URI → context (``"project/context"`` picks the project when
            the server has several); ``"*"`` matches any number.
        projects: the server's projects (a route without ``project/`` needs exactly one).
        offer_timeout: seconds an INVITE waits for a consumer of its context (then 480).
        t1: SIP timer T1.

    It is also the call service's dialer for ``sip`` devices (``calling.begin``/``dial``).
    """

    def __init__(
        self,
        service: CallService,
        host: str = "127.0.0.1",
        port: int = 5060,
        routes: Mapping[str, str] | Iterable[str] = (),
        *,
        projects: Sequence[str] = (),
        offer_timeout: float = 5.0,
        t1: float = 0.5,
    ) -> None:
        self.service = service
        self.host = host
        self.routes = parse_routes(routes)
        self.projects = list(projects)
        self.offer_timeout = offer_timeout
        self.ua = SipUserAgent(host, port, on_invite=self._on_invite, t1=t1)
        self.hub = RtpHub(service.engine)
        self.calls: dict[str, _SipCall] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        return self.ua.port

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}"

    async def start(self) -> None:
        await self.ua.start()
        await self.hub.start()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.ua.close()
        await self.hub.stop()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- routing -----------------------------------------------------------------------------
    def route(self, request_uri: str, to_uri: str) -> tuple[str, str] | None:
        """(project, context) for a dialled URI, or None."""
        candidates: list[str] = []
        for text in (request_uri, to_uri):  # the To URI only when the request URI has no user
            try:
                uri = parse_uri(text)
            except SipParseError:
                continue
            candidates += [uri.user, f"{uri.scheme}:{uri.user}@{uri.host}", text]
            if uri.user:
                break
        candidates.append("*")
        for key in candidates:
            target = self.routes.get(key)
            if target is None:
                continue
            project, sep, context = target.rpartition("/")
            if not sep:
                if len(self.projects) != 1:
                    log.warning("! route %s=%s needs project/context", key, target)
                    return None
                project = self.projects[0]
            return project, context
        return None

    # -- inbound -----------------------------------------------------------------------------
    def _on_invite(self, invite: InboundCall) -> None:
        self._spawn(self._offer(invite))

    async def _offer(self, invite: InboundCall) -> None:
        if self.ua.draining:
            invite.reject(503)  # a proxy in front tries the next node
            return
        target = self.route(invite.request_uri, invite.to_uri)
        if target is None:
            invite.reject(404)
            return
        try:
            offer = parse_sdp(invite.offer)
            negotiated = negotiate(offer)
        except SdpError as exc:
            log.info("! %s: %s", invite.call_id, exc)
            invite.reject(488)
            return
        rtp = await RtpLeg.open(self.hub, self.host)
        invite.ring()
        invite.on_end = lambda reason: None  # a CANCEL while we wait ends the INVITE only
        project, context = target
        state = _SipCall(self, rtp, inbound=invite, negotiated=negotiated)
        state.remote_media = (offer.address, offer.port)
        state.signalling_ip = invite.source[0]
        try:
            call = await self.service.offer(
                project=project,
                context=context,
                from_number=_user(invite.from_uri),
                to_number=_user(invite.to_uri),
                timeout=self.offer_timeout,
                leg=state,
                via="sip",
            )
        except Exception as exc:  # no consumer in time (RelayTimeoutError) or a limit
            if not isinstance(exc, RelayTimeoutError):
                log.exception("! offering a SIP call failed")
            rtp.close()
            invite.reject(480)
            return
        state.call = call
        self.calls[call.call_id] = state
        invite.on_end = lambda reason: self._peer_ended(state, reason)
        invite.on_key = lambda key: self.service.inject_key(call, key)
        if invite.ended:  # cancelled while the offer was on its way
            self._peer_ended(state, "cancel")

    def _peer_ended(self, state: _SipCall, reason: str) -> None:
        state.ended_by_peer = True
        if state.call is not None:
            self.service.far_end_hung_up(state.call, reason)

    def start_media(self, state: _SipCall) -> None:
        assert state.call is not None
        assert state.negotiated is not None and state.remote_media is not None
        call = state.call
        state.rtp.start(
            call.media,
            state.negotiated.codec,
            state.negotiated.telephone_event,
            state.remote_media,
            on_key=lambda key: self.service.inject_key(call, key),
            signalling_ip=state.signalling_ip,
        )

    # -- outbound (the dialer of sip devices) -----------------------------------------------
    def check(self, device: Device) -> None:
        """Raise ProtocolError naming the field when ``device`` is not a valid sip device."""
        SipDevice.from_device(device)

    async def begin(
        self,
        project: str,
        owner: EventSink,
        tag: str | None,
        device: Device,
        *,
        context: str = "",
        peer: Call | None = None,
    ) -> Call:
        """Place one SIP call; returns once the INVITE is sent (states follow as events)."""
        sip_device = SipDevice.from_device(device)
        state = await self._begin(project, owner, tag, sip_device, context, peer)
        assert state.call is not None
        return state.call

    async def _begin(
        self,
        project: str,
        owner: EventSink,
        tag: str | None,
        device: SipDevice,
        context: str,
        peer: Call | None,
    ) -> _SipCall:
        rtp = await RtpLeg.open(self.hub, self.host)
        offer = build_sdp(self.host, rtp.port, (ULAW, ALAW), OUR_TELEPHONE_EVENT)
        try:
            out = await self.ua.invite(
                device.to,
                device.from_,
                offer,
                from_name=device.from_name,
                headers=list(device.headers),
            )
        except OSError as exc:
            rtp.close()
            raise ProtocolError(f"cannot resolve {device.to!r}: {exc}", field="device") from None
        state = _SipCall(self, rtp, outbound=out, device=device)
        with contextlib.suppress(SipParseError):
            state.signalling_ip = parse_uri(device.to).address()[0]
        call = self.service.create_outbound(
            project=project,
            owner=owner,
            context=context,
            from_number=device.from_,
            to_number=device.to,
            leg=state,
            tag=tag,
            device=device.to_wire(),
            via="sip",
            peer=peer,
        )
        state.call = call
        self.calls[call.call_id] = state
        out.on_progress = lambda status: self.service.far_end_ringing(call)
        out.on_answer = lambda sdp: self._answered(state, sdp)
        out.on_fail = lambda status, reason: self._failed(state, status)
        out.on_end = lambda reason: self._peer_ended(state, reason)
        out.on_key = lambda key: self.service.inject_key(call, key)
        loop = asyncio.get_running_loop()
        state.timer = loop.call_later(device.timeout, self._timed_out, state)
        out.start()
        return state

    def _answered(self, state: _SipCall, sdp: bytes) -> None:
        call = state.call
        assert call is not None
        if call.ended:
            return
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        try:
            answer = parse_sdp(sdp)
            state.negotiated = negotiate(answer)
        except SdpError as exc:
            log.info("! %s: unusable SDP answer: %s", call.call_id, exc)
            self.service.end_call(call, "error")
            return
        state.remote_media = (answer.address, answer.port)
        self.start_media(state)
        self.service.far_end_answered(call)

    def _failed(self, state: _SipCall, status: int) -> None:
        state.ended_by_peer = True
        if state.call is not None:
            self.service.far_end_hung_up(state.call, _end_reason(status))

    def _timed_out(self, state: _SipCall) -> None:
        state.timer = None
        call = state.call
        if call is not None and call.state in (CallState.CREATED, CallState.RINGING):
            self.service.end_call(call, "noAnswer")


def _user(uri: str) -> str:
    """The user part of a SIP URI (the number), or the whole URI if it has none."""
    try:
        parsed = parse_uri(uri)
    except SipParseError:
        return uri
    return parsed.user or uri
