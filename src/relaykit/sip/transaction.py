"""RFC 3261 §17 transactions over UDP, sans-I/O: four state machines as transition tables.

A transaction never touches a socket or a clock. It sends through its :class:`Host` (which
queues the datagram as data), arms named timers through it (the host keeps them as
deadlines and calls :meth:`Transaction.fire` when one is due), and reports what its user
must know by return value: a response to pass up, or a :class:`Notice` (timeout, no ACK).

Each machine's ``TABLE`` maps ``(state, input)`` to the next state. An input a table has no
row for raises :class:`TransactionError`: network inputs that may legitimately arrive in a
state (retransmissions, late responses) have explicit rows that absorb them, so a missing
row is a bug in the caller, never something a peer can trigger.

The subset implemented, with every timer scaled from T1 (RFC values at T1 = 0.5 s):

* INVITE server (:class:`ServerInvite`, §17.2.1 with RFC 6026's Accepted state):
  Proceeding → Completed (3xx-6xx; timer G re-sends it, timer H = 64·T1 gives up) →
  Confirmed (ACK; timer I = T4 absorbs more ACKs) → Terminated; or Proceeding → Accepted
  (2xx; re-sent on timer G's schedule until the ACK, §13.3.1.4; timer L = 64·T1 ends it and
  reports a missing ACK). A retransmitted INVITE gets the latest response again.
* non-INVITE server (:class:`ServerNonInvite`, §17.2.2): Trying → Completed (final sent;
  retransmitted requests get it again; timer J = 64·T1) → Terminated.
* INVITE client (:class:`ClientInvite`, §17.1.1 with RFC 6026): Calling (timer A re-sends,
  timer B = 64·T1 times out) → Proceeding (1xx) → Completed (3xx-6xx: ACK sent, re-sent for
  each retransmitted final; timer D = 64·T1) or Accepted (2xx: retransmitted 2xx are passed
  up so the user re-sends its ACK; timer M = 64·T1). After a CANCEL, a final response that
  never comes ends the transaction after 64·T1 (§9.1) with a timeout.
* non-INVITE client (:class:`ClientNonInvite`, §17.1.2): Trying/Proceeding (timer E re-sends,
  doubling up to T2; timer F = 64·T1 times out) → Completed (timer K = T4) → Terminated.

T2 = 8·T1 and T4 = 10·T1 (4 s and 5 s at the default T1).
"""

from __future__ import annotations

__all__ = [
    "ClientInvite",
    "ClientNonInvite",
    "Host",
    "Input",
    "Notice",
    "ServerInvite",
    "ServerNonInvite",
    "State",
    "Timers",
    "Transaction",
    "TransactionError",
]

import heapq
import itertools
from collections.abc import Hashable, Mapping
from enum import Enum
from typing import ClassVar, Protocol

from .message import SipRequest, SipResponse

Address = tuple[str, int]


class State(Enum):
    """A transaction's state (RFC 3261 §17, with RFC 6026's Accepted)."""

    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


class Input(Enum):
    """What can happen to a transaction: the inputs of its transition table."""

    REQUEST = "request retransmission"
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "3xx-6xx"
    ACK = "ACK"
    STOP = "stop re-sending the 2xx"  # the user hung up before the ACK came
    CANCEL_SENT = "CANCEL sent"
    TIMER_A = "timer A"
    TIMER_B = "timer B"
    TIMER_D = "timer D"
    TIMER_E = "timer E"
    TIMER_F = "timer F"
    TIMER_G = "timer G"
    TIMER_H = "timer H"
    TIMER_I = "timer I"
    TIMER_J = "timer J"
    TIMER_K = "timer K"
    TIMER_L = "timer L"
    TIMER_M = "timer M"
    TIMER_CANCEL = "no final response after CANCEL"


class Notice(Enum):
    """What a timer tells the transaction's user."""

    TIMEOUT = "timeout"  # a client transaction got no (final) response
    NO_ACK = "no ACK"  # the 2xx of an INVITE server transaction was never acknowledged


class TransactionError(RuntimeError):
    """An input a transaction has no transition for in its state: a bug in its user."""


class Host(Protocol):
    """What a transaction needs from the endpoint that owns it."""

    t1: float
    t2: float
    t4: float

    def send(self, data: bytes, address: Address) -> None: ...

    def start_timer(self, owner: Transaction, name: str, delay: float) -> None: ...

    def stop_timer(self, owner: Transaction, name: str) -> None: ...

    def forget(self, tx: Transaction) -> None:
        """The transaction terminated: drop it (and its timers)."""
        ...


def classify(status: int) -> Input:
    if status < 200:
        return Input.PROVISIONAL
    return Input.SUCCESS if status < 300 else Input.FAILURE


S, In = State, Input


class Transaction:
    """One request and its responses, matched by the top Via branch."""

    TABLE: ClassVar[Mapping[tuple[State, Input], State]]

    def __init__(self, host: Host, key: Hashable, address: Address, state: State) -> None:
        self.host = host
        self.key = key
        self.address = address
        self.state = state

    def _step(self, what: Input) -> State:
        """Take the transition for ``what``; returns the state it left."""
        new = self.TABLE.get((self.state, what))
        if new is None:
            raise TransactionError(
                f"{type(self).__name__}: no transition for {what.value} in {self.state.value}"
            )
        old, self.state = self.state, new
        if new is S.TERMINATED and old is not S.TERMINATED:
            self.host.forget(self)
        return old

    def fire(self, name: str) -> Notice | None:
        """Timer ``name`` (``"A"``, ``"G"``, ``"CANCEL"``…) is due."""
        raise NotImplementedError


class ServerInvite(Transaction):
    """An INVITE we received (UAS)."""

    TABLE: ClassVar[Mapping[tuple[State, Input], State]] = {
        (S.PROCEEDING, In.REQUEST): S.PROCEEDING,  # re-send the latest provisional
        (S.PROCEEDING, In.PROVISIONAL): S.PROCEEDING,
        (S.PROCEEDING, In.SUCCESS): S.ACCEPTED,
        (S.PROCEEDING, In.FAILURE): S.COMPLETED,
        (S.PROCEEDING, In.ACK): S.PROCEEDING,  # no final response yet: absorbed
        (S.COMPLETED, In.REQUEST): S.COMPLETED,  # re-send the final response
        (S.COMPLETED, In.ACK): S.CONFIRMED,
        (S.COMPLETED, In.TIMER_G): S.COMPLETED,
        (S.COMPLETED, In.TIMER_H): S.TERMINATED,
        (S.CONFIRMED, In.REQUEST): S.CONFIRMED,  # absorbed
        (S.CONFIRMED, In.ACK): S.CONFIRMED,  # absorbed
        (S.CONFIRMED, In.TIMER_I): S.TERMINATED,
        (S.ACCEPTED, In.REQUEST): S.ACCEPTED,  # re-send the 2xx
        (S.ACCEPTED, In.ACK): S.ACCEPTED,
        (S.ACCEPTED, In.STOP): S.ACCEPTED,
        (S.ACCEPTED, In.TIMER_G): S.ACCEPTED,  # 2xx retransmission (§13.3.1.4)
        (S.ACCEPTED, In.TIMER_L): S.TERMINATED,
    }

    def __init__(self, host: Host, key: Hashable, address: Address) -> None:
        super().__init__(host, key, address, S.PROCEEDING)
        self.last: bytes | None = None  # the latest response sent
        self.status = 0
        self.acked = False  # the ACK for our final response came
        self._retransmitting = False
        self._interval = host.t1

    def received_again(self) -> None:
        """The INVITE was retransmitted (same branch)."""
        self._step(In.REQUEST)
        if self.state is not S.CONFIRMED and self.last is not None:
            self.host.send(self.last, self.address)

    def respond(self, response: SipResponse) -> None:
        self._step(classify(response.status))
        self.last = bytes(response)
        self.status = response.status
        self.host.send(self.last, self.address)
        if response.status >= 200:
            self._retransmitting = True
            self.host.start_timer(self, "G", self._interval)
            ending = "L" if response.status < 300 else "H"
            self.host.start_timer(self, ending, 64 * self.host.t1)

    def ack(self) -> bool:
        """An ACK for this INVITE; True when it is the first ACK of our 2xx."""
        old = self._step(In.ACK)
        if old is S.COMPLETED:
            self.acked = True
            self.host.stop_timer(self, "G")
            self.host.stop_timer(self, "H")
            self.host.start_timer(self, "I", self.host.t4)
        elif old is S.ACCEPTED and not self.acked:
            self.acked = True
            self._stop_retransmitting()
            return True
        return False

    def stop(self) -> None:
        """Stop re-sending the 2xx (the user hangs up before its ACK); timer L still runs."""
        self._step(In.STOP)
        self._stop_retransmitting()

    def _stop_retransmitting(self) -> None:
        self._retransmitting = False
        self.host.stop_timer(self, "G")

    def fire(self, name: str) -> Notice | None:
        old = self._step(Input[f"TIMER_{name}"])
        if name == "G" and self._retransmitting and self.last is not None:
            self.host.send(self.last, self.address)
            self._interval = min(self._interval * 2, self.host.t2)
            self.host.start_timer(self, "G", self._interval)
        elif name == "L" and old is S.ACCEPTED and not self.acked and self._retransmitting:
            return Notice.NO_ACK
        return None


class ServerNonInvite(Transaction):
    """A BYE, CANCEL, OPTIONS, INFO… we received: answered once, re-answered from here."""

    TABLE: ClassVar[Mapping[tuple[State, Input], State]] = {
        (S.TRYING, In.SUCCESS): S.COMPLETED,
        (S.TRYING, In.FAILURE): S.COMPLETED,
        (S.COMPLETED, In.REQUEST): S.COMPLETED,  # re-send the final response
        (S.COMPLETED, In.TIMER_J): S.TERMINATED,
    }

    def __init__(self, host: Host, key: Hashable, address: Address) -> None:
        super().__init__(host, key, address, S.TRYING)
        self.last: bytes | None = None

    def received_again(self) -> None:
        self._step(In.REQUEST)
        if self.last is not None:
            self.host.send(self.last, self.address)

    def respond(self, response: SipResponse) -> None:
        self._step(classify(response.status))
        self.last = bytes(response)
        self.host.send(self.last, self.address)
        self.host.start_timer(self, "J", 64 * self.host.t1)

    def fire(self, name: str) -> Notice | None:
        self._step(Input[f"TIMER_{name}"])
        return None


class ClientInvite(Transaction):
    """An INVITE we sent (UAC)."""

    TABLE: ClassVar[Mapping[tuple[State, Input], State]] = {
        (S.CALLING, In.TIMER_A): S.CALLING,
        (S.CALLING, In.TIMER_B): S.TERMINATED,
        (S.CALLING, In.PROVISIONAL): S.PROCEEDING,
        (S.CALLING, In.SUCCESS): S.ACCEPTED,
        (S.CALLING, In.FAILURE): S.COMPLETED,
        (S.PROCEEDING, In.PROVISIONAL): S.PROCEEDING,
        (S.PROCEEDING, In.SUCCESS): S.ACCEPTED,
        (S.PROCEEDING, In.FAILURE): S.COMPLETED,
        (S.PROCEEDING, In.CANCEL_SENT): S.PROCEEDING,
        (S.PROCEEDING, In.TIMER_CANCEL): S.TERMINATED,
        (S.COMPLETED, In.PROVISIONAL): S.COMPLETED,  # absorbed
        (S.COMPLETED, In.SUCCESS): S.COMPLETED,  # absorbed
        (S.COMPLETED, In.FAILURE): S.COMPLETED,  # the ACK is re-sent
        (S.COMPLETED, In.TIMER_D): S.TERMINATED,
        (S.ACCEPTED, In.PROVISIONAL): S.ACCEPTED,  # absorbed
        (S.ACCEPTED, In.SUCCESS): S.ACCEPTED,  # passed up: the user re-sends its ACK
        (S.ACCEPTED, In.FAILURE): S.ACCEPTED,  # absorbed
        (S.ACCEPTED, In.TIMER_M): S.TERMINATED,
    }

    def __init__(self, host: Host, key: Hashable, address: Address, request: SipRequest) -> None:
        super().__init__(host, key, address, S.CALLING)
        self.request = request
        self._data = bytes(request)
        self._interval = host.t1
        self._ack: bytes | None = None

    def start(self) -> None:
        self.host.send(self._data, self.address)
        self.host.start_timer(self, "A", self._interval)
        self.host.start_timer(self, "B", 64 * self.host.t1)

    def receive(self, response: SipResponse) -> bool:
        """A response to our INVITE; True when the user must see it."""
        kind = classify(response.status)
        old = self._step(kind)
        if old is S.CALLING:
            self.host.stop_timer(self, "A")
            self.host.stop_timer(self, "B")
        if kind is In.FAILURE and old is not S.ACCEPTED:
            if self._ack is None:
                self._ack = bytes(self._failure_ack(response))
                self.host.stop_timer(self, "CANCEL")
                self.host.start_timer(self, "D", 64 * self.host.t1)
            self.host.send(self._ack, self.address)
        elif kind is In.SUCCESS and old is not S.ACCEPTED and old is not S.COMPLETED:
            self.host.stop_timer(self, "CANCEL")
            self.host.start_timer(self, "M", 64 * self.host.t1)
        return old in (S.CALLING, S.PROCEEDING) or (old is S.ACCEPTED and kind is In.SUCCESS)

    def cancel_sent(self) -> None:
        """A CANCEL for this INVITE went out: wait 64·T1 at most for its final response."""
        self._step(In.CANCEL_SENT)
        self.host.start_timer(self, "CANCEL", 64 * self.host.t1)

    def _failure_ack(self, response: SipResponse) -> SipRequest:
        """The hop-by-hop ACK for a 3xx-6xx (§17.1.1.3): same branch, the response's To."""
        request = self.request
        number, _ = request.cseq
        return SipRequest(
            headers=[
                ("Via", request.get_all("Via")[0]),
                ("Max-Forwards", "70"),
                ("From", request.get("From") or ""),
                ("To", response.get("To") or request.get("To") or ""),
                ("Call-ID", request.call_id),
                ("CSeq", f"{number} ACK"),
                *[("Route", r) for r in request.get_all("Route")],
            ],
            method="ACK",
            uri=request.uri,
        )

    def fire(self, name: str) -> Notice | None:
        self._step(Input[f"TIMER_{name}"])
        if name == "A":
            self.host.send(self._data, self.address)
            self._interval *= 2
            self.host.start_timer(self, "A", self._interval)
        elif name in ("B", "CANCEL"):
            return Notice.TIMEOUT
        return None


class ClientNonInvite(Transaction):
    """A BYE or CANCEL we sent: re-sent until its final response."""

    TABLE: ClassVar[Mapping[tuple[State, Input], State]] = {
        (S.TRYING, In.TIMER_E): S.TRYING,
        (S.TRYING, In.TIMER_F): S.TERMINATED,
        (S.TRYING, In.PROVISIONAL): S.PROCEEDING,
        (S.TRYING, In.SUCCESS): S.COMPLETED,
        (S.TRYING, In.FAILURE): S.COMPLETED,
        (S.PROCEEDING, In.TIMER_E): S.PROCEEDING,
        (S.PROCEEDING, In.TIMER_F): S.TERMINATED,
        (S.PROCEEDING, In.PROVISIONAL): S.PROCEEDING,
        (S.PROCEEDING, In.SUCCESS): S.COMPLETED,
        (S.PROCEEDING, In.FAILURE): S.COMPLETED,
        (S.COMPLETED, In.PROVISIONAL): S.COMPLETED,  # absorbed
        (S.COMPLETED, In.SUCCESS): S.COMPLETED,  # absorbed
        (S.COMPLETED, In.FAILURE): S.COMPLETED,  # absorbed
        (S.COMPLETED, In.TIMER_K): S.TERMINATED,
    }

    def __init__(self, host: Host, key: Hashable, address: Address, request: SipRequest) -> None:
        super().__init__(host, key, address, S.TRYING)
        self.request = request
        self._data = bytes(request)
        self._interval = host.t1

    def start(self) -> None:
        self.host.send(self._data, self.address)
        self.host.start_timer(self, "E", self._interval)
        self.host.start_timer(self, "F", 64 * self.host.t1)

    def receive(self, response: SipResponse) -> bool:
        """A response to our request; True for the first final one."""
        kind = classify(response.status)
        old = self._step(kind)
        if kind is In.PROVISIONAL and old is S.TRYING:
            self._interval = self.host.t2  # §17.1.2.2: re-sent every T2 once proceeding
        if kind is not In.PROVISIONAL and old is not S.COMPLETED:
            self.host.stop_timer(self, "E")
            self.host.stop_timer(self, "F")
            self.host.start_timer(self, "K", self.host.t4)
            return True
        return False

    def fire(self, name: str) -> Notice | None:
        old = self._step(Input[f"TIMER_{name}"])
        if name == "E":
            self.host.send(self._data, self.address)
            if old is S.TRYING:
                self._interval = min(self._interval * 2, self.host.t2)
            self.host.start_timer(self, "E", self._interval)
        elif name == "F":
            return Notice.TIMEOUT
        return None


class Timers:
    """Named timers of transactions as deadlines: a heap with lazily dropped stale entries."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Transaction, str]] = []
        self._live: dict[Transaction, dict[str, int]] = {}
        self._armed = 0  # live timers (the heap also holds stale entries)
        self._seq = itertools.count()

    def start(self, owner: Transaction, name: str, at: float) -> None:
        """Arm (or re-arm) ``owner``'s timer ``name`` to fire at ``at``."""
        seq = next(self._seq)
        names = self._live.setdefault(owner, {})
        self._armed += name not in names
        names[name] = seq
        heapq.heappush(self._heap, (at, seq, owner, name))
        if len(self._heap) > 64 and len(self._heap) > 4 * self._armed:
            self._compact()

    def stop(self, owner: Transaction, name: str) -> None:
        names = self._live.get(owner)
        if names is not None and names.pop(name, None) is not None:
            self._armed -= 1
            if not names:
                del self._live[owner]

    def stop_all(self, owner: Transaction) -> None:
        self._armed -= len(self._live.pop(owner, {}))

    def clear(self) -> None:
        self._heap.clear()
        self._live.clear()
        self._armed = 0

    def next_deadline(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> tuple[Transaction, str] | None:
        """The earliest timer due at ``now`` (disarmed), or None."""
        self._drop_stale()
        if not self._heap or self._heap[0][0] > now:
            return None
        _, _, owner, name = heapq.heappop(self._heap)
        self.stop(owner, name)
        return owner, name

    def _is_live(self, entry: tuple[float, int, Transaction, str]) -> bool:
        _, seq, owner, name = entry
        return self._live.get(owner, {}).get(name) == seq

    def _drop_stale(self) -> None:
        while self._heap and not self._is_live(self._heap[0]):
            heapq.heappop(self._heap)

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if self._is_live(entry)]
        heapq.heapify(self._heap)
