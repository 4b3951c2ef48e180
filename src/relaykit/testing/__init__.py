"""Testing tools: the virtual caller, its expectations, the remote caller and call timelines.

The pytest plugin (``relaykit.pytest_plugin``) is loaded by pytest through its entry point;
it is not imported here, so that importing relaykit never imports pytest.
"""

from .caller import CallerAction, Heard, VirtualCaller
from .expect import ExpectationError
from .remote import RemoteCaller
from .timeline import load_call, render_timeline

__all__ = [
    "CallerAction",
    "ExpectationError",
    "Heard",
    "RemoteCaller",
    "VirtualCaller",
    "load_call",
    "render_timeline",
]
