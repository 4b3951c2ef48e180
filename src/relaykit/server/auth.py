"""Authentication: credential checks in constant time, and a throttle for failed attempts."""

from __future__ import annotations

__all__ = ["AuthThrottle", "Credentials", "load_credentials"]

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


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


@dataclass(slots=True)
class _Record:
    failures: int = 0
    last: float = 0.0


@dataclass(slots=True)
class AuthThrottle:
    """Slows down failed logins per remote address; successful logins are never delayed.

    Each failure within ``window`` seconds of the previous one doubles the delay before the
    refusal is sent (``base`` seconds for the first, at most ``maximum``), so guessing tokens gets
    expensive while a client with the right token from the same address gets in at once.
    A quiet ``window`` forgets the address. Times are passed in: no clock of its own.
    """

    base: float = 0.05
    maximum: float = 5.0
    window: float = 60.0
    max_tracked: int = 10_000
    _records: dict[str, _Record] = field(default_factory=dict)

    def failure(self, address: str, now: float) -> float:
        """Record a failed attempt; returns how long to wait before refusing it."""
        record = self._records.get(address)
        if record is None or now - record.last > self.window:
            if len(self._records) >= self.max_tracked:
                self._forget_oldest()
            record = self._records[address] = _Record()
        record.failures += 1
        record.last = now
        return float(min(self.maximum, self.base * 2.0 ** (record.failures - 1)))

    def failures(self, address: str, now: float) -> int:
        record = self._records.get(address)
        if record is None or now - record.last > self.window:
            return 0
        return record.failures

    def success(self, address: str) -> None:
        self._records.pop(address, None)

    def _forget_oldest(self) -> None:
        oldest = min(self._records, key=lambda a: self._records[a].last)
        del self._records[oldest]
