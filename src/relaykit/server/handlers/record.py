"""``calling.record``: an audio recording of the call, served over HTTP at ``url``."""

from __future__ import annotations

from typing import Any

from ...protocol import blade, calling
from .base import Context


async def record(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    url = ctx.calls.record(ctx.project, calling.RecordParams.parse(params))
    result = blade.relay_result(200, "Recording")
    result["url"] = url
    return result
