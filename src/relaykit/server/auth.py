"""Logging in: credentials checked in constant time, failed attempts throttled, and a cap on
the connections that have not logged in yet (:class:`Logins`, shared by every endpoint)."""

from __future__ import annotations

__all__ = ["AuthThrottle", "Credentials", "Logins", "TryLater", "Visitor", "load_credentials"]

import asyncio
import contextlib
import hmac
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AuthenticationError, LimitExceededError


class Credentials:
    """``{project: token}`` pairs; :meth:`check` compares in constant time."""

    def __init__(self, pairs: Mapping[str, str]) -> None:
        self._pairs = {str(k): str(v) for k, v in pairs.items()}

    def __len__(self) -> int:
        return len(self._pairs)

    def __contains__(self, project: object) -> bool:
        return project in self._pairs

    @property
    def projects(self) -> list[str]:
        return list(self._pairs)

    def check(self, project: str, token: str) -> bool:
        expected = self._pairs.get(project)
        # Compare against something even for unknown projects, so timing tells nothing.
        same = hmac.compare_digest(
            (expected if expected is not None else "\0unknown-project").encode(), token.encode()
        )
        return same and expected is not None

    def __repr__(self) -> str:  # never show tokens
        return f"<Credentials projects={sorted(self._pairs)}>"


def load_credentials(path: str | Path) -> dict[str, str]:
    """Read credentials from a JSON object ``{"project": "token"}`` or ``project:token`` lines."""
    text = Path(path).read_text()
    if text.lstrip().startswith("{"):
        data = json.loads(text)
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in data.items()
        ):
            raise ValueError(f"{path}: expected a JSON object of project -> token strings")
        return data
    pairs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        project, sep, token = line.partition(":")
        if not sep or not project.strip() or not token.strip():
            raise ValueError(f"{path}:{number}: expected project:token")
        pairs[project.strip()] = token.strip()
    if not pairs:
        raise ValueError(f"{path}: no credentials")
    return pairs


class TryLater(LimitExceededError):
    """A login refused because too many are under way: the endpoint closes the socket with
    code 1013 (try again later) and no reply, so a client retries rather than giving up."""


@dataclass(slots=True)
class _Record:
    failures: int = 0
    last: float = 0.0  # when the last failure came in
    answer_at: float = 0.0  # when the last failure is (or was) answered


@dataclass(slots=True)
class AuthThrottle:
    """Slows down failed logins per key (an address, a project); times are passed in.

    Each failure within ``window`` seconds of the previous one doubles the delay (``base``
    seconds for the first, at most ``maximum``), and failures of one key are answered one after
    another: a failure is answered ``delay`` after the previous one of its key was, so guesses
    sent in parallel are answered no faster than guesses sent in turn. A quiet ``window``
    forgets the key. Successful logins are never delayed; this class only counts failures.
    """

    base: float = 0.05
    maximum: float = 5.0
    window: float = 60.0
    max_tracked: int = 10_000
    _records: dict[str, _Record] = field(default_factory=dict)

    def failure(self, key: str, now: float, *, at_least: int = 0) -> float:
        """Record a failed attempt of ``key``; returns how long to wait before refusing it.

        ``at_least``: count the failure as at least this many in a row (another key's count).
        """
        record = self._record(key, now)
        record.failures += 1
        record.last = now
        count = max(record.failures, at_least)
        delay = float(min(self.maximum, self.base * 2.0 ** min(count - 1, 64)))
        wait = max(0.0, record.answer_at - now) + delay  # after the key's previous answer
        record.answer_at = now + wait
        return wait

    def count(self, key: str, now: float) -> int:
        """Record a failed attempt of ``key`` without scheduling it; returns the failures."""
        record = self._record(key, now)
        record.failures += 1
        record.last = now
        return record.failures

    def failures(self, key: str, now: float) -> int:
        record = self._records.get(key)
        if record is None or now - record.last > self.window:
            return 0
        return record.failures

    def success(self, key: str) -> None:
        self._records.pop(key, None)

    def _record(self, key: str, now: float) -> _Record:
        record = self._records.get(key)
        if record is None or now - record.last > self.window:
            if record is None and len(self._records) >= self.max_tracked:
                self._forget_oldest()
            record = self._records[key] = _Record()
        return record

    def _forget_oldest(self) -> None:
        oldest = min(self._records, key=lambda a: self._records[a].last)
        del self._records[oldest]


class Visitor:
    """One connection that has not logged in yet (see :meth:`Logins.admit`)."""

    __slots__ = ("_logins", "address", "attempting", "evict", "gone")

    def __init__(self, logins: Logins, address: str, evict: Callable[[str], None]) -> None:
        self._logins = logins
        self.address = address
        self.evict = evict  # closes the connection, with a reason
        self.attempting = False  # sent its credentials: never evicted, answered in time
        self.gone = False

    def leave(self) -> None:
        """Logged in, or closed: the connection no longer counts. Idempotent."""
        if not self.gone:
            self.gone = True
            self._logins._forget(self)


class Logins:
    """How every endpoint logs clients in: one policy, checked in one place.

    * A new connection is a :class:`Visitor` until it logs in. At most
      ``max_unauthenticated_per_address`` of them per remote address and
      ``max_unauthenticated`` in all: beyond, the oldest one still silent (it has not sent its
      credentials) is closed to make room, and if every one is busy logging in the new
      connection is refused. Each endpoint closes a visitor that sends no credentials within
      ``timeout`` seconds.
    * Credentials are compared in constant time; a success is never delayed and resets only its
      own project's failures.
    * A failure is answered after the throttle's delay, counted per remote address and per
      project (the larger count wins) and never reset by another project's success; the
      failures of one address are answered one after another.
    * At most ``max_attempts_per_address`` failed attempts of one address wait for their answer
      at once; one more is refused before its credentials are looked at, so the refusal says
      nothing about the token.

    Refusals raise :class:`TryLater` naming the limit (the endpoint closes the socket with code
    1013, try again later) or :class:`AuthenticationError` (wrong credentials).
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: float = 10.0,
        max_unauthenticated: int = 512,
        max_unauthenticated_per_address: int = 64,
        max_attempts_per_address: int = 8,
        throttle: AuthThrottle | None = None,
    ) -> None:
        for name, value in (
            ("timeout", timeout),
            ("max_unauthenticated", max_unauthenticated),
            ("max_unauthenticated_per_address", max_unauthenticated_per_address),
            ("max_attempts_per_address", max_attempts_per_address),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, not {value}")
        self.credentials = credentials
        self.timeout = timeout
        self.max_unauthenticated = max_unauthenticated
        self.max_unauthenticated_per_address = max_unauthenticated_per_address
        self.max_attempts_per_address = max_attempts_per_address
        self.throttle = throttle if throttle is not None else AuthThrottle()
        self._silent: OrderedDict[Visitor, None] = OrderedDict()  # oldest first
        self._silent_by_address: dict[str, OrderedDict[Visitor, None]] = {}
        self._visitors = 0
        self._visitors_by_address: dict[str, int] = {}
        self._attempts_by_address: dict[str, int] = {}
        self._closed = asyncio.Event()  # the server stops: waiting failures are answered now

    @property
    def unauthenticated(self) -> int:
        """Connections that have not logged in."""
        return self._visitors

    # -- connections not logged in --------------------------------------------------------------
    def admit(self, address: str, evict: Callable[[str], None]) -> Visitor:
        """A new connection from ``address``; ``evict(reason)`` closes it if room is needed.

        Raises TryLater when every slot is taken by a connection logging in.
        """
        per_address = self.max_unauthenticated_per_address
        if self._visitors_by_address.get(address, 0) >= per_address:
            self._make_room(
                self._silent_by_address.get(address),
                f"too many connections not logged in from {address} (limit {per_address})",
            )
        if self._visitors >= self.max_unauthenticated:
            self._make_room(
                self._silent,
                f"too many connections not logged in (limit {self.max_unauthenticated})",
            )
        visitor = Visitor(self, address, evict)
        self._visitors += 1
        self._visitors_by_address[address] = self._visitors_by_address.get(address, 0) + 1
        self._silent[visitor] = None
        self._silent_by_address.setdefault(address, OrderedDict())[visitor] = None
        return visitor

    def unlisted(self, address: str) -> Visitor:
        """A visitor that takes no slot: for a login whose connection is counted elsewhere."""
        visitor = Visitor(self, address, lambda reason: None)
        visitor.gone = True
        return visitor

    def _make_room(self, silent: OrderedDict[Visitor, None] | None, reason: str) -> None:
        if not silent:
            raise TryLater(reason)
        oldest = next(iter(silent))
        oldest.leave()
        oldest.evict(reason)

    def _forget(self, visitor: Visitor) -> None:
        address = visitor.address
        self._visitors -= 1
        left = self._visitors_by_address[address] - 1
        if left:
            self._visitors_by_address[address] = left
        else:
            del self._visitors_by_address[address]
        self._unsilence(visitor)

    def _unsilence(self, visitor: Visitor) -> None:
        self._silent.pop(visitor, None)
        silent = self._silent_by_address.get(visitor.address)
        if silent is not None:
            silent.pop(visitor, None)
            if not silent:
                del self._silent_by_address[visitor.address]

    def close(self) -> None:
        """The server stops: answer the failures still waiting, refuse new attempts."""
        self._closed.set()

    # -- credentials ----------------------------------------------------------------------------
    async def check(self, visitor: Visitor, project: str, token: str) -> None:
        """Log ``visitor`` in as ``project``, or raise (after the throttle's delay)."""
        if self._closed.is_set():
            raise TryLater("the server is shutting down")
        address = visitor.address
        attempts = self._attempts_by_address.get(address, 0)
        if attempts >= self.max_attempts_per_address:
            raise TryLater(
                f"too many login attempts in progress from {address} "
                f"(limit {self.max_attempts_per_address})"
            )
        visitor.attempting = True
        self._unsilence(visitor)
        # Unknown project names share one key: a client cannot make the throttle track its
        # invented names.
        project_key = f"project:{project}" if project in self.credentials else "project:?"
        if self.credentials.check(project, token):
            self.throttle.success(project_key)
            visitor.leave()
            return
        now = asyncio.get_running_loop().time()
        self._attempts_by_address[address] = attempts + 1
        try:
            wait = self.throttle.failure(
                address, now, at_least=self.throttle.count(project_key, now)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), wait)
        finally:
            left = self._attempts_by_address[address] - 1
            if left:
                self._attempts_by_address[address] = left
            else:
                del self._attempts_by_address[address]
        raise AuthenticationError("authentication failed: unknown project or wrong token")
