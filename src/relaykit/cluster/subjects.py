"""The bus's names: NATS subjects, the stream and the key-value buckets (no I/O).

| subject | from → to | pattern |
|---|---|---|
| ``rk.node.<node>.cmd`` | a session's node → a call's owner | request/reply |
| ``rk.offer.<project>.<context>`` | a new call's owner → one consumer | request/reply, queue |
| ``rk.ev.<session>.<call>`` | a call's owner → the session's node | publish, kept in ``RK_EV`` |
| ``rk.hb.<node>`` | every node, each second | publish |
| ``rk.session.<event>`` | a session's node → every node | publish (``moved``, ``gone``) |

Project ids and contexts are free text; :func:`token` turns them into one subject token.
"""

from __future__ import annotations

__all__ = [
    "EVENT_STREAM",
    "QUEUE",
    "REAP_BUCKET",
    "SESSION_BUCKET",
    "check_node_id",
    "command",
    "event",
    "events_of",
    "heartbeat",
    "is_node_id",
    "offer",
    "session_notice",
    "token",
]

import re

EVENT_STREAM = "RK_EV"
EVENT_SUBJECTS = "rk.ev.>"
SESSION_BUCKET = "rk_sessions"
REAP_BUCKET = "rk_reap"
QUEUE = "consumers"
HEARTBEATS = "rk.hb.*"
SESSION_NOTICES = "rk.session.*"

_SAFE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_node_id(text: object) -> bool:
    """Whether ``text`` can name a node (and so be one subject token)."""
    return isinstance(text, str) and _SAFE.fullmatch(text) is not None


def check_node_id(text: str) -> str:
    """``text`` if it can name a node; ValueError saying what is allowed otherwise."""
    if not is_node_id(text):
        raise ValueError(f"a node id is 1-64 of A-Z a-z 0-9 _ -, not {text!r}")
    return text


def token(text: str) -> str:
    """One subject token for free text: itself when safe, else ``x`` and its UTF-8 in hex."""
    if _SAFE.fullmatch(text) and not text.startswith("x"):
        return text
    return "x" + text.encode().hex()


def command(node: str) -> str:
    return f"rk.node.{node}.cmd"


def offer(project: str, context: str) -> str:
    return f"rk.offer.{token(project)}.{token(context)}"


def event(session: str, call_id: str) -> str:
    return f"rk.ev.{token(session)}.{token(call_id) if call_id else '_'}"


def events_of(session: str) -> str:
    return f"rk.ev.{token(session)}.*"


def heartbeat(node: str) -> str:
    return f"rk.hb.{node}"


def session_notice(kind: str) -> str:
    return f"rk.session.{kind}"
