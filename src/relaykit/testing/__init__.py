"""Testing tools: the virtual caller and callees, their expectations, the remote caller and
call timelines.

The pytest plugin (``relaykit.pytest_plugin``) is loaded by pytest through its entry point;
it is not imported here, so that importing relaykit never imports pytest.
"""

from .callees import Callee, Dialled, VirtualCallees
from .caller import CallerAction, Heard, VirtualCaller
from .expect import ExpectationError
from .remote import RemoteCaller
from .timeline import load_call, render_timeline

__all__ = [
    "Callee",
    "CallerAction",
    "Dialled",
    "ExpectationError",
    "Heard",
    "RemoteCaller",
    "VirtualCallees",
    "VirtualCaller",
    "load_call",
    "render_timeline",
]
