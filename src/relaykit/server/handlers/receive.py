"""``signalwire.receive``: which contexts' inbound calls a consumer takes."""

from __future__ import annotations

from typing import Any

from ...protocol import blade, calling
from .base import Context


async def receive(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.sessions.receive(ctx.session, calling.ReceiveParams.parse(params).contexts)
    return blade.relay_result(
        200, "Receiving all inbound related to the requested relay contexts and available scopes"
    )
