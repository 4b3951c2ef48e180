"""Call events as RELAY v2 wire events: ``(event_type, params, context)`` for a session."""

from __future__ import annotations

__all__ = ["DIAL_EVENT", "to_relay"]

from typing import Any

from ..calls.events import (
    CallEvent,
    CallOffered,
    CallStateChanged,
    ComponentChanged,
    DialStateChanged,
    InputStarted,
    PlayStateChanged,
    PromptEnded,
    PromptPartial,
)
from ..protocol import calling

DIAL_EVENT = "calling.call.dial"

WireEvent = tuple[str, dict[str, Any], str | None]


def to_relay(event: CallEvent) -> WireEvent | None:
    """The ``calling.call.*`` event a consumer sees for ``event``, or None if it sees none."""
    ids: dict[str, Any] = {"call_id": event.call_id, "node_id": event.node_id}
    if isinstance(event, CallOffered):
        if event.direction != "inbound":
            return None
        params = calling.call_receive_event(
            **ids,
            context=event.context,
            from_number=event.from_number,
            to_number=event.to_number,
        )
        return calling.CALL_RECEIVE, params, event.context
    if isinstance(event, CallStateChanged):
        params = calling.call_state_event(
            **ids,
            call_state=event.state,
            from_number=event.from_number,
            to_number=event.to_number,
            direction=event.direction,
            end_reason=event.end_reason,
            tag=event.tag,
            peer=event.peer,
        )
        if event.device is not None:
            params["device"] = event.device
        return calling.CALL_STATE, params, None
    if isinstance(event, PlayStateChanged):
        params = calling.play_event(**ids, control_id=event.control_id, state=event.state)
        return calling.PLAY_EVENT, params, None
    if isinstance(event, InputStarted):
        if not event.reported:
            return None
        params = calling.collect_event(
            **ids, control_id=event.control_id, result_type="start_of_input", final=False
        )
        return calling.COLLECT_EVENT, params, None
    if isinstance(event, PromptPartial):
        params = calling.collect_event(
            **ids,
            control_id=event.control_id,
            result_type=event.result_type,
            result_params=event.params,
            final=False,
        )
        return calling.COLLECT_EVENT, params, None
    if isinstance(event, PromptEnded):
        params = calling.collect_event(
            **ids,
            control_id=event.control_id,
            result_type=event.result_type,
            result_params=event.params,
            reason=event.reason,
        )
        return calling.COLLECT_EVENT, params, None
    if isinstance(event, DialStateChanged):
        params = {"dial_state": event.dial_state, "tag": event.tag, "node_id": event.node_id}
        if event.call is not None:
            params["call"] = event.call
        if event.reason is not None:
            params["reason"] = event.reason
        if event.source is not None:
            params["source"] = event.source
        return DIAL_EVENT, params, None
    if isinstance(event, ComponentChanged):
        return _component_event(ids, event)
    return None


def _component_event(ids: dict[str, Any], event: ComponentChanged) -> WireEvent | None:
    """``calling.call.record``/``detect``/``tap``/``send_digits``/``connect`` for a
    component's change; the starts RELAY has no event for (``detecting``, ``sending``) are not
    sent."""
    params = event.params
    if event.component == "connect":  # v2 names no control_id for a connect
        wire = calling.connect_event(
            **ids,
            connect_state=event.state,
            peer=params.get("peer"),
            failed_reason=event.reason if event.state == "failed" else None,
        )
        return calling.CONNECT_EVENT, wire, None
    ids = {**ids, "control_id": event.control_id}
    if event.component == "record":
        wire = calling.record_event(
            **ids,
            state=event.state,
            record=params.get("record", {}),
            url=params.get("url"),
            duration=params.get("duration") if event.final else None,
            size=params.get("size") if event.final else None,
        )
        return calling.RECORD_EVENT, wire, None
    if event.component == "detect":
        if event.state == "detecting":
            return None
        wire = calling.detect_event(
            **ids, detect_type=str(params.get("type", "")), event=event.state
        )
        return calling.DETECT_EVENT, wire, None
    if event.component == "tap":
        wire = calling.tap_event(
            **ids, state=event.state, tap=params.get("tap", {}), device=params.get("device", {})
        )
        return calling.TAP_EVENT, wire, None
    if event.component == "send_digits" and event.final:
        return calling.SEND_DIGITS_EVENT, calling.send_digits_event(**ids, state=event.state), None
    return None
