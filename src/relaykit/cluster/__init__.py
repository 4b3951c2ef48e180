"""Scale-out: several relaykit nodes on one NATS bus (``relaykit serve --cluster``).

An adapter beside ``sip`` and ``testing``: :class:`~.bus.ClusterBus` carries commands, offers,
events, heartbeats and session records between nodes; the server's wiring
(:mod:`relaykit.server.cluster_link`) plugs it in behind the call interface's seams. The NATS
client, ``nats-py``, is the optional extra ``relaykit[cluster]``: it loads only when a node
joins a cluster. See ``docs/cluster.md``.
"""

from .bus import (
    EXTRA_HINT,
    BusUnavailable,
    ClusterBus,
    NoConsumer,
    NodeTimeout,
    NodeUnreachable,
    Peer,
    Received,
)
from .kamailio import KamailioRpc, parse_address
from .subjects import check_node_id, is_node_id

__all__ = [
    "EXTRA_HINT",
    "BusUnavailable",
    "ClusterBus",
    "KamailioRpc",
    "NoConsumer",
    "NodeTimeout",
    "NodeUnreachable",
    "Peer",
    "Received",
    "check_node_id",
    "is_node_id",
    "parse_address",
]
