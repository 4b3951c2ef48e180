"""``calling.detect``: keys, fax tones or an answering machine in the caller's audio."""

from __future__ import annotations

from typing import Any

from ...protocol import blade, calling
from .base import Context


async def detect(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.calls.detect(ctx.project, calling.DetectParams.parse(params))
    return blade.relay_result(200, "Detecting")
