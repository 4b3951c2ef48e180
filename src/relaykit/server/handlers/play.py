"""``calling.play``: media to the caller."""

from __future__ import annotations

from typing import Any

from ...protocol import blade, calling
from .base import Context


async def play(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.calls.play(ctx.project, calling.PlayParams.parse(params))
    return blade.relay_result(200, "Playing")
