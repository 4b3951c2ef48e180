"""``calling.*`` command handlers, one module per RELAY command family, and the method table.

A handler takes the session's :class:`~relaykit.server.router.Context` and the command's
``params`` (JSON), validates them with :mod:`relaykit.protocol.calling`, asks the call service
to act and returns the RELAY result. Adding a command is one handler module and one line here.
"""

from __future__ import annotations

__all__ = ["METHODS", "Handler"]

from ...protocol import calling
from . import (
    calls,
    components,
    connect,
    detect,
    fax,
    play,
    prompt,
    receive,
    record,
    send_digits,
    tap,
)
from .base import Handler

METHODS: dict[str, Handler] = {
    calling.RECEIVE: receive.receive,
    calling.ANSWER: calls.answer,
    calling.END: calls.end,
    calling.BEGIN: calls.begin,
    calling.DIAL: calls.dial,
    calling.PLAY: play.play,
    calling.PLAY_STOP: components.stop,
    calling.PLAY_VOLUME: components.volume,
    calling.PLAY_AND_COLLECT: prompt.play_and_collect,
    calling.PLAY_AND_COLLECT_STOP: components.stop,
    calling.PLAY_AND_COLLECT_VOLUME: components.volume,
    # record, send digits, detect, tap (issue 14)
    calling.RECORD: record.record,
    calling.RECORD_STOP: components.stop,
    calling.SEND_DIGITS: send_digits.send_digits,
    calling.DETECT: detect.detect,
    calling.DETECT_STOP: components.stop,
    calling.TAP: tap.tap,
    calling.TAP_STOP: components.stop,
    calling.SEND_FAX: fax.unsupported,
    calling.RECEIVE_FAX: fax.unsupported,
    # connect and disconnect (issue 14)
    calling.CONNECT: connect.connect,
    calling.DISCONNECT: connect.disconnect,
}
