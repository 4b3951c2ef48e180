"""``calling.connect`` (bridge the call to the first device that answers) and
``calling.disconnect`` (end the bridge; both calls stay up)."""

from __future__ import annotations

from typing import Any

from ...protocol import blade, calling
from .base import Context


async def connect(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.sessions.check_capacity(ctx.session)
    ctx.calls.connect(ctx.project, calling.ConnectParams.parse(params))
    return blade.relay_result(200, "Connecting")


async def disconnect(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.calls.disconnect(ctx.project, calling.DisconnectParams.parse(params).call.call_id)
    return blade.relay_result(200, "Disconnecting")
