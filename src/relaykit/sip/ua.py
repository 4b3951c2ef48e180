"""A SIP user agent on one asyncio UDP socket: the thin shell around :class:`.core.SipCore`.

It feeds datagrams and the loop's clock into the core, sends what the core returns, keeps one
timer handle on the core's next deadline, and turns the core's events into the callbacks of
:class:`InboundCall` and :class:`OutboundCall`. What SIP it speaks, and how it treats bad
input, is in :mod:`.core` and :mod:`.transaction`.
"""

from __future__ import annotations

__all__ = ["DialogState", "InboundCall", "OutboundCall", "SipUserAgent"]

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Any

from .core import DialogState, SipCore
from .events import (
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
from .message import parse_uri

log = logging.getLogger("relaykit.sip")


class _Call:
    """What both kinds of call share: the key into the core, state and the common callbacks."""

    def __init__(self, ua: SipUserAgent, key: CallKey) -> None:
        self._ua = ua
        self._key = key
        self.call_id = key.call_id
        self.on_end: Callable[[str], None] | None = None
        self.on_key: Callable[[str], None] | None = None

    @property
    def state(self) -> DialogState:
        return self._ua.core.call_state(self._key)

    @property
    def ended(self) -> bool:
        return self.state is DialogState.TERMINATED


class InboundCall(_Call):
    """The UAS side of an INVITE. Set ``on_end`` (``"cancel"``, ``"hangup"``, ``"error"``),
    ``on_key`` (INFO keys) and ``on_ack``.

    ``on_end`` is called only for ends the far end (or a timeout) caused; the application's
    own :meth:`reject`/:meth:`hangup` do not call it.
    """

    def __init__(self, ua: SipUserAgent, event: IncomingCall) -> None:
        super().__init__(ua, event.call)
        self.request_uri = event.request_uri
        self.from_uri = event.from_uri
        self.to_uri = event.to_uri
        self.offer = event.offer
        self.source = event.source
        self.on_ack: Callable[[], None] | None = None

    def ring(self) -> None:
        self._ua._run(self._ua.core.ring(self._key, self._ua.now()))

    def answer(self, sdp: bytes) -> None:
        """Send 200 OK with ``sdp``; re-sent until the ACK (then ``on_ack``)."""
        self._ua._run(self._ua.core.answer(self._key, sdp, self._ua.now()))

    def reject(self, status: int, reason: str | None = None) -> None:
        """Send a final error response (re-sent until its ACK); the call is over."""
        self._ua._run(self._ua.core.reject(self._key, status, self._ua.now(), reason))

    def hangup(self, status: int = 603) -> None:
        """End from our side: BYE once answered, else reject with ``status``."""
        self._ua._run(self._ua.core.hangup(self._key, self._ua.now(), status))


class OutboundCall(_Call):
    """The UAC side of an INVITE we send.

    Callbacks: ``on_progress(status)`` for 180/183, ``on_answer(sdp)`` for the 2xx,
    ``on_fail(status, reason)`` for a final error (408 on timeout, 487 after a CANCEL),
    ``on_end(reason)`` when the far end hangs up after answering, ``on_key(key)``.
    """

    def __init__(self, ua: SipUserAgent, key: CallKey) -> None:
        super().__init__(ua, key)
        self.on_progress: Callable[[int], None] | None = None
        self.on_answer: Callable[[bytes], None] | None = None
        self.on_fail: Callable[[int, str], None] | None = None
        self.answer_sdp = b""

    def start(self) -> None:
        """Send the INVITE."""
        self._ua._calls[self._key] = self
        self._ua._run(self._ua.core.start_call(self._key, self._ua.now()))

    def cancel(self) -> None:
        """Stop ringing: CANCEL now if a provisional response came, else as soon as one does."""
        self._ua._run(self._ua.core.cancel(self._key, self._ua.now()))

    def hangup(self, status: int = 0) -> None:
        """BYE once answered, else :meth:`cancel` (``status`` is for InboundCall symmetry)."""
        self._ua._run(self._ua.core.hangup(self._key, self._ua.now()))


class SipUserAgent(asyncio.DatagramProtocol):
    """A SIP UA on one UDP socket.

    Args:
        host, port: where to listen (port 0 picks a free one; read it back from ``port``).
        on_invite: called with each new :class:`InboundCall` (after 100 Trying); it must
            answer, ring or reject it. Without it, INVITEs get 480.
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
        self.core = SipCore(host, port, t1=t1, user_agent=user_agent)
        self.transport: asyncio.DatagramTransport | None = None
        self._calls: dict[CallKey, InboundCall | OutboundCall] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._depth = 0  # nesting of _run (event callbacks acting on the core)
        self._runs_since_sweep = 0

    @property
    def draining(self) -> bool:
        """True: OPTIONS are answered 503, so a balancer probing with them sends calls elsewhere."""
        return self.core.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self.core.draining = value

    @property
    def bad_requests(self) -> int:
        return self.core.bad_requests

    @property
    def dropped(self) -> int:
        return self.core.dropped

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> SipUserAgent:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.host, self.port)
        )
        self.transport = transport
        self.port = self.core.port = transport.get_extra_info("sockname")[1]
        log.info("= SIP listening on udp:%s:%d", self.host, self.port)
        return self

    async def close(self) -> None:
        """Hang up every call (one BYE, 603 or CANCEL each) and close the socket."""
        self._run(self.core.close(self.now()))
        self._calls.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    async def invite(
        self,
        to_uri: str,
        from_uri: str,
        sdp: bytes,
        *,
        from_name: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> OutboundCall:
        """An outbound call to ``to_uri`` (its host resolved); set its callbacks, then
        :meth:`OutboundCall.start` sends the INVITE."""
        host, port = parse_uri(to_uri).address()
        try:
            ipaddress.ip_address(host)
        except ValueError:
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            host = str(infos[0][4][0])
        key = self.core.invite(
            to_uri, from_uri, sdp, (host, port), from_name=from_name, headers=headers or ()
        )
        return OutboundCall(self, key)

    # -- the loop side -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def error_received(self, exc: Exception) -> None:
        log.debug("! SIP socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            outputs = self.core.receive(data, (addr[0], addr[1]), self.now())
        except Exception:  # a bug in the core must not take the server down
            log.exception("! SIP handling failed")
            return
        self._run(outputs)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        try:
            outputs = self.core.handle_timers(self.now())
        except Exception:
            log.exception("! SIP timer handling failed")
            outputs = []
        self._run(outputs)

    def _run(self, outputs: list[Output]) -> None:
        """Send, then tell the calls (callbacks may act on the core again: nested runs), then
        forget ended calls (in the outermost run only) and re-arm the timer."""
        self._depth += 1
        try:
            for output in outputs:
                if isinstance(output, Send):
                    if self.transport is not None:
                        self.transport.sendto(output.data, output.address)
                else:
                    try:
                        self._dispatch(output)
                    except Exception:
                        log.exception("! SIP event handler failed on %s", type(output).__name__)
        finally:
            self._depth -= 1
        if self._depth == 0:
            # Forget ended calls once per len(calls) / 8 runs: O(1) per message on average,
            # where a sweep after every message made a thousand calls cost O(calls²).
            self._runs_since_sweep += 1
            if self._runs_since_sweep * 8 >= len(self._calls):
                self._runs_since_sweep = 0
                for key in [k for k, call in self._calls.items() if call.ended]:
                    del self._calls[key]
        self._rearm()

    def _rearm(self) -> None:
        deadline = self.core.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = None
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, IncomingCall):
            call = InboundCall(self, event)
            self._calls[event.call] = call
            if self.on_invite is None:
                call.reject(480)
            else:
                self.on_invite(call)
            return
        target = self._calls.get(event.call)
        if isinstance(event, KeyPressed):
            if target is not None and target.on_key is not None:
                target.on_key(event.key)
        elif isinstance(event, CallEnded):
            if target is not None and target.on_end is not None:
                target.on_end(event.reason)
        elif isinstance(event, AnswerAcked):
            if isinstance(target, InboundCall) and target.on_ack is not None:
                target.on_ack()
        elif isinstance(target, OutboundCall):
            if isinstance(event, CallProgress) and target.on_progress is not None:
                target.on_progress(event.status)
            elif isinstance(event, CallAnswered):
                target.answer_sdp = event.sdp
                if target.on_answer is not None:
                    target.on_answer(event.sdp)
            elif isinstance(event, CallFailed) and target.on_fail is not None:
                target.on_fail(event.status, event.reason)
