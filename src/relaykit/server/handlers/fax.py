"""``calling.send_fax`` and ``calling.receive_fax``: not supported here, said plainly (501)."""

from __future__ import annotations

from typing import Any

from ...protocol import blade
from .base import Context

FAX_UNSUPPORTED = (
    "fax send and receive are not supported by relaykit; calling.detect with type fax hears "
    "fax tones"
)


async def unsupported(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return blade.relay_result(501, FAX_UNSUPPORTED)
