"""``calling.tap``: the call's audio as RTP to a UDP address or a WebSocket."""

from __future__ import annotations

from typing import Any

from ...protocol import blade, calling
from .base import Context


async def tap(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    source = await ctx.calls.tap(ctx.project, calling.TapParams.parse(params))
    result = blade.relay_result(200, "Tapping")
    result["source_device"] = source
    return result
