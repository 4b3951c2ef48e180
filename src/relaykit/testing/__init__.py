"""Testing tools: the virtual caller."""

from .caller import Heard, VirtualCaller

__all__ = ["Heard", "VirtualCaller"]
