"""The page over plain HTTP: its files from a fixed list, and the download paths of calls.

Only the paths listed in :data:`PAGE_FILES` are served, byte for byte as shipped in the
package, with their content types; any other path below ``/phone`` is 404. Nothing is looked
up on disk by a name taken from the request, so there is no path to traverse.
"""

from __future__ import annotations

__all__ = [
    "DOWNLOADS",
    "PAGE_FILES",
    "PAGE_PATH",
    "SECURITY_HEADERS",
    "SOCKET_PATH",
    "PageFiles",
    "Reply",
    "download_target",
]

import re
from dataclasses import dataclass, field
from importlib import resources

PAGE_PATH = "/phone"
SOCKET_PATH = "/phone/ws"

# URL path → (file in relaykit/phone/static, content type)
PAGE_FILES: dict[str, tuple[str, str]] = {
    "/phone": ("index.html", "text/html; charset=utf-8"),
    "/phone/": ("index.html", "text/html; charset=utf-8"),
    "/phone/phone.js": ("phone.js", "text/javascript; charset=utf-8"),
    "/phone/audio-worklet.js": ("audio-worklet.js", "text/javascript; charset=utf-8"),
    "/phone/phone.css": ("phone.css", "text/css; charset=utf-8"),
    "/phone/icon.svg": ("icon.svg", "image/svg+xml"),
}

# What a page may do: its own scripts and styles, its own WebSocket and downloads, nothing else.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
        "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

# Files of a call, once it has ended: name → content type
DOWNLOADS = {"recording.wav": "audio/wav", "timeline.png": "image/png"}
_DOWNLOAD = re.compile(r"/phone/calls/([0-9a-f-]{36})/(recording\.wav|timeline\.png)")


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, body, content type and extra headers."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, status: int, text: str, **headers: str) -> Reply:
        return cls(status, text.encode(), headers=dict(headers))


class PageFiles:
    """The page's files, read from the package once, on first use."""

    def __init__(self) -> None:
        self._cache: dict[str, bytes] = {}

    def reply(self, path: str) -> Reply | None:
        """The file at URL ``path``, or None when ``path`` is not one of the page's files."""
        listed = PAGE_FILES.get(path)
        if listed is None:
            return None
        name, content_type = listed
        body = self._cache.get(name)
        if body is None:
            body = resources.files(__package__).joinpath("static", name).read_bytes()
            self._cache[name] = body
        return Reply(200, body, content_type, dict(SECURITY_HEADERS))


def download_target(path: str) -> tuple[str, str] | None:
    """``(call_id, file name)`` for ``/phone/calls/<call_id>/<file>``, else None."""
    match = _DOWNLOAD.fullmatch(path)
    return None if match is None else (match.group(1), match.group(2))
