"""The RELAY v2 wire format, shared by the server and the SDK. Sans-I/O: no sockets, no asyncio."""

from . import blade, calling, jsonrpc
from .session import Malformed, Peer, ReplyReceived, RequestReceived, StrayReply

__all__ = [
    "Malformed",
    "Peer",
    "ReplyReceived",
    "RequestReceived",
    "StrayReply",
    "blade",
    "calling",
    "jsonrpc",
]
