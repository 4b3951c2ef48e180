"""What every component (play, prompt, …) answers to: ``.stop`` and ``.volume``."""

from __future__ import annotations

from typing import Any

from ...protocol import blade, calling
from .base import Context


async def stop(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    control = calling.ControlParams.parse(params)
    ctx.calls.stop(ctx.project, control.call.call_id, control.control_id)
    return blade.relay_result(200, "Stopped")


async def volume(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    change = calling.VolumeParams.parse(params)
    ctx.calls.set_volume(ctx.project, change.call.call_id, change.control_id, change.volume)
    return blade.relay_result(200, "Volume changed")
