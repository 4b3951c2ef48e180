"""What every handler gets: the session that sent the command and the services it may use."""

from __future__ import annotations

__all__ = ["Context", "Handler"]

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ...calls import CallService
from ..sessions import ServerSession, SessionRegistry


@dataclass(frozen=True, slots=True)
class Context:
    """A command's context: who sent it (``session``) and the services it acts on."""

    session: ServerSession
    calls: CallService
    sessions: SessionRegistry

    @property
    def project(self) -> str:
        return self.session.project


Handler = Callable[[Context, dict[str, Any]], Awaitable[dict[str, Any]]]
