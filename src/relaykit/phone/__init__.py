"""The browser phone: a page at ``/phone`` that calls the server's IVRs with your microphone.

One more adapter on the call interface (:class:`relaykit.calls.CallService`): the page's
WebSocket (``/phone/ws``) places inbound calls, sends the microphone as 16-bit PCM and keys as
in-band DTMF tones, and plays the IVR's audio; every page also sees its project's live call
list and the timeline of any of those calls, drawn from the calls' logs. The page itself is
package data served over plain HTTP on the server's port, from a fixed list of files.
"""

from .directory import CallDirectory
from .endpoint import Phone, Throttle
from .web import PAGE_PATH, SOCKET_PATH, Reply

__all__ = ["PAGE_PATH", "SOCKET_PATH", "CallDirectory", "Phone", "Reply", "Throttle"]
