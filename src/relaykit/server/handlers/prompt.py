"""``calling.play_and_collect``: the prompt (media, then digits and/or speech)."""

from __future__ import annotations

from typing import Any

from ...protocol import blade, calling
from .base import Context


async def play_and_collect(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.calls.prompt(ctx.project, calling.PlayAndCollectParams.parse(params))
    return blade.relay_result(200, "Playing")
