"""The local RELAY v2 server."""

from .app import RelayServer

__all__ = ["RelayServer"]
