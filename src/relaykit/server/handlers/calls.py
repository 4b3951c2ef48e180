"""The call itself: ``calling.answer``, ``calling.end``, and placing calls with
``calling.begin`` (one device) and ``calling.dial`` (device groups, §5.5)."""

from __future__ import annotations

from typing import Any

from ...protocol import blade, calling
from .base import Context


async def answer(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    ctx.calls.answer(ctx.project, calling.AnswerParams.parse(params).call.call_id, ctx.session)
    return blade.relay_result(200, "Answered")


async def end(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    end = calling.EndParams.parse(params)
    ctx.calls.end(ctx.project, end.call.call_id, end.reason)
    return blade.relay_result(200, "Disconnecting call")


async def begin(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    begin = calling.BeginParams.parse(params)
    dialer = ctx.calls.dialer(begin.device)
    dialer.check(begin.device)
    ctx.sessions.check_capacity(ctx.session)
    call = await dialer.begin(
        ctx.project, ctx.session, begin.tag, begin.device, context=_context(ctx)
    )
    result = blade.relay_result(200, "Trying")
    result.update(call_id=call.call_id, node_id=call.node_id)
    return result


async def dial(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    dial = calling.DialParams.parse(params)
    ctx.calls.check_devices(dial.devices)
    ctx.sessions.check_capacity(ctx.session)
    ctx.calls.dial(ctx.project, ctx.session, dial.tag, dial.devices, context=_context(ctx))
    return blade.relay_result(200, "Dialing")


def _context(ctx: Context) -> str:
    """The context an outbound call belongs to: the session's first one (v2 has no other)."""
    return next(iter(ctx.session.contexts), "")
