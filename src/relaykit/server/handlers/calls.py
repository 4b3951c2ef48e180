"""The call itself: ``calling.answer``, ``calling.end``, and placing calls with
``calling.begin`` (one device) and ``calling.dial`` (device groups, §5.5)."""

from __future__ import annotations

from typing import Any

from ...errors import ProtocolError
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
    dialer = ctx.calls.dialers.get(begin.device.type)
    if dialer is None:
        raise ProtocolError(_no_dialer(ctx, begin.device.type), field="device.type")
    ctx.sessions.check_capacity(ctx.session)
    call = await dialer.begin(
        ctx.calls, ctx.project, ctx.session, begin.tag, begin.device, context=_context(ctx)
    )
    result = blade.relay_result(200, "Trying")
    result.update(call_id=call.call_id, node_id=call.node_id)
    return result


async def dial(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    dial = calling.DialParams.parse(params)
    types = {device.type for group in dial.devices for device in group}
    for device_type in sorted(types):
        if device_type not in ctx.calls.dialers:
            raise ProtocolError(_no_dialer(ctx, device_type), field="devices")
    if len(types) != 1:
        raise ProtocolError("all devices of one dial must be of one type", field="devices")
    ctx.sessions.check_capacity(ctx.session)
    dialer = ctx.calls.dialers[types.pop()]
    dialer.dial(ctx.calls, ctx.project, ctx.session, dial.tag, dial.devices, context=_context(ctx))
    return blade.relay_result(200, "Dialing")


def _no_dialer(ctx: Context, device_type: str) -> str:
    if not ctx.calls.dialers:
        return "outbound calls need the SIP gateway (sip=...)"
    kinds = ", ".join(sorted(ctx.calls.dialers))
    return f"cannot dial {device_type!r} devices here; this server dials: {kinds}"


def _context(ctx: Context) -> str:
    """The context an outbound call belongs to: the session's first one (v2 has no other)."""
    return next(iter(ctx.session.contexts), "")
