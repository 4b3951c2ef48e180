"""Real phones: a SIP user agent and RTP media for :class:`relaykit.RelayServer`.

Sans-I/O cores: :mod:`.message` (SIP parsing), :mod:`.transaction` (RFC 3261 transaction
state machines), :mod:`.core` (the user agent: dialogs, events; outputs in :mod:`.events`),
:mod:`.sdp`, :mod:`.rtp` (RTP and RFC 4733), :mod:`.jitter`, :mod:`.g711`, :mod:`.resample`.
On asyncio: :mod:`.ua` (the user agent's socket and timer), :mod:`.leg` (a call's RTP),
:mod:`.gateway` (calls in and out of the server). Enable it with
``RelayServer(sip=("127.0.0.1", 5060), sip_routes={"+15559870000": "office"})`` or
``relaykit serve --sip 127.0.0.1:5060 --route +15559870000=office``.
"""

from __future__ import annotations

__all__: list[str] = []
