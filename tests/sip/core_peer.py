"""Drive :class:`SipCore` with datagrams and a fake clock: no sockets, no event loop."""

from __future__ import annotations

from dataclasses import dataclass, field

from relaykit.sip.core import SipCore
from relaykit.sip.events import Event, Output, Send
from relaykit.sip.message import SipRequest, SipResponse, parse_message, parse_name_addr

ME = ("127.0.0.1", 5070)  # where the core listens
PHONE = ("127.0.0.1", 40000)  # the far end
T1 = 0.5
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)


def request(
    method: str,
    *,
    call_id: str = "call-1",
    branch: str = "z9hG4bK-1",
    to_tag: str = "",
    cseq: int = 1,
    cseq_method: str | None = None,
    body: bytes = b"",
    extra: str = "",
    via: str | None = None,
    rport: bool = True,
) -> bytes:
    """A request from PHONE to the core."""
    to = f"<sip:+15559870000@{ME[0]}>" + (f";tag={to_tag}" if to_tag else "")
    via = via or f"SIP/2.0/UDP {PHONE[0]}:{PHONE[1]};branch={branch}" + (";rport" if rport else "")
    head = (
        f"{method} sip:+15559870000@{ME[0]}:{ME[1]} SIP/2.0\r\n"
        f"Via: {via}\r\n"
        f"From: <sip:phone@{PHONE[0]}>;tag=phone\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        f"Contact: <sip:phone@{PHONE[0]}:{PHONE[1]}>\r\n"
        "Max-Forwards: 70\r\n"
        f"{extra}"
        + ("Content-Type: application/sdp\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def response_to(sent: SipRequest, status: int, *, to_tag: str = "far", body: bytes = b"") -> bytes:
    """The far end's response to a request the core sent."""
    to = sent.get("To") or ""
    if status > 100 and "tag=" not in to:
        to = f"{to};tag={to_tag}"
    reason = {100: "Trying", 180: "Ringing", 200: "OK", 486: "Busy Here", 487: "Terminated"}
    headers = [
        *[("Via", v) for v in sent.get_all("Via")],
        ("From", sent.get("From") or ""),
        ("To", to),
        ("Call-ID", sent.call_id),
        ("CSeq", sent.get("CSeq") or ""),
    ]
    if 200 <= status < 300:
        headers.append(("Contact", f"<sip:far@{PHONE[0]}:{PHONE[1]}>"))
    return bytes(
        SipResponse(headers=headers, body=body, status=status, reason=reason.get(status, "X"))
    )


@dataclass
class Batch:
    """What one call into the core returned, parsed for assertions."""

    outputs: list[Output]
    at: float = 0.0
    sends: list[Send] = field(init=False)
    events: list[Event] = field(init=False)

    def __post_init__(self) -> None:
        self.sends = [o for o in self.outputs if isinstance(o, Send)]
        self.events = [o for o in self.outputs if not isinstance(o, Send)]

    @property
    def messages(self) -> list[SipRequest | SipResponse]:
        return [parse_message(s.data) for s in self.sends]

    @property
    def statuses(self) -> list[int]:
        return [m.status for m in self.messages if isinstance(m, SipResponse)]

    @property
    def requests(self) -> list[SipRequest]:
        return [m for m in self.messages if isinstance(m, SipRequest)]

    def response(self, status: int) -> SipResponse:
        found = [m for m in self.messages if isinstance(m, SipResponse) and m.status == status]
        assert len(found) == 1, f"{status} not sent once: {self.statuses}"
        return found[0]


class Harness:
    """A core, a fake clock, and helpers to feed it."""

    def __init__(self, **kwargs: object) -> None:
        self.core = SipCore(ME[0], ME[1], t1=T1, **kwargs)  # type: ignore[arg-type]
        self.now = 0.0

    def feed(self, data: bytes, source: tuple[str, int] = PHONE) -> Batch:
        return Batch(self.core.receive(data, source, self.now), self.now)

    def act(self, outputs: list[Output]) -> Batch:
        return Batch(outputs, self.now)

    def advance(self, until: float) -> list[Batch]:
        """Fire every timer due up to ``until``, one deadline at a time."""
        batches = []
        while (deadline := self.core.next_deadline()) is not None and deadline <= until:
            self.now = deadline
            batch = Batch(self.core.handle_timers(deadline), deadline)
            if batch.outputs:
                batches.append(batch)
        self.now = until
        return batches


def tag(message: SipRequest | SipResponse, header: str = "To") -> str:
    return parse_name_addr(message.get(header) or "").tag
