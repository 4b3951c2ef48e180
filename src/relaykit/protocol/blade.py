"""Blade messages: handshake, execute wrapper, broadcasts, ping (protocol spec §1.3–§3).

Parsers validate what the other side sent and raise ProtocolError naming the field;
builders return plain dicts (``params`` or ``result``) for :mod:`relaykit.protocol.jsonrpc`.
"""

from __future__ import annotations

__all__ = [
    "BROADCAST",
    "CONNECT",
    "DISCONNECT",
    "EVENTS_CHANNEL",
    "EXECUTE",
    "NOTIFICATIONS",
    "PING",
    "PROTOCOL_VERSION",
    "RELAY_EVENTS",
    "SETUP_PROTOCOL",
    "SUBSCRIPTION",
    "Broadcast",
    "BroadcastEnvelope",
    "ConnectParams",
    "ExecuteParams",
    "SubscriptionParams",
    "broadcast_params",
    "connect_params",
    "connect_result",
    "execute_params",
    "execute_result",
    "parse_broadcast",
    "relay_result",
    "unwrap_execute_result",
]

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import CommandError, ProtocolError
from ._validate import opt_str, req_obj, req_str, req_str_list
from .jsonrpc import dumps_ascii, request_text

CONNECT = "blade.connect"
EXECUTE = "blade.execute"
SUBSCRIPTION = "blade.subscription"
PING = "blade.ping"
BROADCAST = "blade.broadcast"
DISCONNECT = "blade.disconnect"

SETUP_PROTOCOL = "signalwire"  # the protocol named by the setup execute (§2.2)
NOTIFICATIONS = "notifications"
EVENTS_CHANNEL = NOTIFICATIONS
RELAY_EVENTS = "queuing.relay.events"
PROTOCOL_VERSION = {"major": 2, "minor": 3, "revision": 0}


@dataclass(frozen=True, slots=True)
class ConnectParams:
    """The validated params of ``blade.connect``: credentials, agent and session to resume."""

    project: str
    token: str
    agent: str
    sessionid: str | None

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ConnectParams:
        version = params.get("version")
        if version is not None:
            req_obj(params, "version", "params")
            major = version.get("major")
            if not isinstance(major, int) or isinstance(major, bool):
                raise ProtocolError("must be an integer", field="params.version.major")
            if major != 2:
                raise ProtocolError(
                    f"protocol major version {major} is not supported (2 is)",
                    field="params.version.major",
                )
        auth = req_obj(params, "authentication", "params")
        project = req_str(auth, "project", "params.authentication")
        if "jwt_token" in auth and "token" not in auth:
            raise ProtocolError(
                "JWT authentication is not supported; send project and token",
                field="params.authentication.jwt_token",
            )
        token = req_str(auth, "token", "params.authentication", allow_empty=True)
        agent = opt_str(params, "agent", "params") or ""
        sessionid = opt_str(params, "sessionid", "params")
        return cls(project, token, agent, sessionid)


@dataclass(frozen=True, slots=True)
class ExecuteParams:
    """The validated params of ``blade.execute``: a RELAY command and its params."""

    protocol: str
    method: str
    params: dict[str, Any]

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> ExecuteParams:
        protocol = req_str(params, "protocol", "params")
        method = req_str(params, "method", "params")
        inner = params.get("params", {})
        if inner is None:
            inner = {}
        if not isinstance(inner, dict):
            raise ProtocolError("must be an object", field="params.params")
        return cls(protocol, method, inner)


@dataclass(frozen=True, slots=True)
class SubscriptionParams:
    """The validated params of ``blade.subscription``: add or remove channels."""

    command: str
    protocol: str
    channels: tuple[str, ...]

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> SubscriptionParams:
        command = req_str(params, "command", "params")
        if command not in ("add", "remove"):
            raise ProtocolError('must be "add" or "remove"', field="params.command")
        protocol = req_str(params, "protocol", "params")
        channels = req_str_list(params, "channels", "params")
        return cls(command, protocol, tuple(channels))


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A ``queuing.relay.events`` broadcast, unwrapped (§3.1)."""

    protocol: str
    event: str
    event_type: str
    context: str | None
    params: dict[str, Any]


# -- builders ---------------------------------------------------------------------------------


def connect_params(
    project: str, token: str, *, agent: str, sessionid: str | None = None
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "version": dict(PROTOCOL_VERSION),
        "authentication": {"project": project, "token": token},
        "agent": agent,
    }
    if sessionid:
        params["sessionid"] = sessionid
    return params


def connect_result(
    *, sessionid: str, nodeid: str, project: str, signature: str, restored: bool
) -> dict[str, Any]:
    return {
        "session_restored": restored,
        "sessionid": sessionid,
        "nodeid": nodeid,
        "master_nodeid": "00000000-0000-0000-0000-000000000000",
        "authorization": {
            "project": project,
            "expires_at": None,
            "scopes": ["calling"],
            "signature": signature,
        },
        "routes": [],
        "protocols": [],
        "subscriptions": [],
        "authorities": [],
        "authorizations": [],
        "accesses": [],
        "protocols_uncertified": ["signalwire"],
    }


def execute_params(protocol: str, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"protocol": protocol, "method": method, "params": dict(params)}


def relay_result(code: int | str, message: str, **extra: Any) -> dict[str, Any]:
    """The inner RELAY result ``{"code": "200", "message": …}``; code is always a string."""
    return {"code": str(code), "message": message, **extra}


def execute_result(
    inner: Mapping[str, Any], *, requester_nodeid: str, responder_nodeid: str
) -> dict[str, Any]:
    return {
        "requester_nodeid": requester_nodeid,
        "responder_nodeid": responder_nodeid,
        "result": dict(inner),
    }


def broadcast_params(
    *,
    protocol: str,
    event_type: str,
    params: Mapping[str, Any],
    broadcaster_nodeid: str,
    project_id: str,
    space_id: str,
    context: str | None = None,
    timestamp: float | None = None,
) -> dict[str, Any]:
    inner: dict[str, Any] = {
        "event_type": event_type,
        "event_channel": protocol,
        "timestamp": time.time() if timestamp is None else timestamp,
        "project_id": project_id,
        "space_id": space_id,
        "params": dict(params),
    }
    if context is not None:
        inner["context"] = context
    return {
        "broadcaster_nodeid": broadcaster_nodeid,
        "protocol": protocol,
        "channel": NOTIFICATIONS,
        "event": RELAY_EVENTS,
        "params": inner,
    }


class BroadcastEnvelope:
    """One sender's ``blade.broadcast`` frames, their constant parts serialised once.

    ``frame(...)`` is, character for character, ``request_text(BROADCAST,
    broadcast_params(...), request_id)``: the same keys in the same order, each part written by
    orjson as :func:`~relaykit.protocol.jsonrpc.dumps` writes it. A frame with a part orjson
    cannot write in plain ASCII is built the general way (``dumps`` then writes all of it with
    ``json``).
    """

    def __init__(
        self, *, protocol: str, broadcaster_nodeid: str, project_id: str, space_id: str
    ) -> None:
        self.key = (protocol, broadcaster_nodeid, project_id, space_id)
        head = dumps_ascii({"broadcaster_nodeid": broadcaster_nodeid, "protocol": protocol})
        channel = dumps_ascii(protocol)
        ids = dumps_ascii({"project_id": project_id, "space_id": space_id})
        self._plain = head is not None and channel is not None and ids is not None
        self._head = (
            f',"method":"{BROADCAST}","params":{(head or "")[:-1]},"channel":"{NOTIFICATIONS}"'
            f',"event":"{RELAY_EVENTS}","params":{{"event_type":'
        )
        self._channel = f',"event_channel":{channel},"timestamp":'
        self._ids = f',{(ids or "")[1:-1]},"params":'

    def frame(
        self,
        request_id: str,
        event_type: str,
        params: Mapping[str, Any],
        *,
        context: str | None = None,
        timestamp: float | None = None,
    ) -> str:
        """The JSON-RPC request text of one RELAY event."""
        when = time.time() if timestamp is None else timestamp
        if self._plain:
            parts = (
                dumps_ascii(request_id),
                dumps_ascii(event_type),
                dumps_ascii(when),
                dumps_ascii(params),
                "" if context is None else dumps_ascii(context),
            )
            if None not in parts:
                rid, etype, ts, body, ctx = parts
                tail = "}}}" if context is None else f',"context":{ctx}}}}}}}'
                return (
                    f'{{"jsonrpc":"2.0","id":{rid}{self._head}{etype}{self._channel}{ts}'
                    f"{self._ids}{body}{tail}"
                )
        protocol, nodeid, project_id, space_id = self.key
        payload = broadcast_params(
            protocol=protocol,
            event_type=event_type,
            params=params,
            broadcaster_nodeid=nodeid,
            project_id=project_id,
            space_id=space_id,
            context=context,
            timestamp=when,
        )
        return request_text(BROADCAST, payload, request_id)


# -- client-side readers ----------------------------------------------------------------------


def unwrap_execute_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the §1.4 classification to a successful JSON-RPC ``result``.

    Returns the inner RELAY result (or the outer one when there is none). Raises CommandError
    when the inner ``code`` is present and is not ``"200"``.
    """
    inner = result.get("result")
    if isinstance(inner, dict) and "code" in inner:
        code = str(inner.get("code"))
        if code != "200":
            message = inner.get("message")
            raise CommandError(
                message if isinstance(message, str) else f"command failed with code {code}",
                code=code,
            )
        return dict(inner)
    if isinstance(inner, dict):
        return dict(inner)
    return dict(result)


def parse_broadcast(params: Mapping[str, Any]) -> Broadcast:
    protocol = req_str(params, "protocol", "params")
    event = req_str(params, "event", "params")
    inner = req_obj(params, "params", "params")
    event_type = inner.get("event_type")
    if not isinstance(event_type, str):
        if event == RELAY_EVENTS:
            raise ProtocolError("must be a string", field="params.params.event_type")
        event_type = ""
    payload = inner.get("params", {})
    if not isinstance(payload, dict):
        raise ProtocolError("must be an object", field="params.params.params")
    context = inner.get("context")
    return Broadcast(
        protocol=protocol,
        event=event,
        event_type=event_type,
        context=context if isinstance(context, str) else None,
        params={**payload, "event_type": event_type},
    )
