"""What the SIP core returns: datagrams to send and events for the application (plain data).

Every :class:`.core.SipCore` entry point returns a list of these, the :class:`Send` outputs
first. Events name the call they concern by its :class:`CallKey`.
"""

from __future__ import annotations

__all__ = [
    "Address",
    "AnswerAcked",
    "CallAnswered",
    "CallEnded",
    "CallFailed",
    "CallKey",
    "CallProgress",
    "Event",
    "IncomingCall",
    "KeyPressed",
    "Output",
    "Send",
]

from dataclasses import dataclass

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class CallKey:
    """A call (dialog) of this user agent: its Call-ID and our tag."""

    call_id: str
    local_tag: str


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``data`` as one UDP datagram to ``address``."""

    data: bytes
    address: Address


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A new INVITE (100 Trying is sent): ring, answer or reject ``call``."""

    call: CallKey
    request_uri: str
    from_uri: str
    to_uri: str
    offer: bytes
    source: Address


@dataclass(frozen=True, slots=True)
class CallProgress:
    """180/183 to our INVITE."""

    call: CallKey
    status: int


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """2xx to our INVITE (ACK sent)."""

    call: CallKey
    sdp: bytes


@dataclass(frozen=True, slots=True)
class CallFailed:
    """A final error to our INVITE (408 on timeout, 487 after a CANCEL); the call is over."""

    call: CallKey
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class AnswerAcked:
    """The ACK for our 200 OK came."""

    call: CallKey


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The far end (or a timeout) ended the call: ``"hangup"``, ``"cancel"`` or ``"error"``."""

    call: CallKey
    reason: str


@dataclass(frozen=True, slots=True)
class KeyPressed:
    """A key sent as SIP INFO."""

    call: CallKey
    key: str


Event = (
    IncomingCall | CallProgress | CallAnswered | CallFailed | AnswerAcked | CallEnded | KeyPressed
)
Output = Send | Event
