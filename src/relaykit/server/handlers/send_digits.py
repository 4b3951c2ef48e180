"""``calling.send_digits``: DTMF tones into what the far end hears."""

from __future__ import annotations

from typing import Any

from ...protocol import blade, calling
from .base import Context


async def send_digits(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.calls.send_digits(ctx.project, calling.SendDigitsParams.parse(params))
    return blade.relay_result(200, "Sending digits")
