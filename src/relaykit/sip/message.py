"""SIP messages (RFC 3261 §7, §20): parse a datagram, build requests and responses. Sans-I/O.

:func:`parse_message` turns one UDP datagram into a :class:`SipRequest` or
:class:`SipResponse`, or raises :class:`SipParseError` (a ValueError) saying what is wrong.
When a malformed request still has what a client matches a response by (a top Via and a
CSeq, §17.1.3), the exception carries the partly parsed request as ``request``, so the user
agent can answer ``400 Bad Request`` (§8.2.2, §21.4.1) — a missing From, To or Call-ID is
such an error; without them the datagram can only be dropped.

Header names are kept in their canonical long form (compact forms such as ``v``, ``f``,
``i`` are expanded); values are strings. Comma-separated Via, Route and Record-Route values
are split into one value each.
"""

from __future__ import annotations

__all__ = [
    "NameAddr",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "Via",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
]

import re
from dataclasses import dataclass, field

MAX_MESSAGE = 65_535

_COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "r": "Refer-To",
    "u": "Allow-Events",
}
_CANONICAL = {
    name.lower(): name
    for name in (
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Max-Forwards",
        "Route",
        "Record-Route",
        "Allow",
        "Supported",
        "User-Agent",
        "Server",
        "Accept",
        "Expires",
        "Subject",
        "Content-Encoding",
        "Event",
        "Refer-To",
        "Allow-Events",
        "Reason",
        "Require",
        "Unsupported",
        "Warning",
        "WWW-Authenticate",
        "Authorization",
    )
}
_SPLIT_COMMAS = frozenset({"Via", "Route", "Record-Route"})
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_METHOD = re.compile(r"^[A-Z][A-Z0-9\-.!%*_+`'~]*$")
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
_MATCHED_BY = ("Via", "CSeq")  # what a client matches a response to its request by (§17.1.3)


class SipParseError(ValueError):
    """A malformed SIP message; ``request`` is set when a 400 response can still be built."""

    def __init__(self, message: str, request: SipRequest | None = None) -> None:
        super().__init__(message)
        self.request = request


def canonical(name: str) -> str:
    lower = name.lower()
    if lower in _COMPACT:
        return _COMPACT[lower]
    return _CANONICAL.get(lower, name)


@dataclass(slots=True)
class SipMessage:
    """What requests and responses share: headers in order, and the body."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (any form), or None."""
        name = canonical(name)
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        name = canonical(name)
        return [value for key, value in self.headers if key == name]

    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method) from CSeq; (0, "") if absent or invalid."""
        value = self.get("CSeq") or ""
        parts = value.split()
        if len(parts) != 2 or not parts[0].isdigit():
            return 0, ""
        return int(parts[0]), parts[1]

    @property
    def branch(self) -> str:
        vias = self.get_all("Via")
        return parse_via(vias[0]).branch if vias else ""

    def _head(self) -> list[str]:
        return [f"{k}: {v}" for k, v in self.headers if k != "Content-Length"]

    def _encode(self, start: str) -> bytes:
        lines = [start, *self._head(), f"Content-Length: {len(self.body)}", "", ""]
        return "\r\n".join(lines).encode() + self.body


@dataclass(slots=True)
class SipRequest(SipMessage):
    """A SIP request: method, Request-URI, headers, body."""

    method: str = ""
    uri: str = ""

    def serialize(self) -> bytes:
        return self._encode(f"{self.method} {self.uri} SIP/2.0")

    __bytes__ = serialize


@dataclass(slots=True)
class SipResponse(SipMessage):
    """A SIP response: status code, reason phrase, headers, body."""

    status: int = 0
    reason: str = ""

    def serialize(self) -> bytes:
        return self._encode(f"SIP/2.0 {self.status} {self.reason}")

    __bytes__ = serialize


# -- header values ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SipUri:
    """A parsed ``sip:``/``sips:`` URI."""

    scheme: str
    user: str
    host: str
    port: int | None
    params: dict[str, str]

    def address(self, default_port: int = 5060) -> tuple[str, int]:
        return self.host, self.port or default_port


def parse_uri(text: str) -> SipUri:
    """``sip:user@host:port;params`` (no headers part kept). Raises SipParseError."""
    text = text.strip()
    scheme, sep, rest = text.partition(":")
    if not sep or scheme.lower() not in ("sip", "sips", "tel"):
        raise SipParseError(f"unsupported URI {text[:60]!r}")
    rest = rest.split("?", 1)[0]
    main, *param_parts = rest.split(";")
    params = _params(param_parts)
    if scheme.lower() == "tel":
        return SipUri("tel", main, "", None, params)
    user, at, hostport = main.rpartition("@")
    if not at:
        user, hostport = "", main
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = hostport.partition(":")
    if not host or any(c.isspace() for c in host):
        raise SipParseError(f"URI without a host {text[:60]!r}")
    port = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SipParseError(f"bad port in URI {text[:60]!r}")
        port = int(port_text)
    return SipUri(scheme.lower(), user, host, port, params)


def _params(parts: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in parts:
        key, _, value = part.strip().partition("=")
        if key:
            params[key.lower()] = value.strip().strip('"')
    return params


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From/To/Contact value: display name, URI and header parameters."""

    display: str
    uri: str
    params: dict[str, str]

    @property
    def tag(self) -> str:
        return self.params.get("tag", "")


def parse_name_addr(text: str) -> NameAddr:
    """``"Name" <sip:...>;tag=x`` or ``sip:...;tag=x`` (From, To, Contact, Route)."""
    text = text.strip()
    if "<" in text:
        display, _, rest = text.partition("<")
        uri, close, params = rest.partition(">")
        if not close:
            raise SipParseError(f"unclosed '<' in {text[:60]!r}")
        return NameAddr(display.strip().strip('"'), uri.strip(), _params(params.split(";")[1:]))
    bare, *bare_params = text.split(";")
    if not bare:
        raise SipParseError(f"empty address {text[:60]!r}")
    return NameAddr("", bare.strip(), _params(bare_params))


@dataclass(frozen=True, slots=True)
class Via:
    """One Via header value: transport, sent-by host and port, parameters."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str]

    @property
    def branch(self) -> str:
        return self.params.get("branch", "")


def parse_via(text: str) -> Via:
    proto, _, rest = text.strip().partition(" ")
    parts = proto.split("/")
    if len(parts) != 3 or parts[0].upper() != "SIP":
        raise SipParseError(f"bad Via {text[:60]!r}")
    sent_by, *params = rest.strip().split(";")
    host, _, port = sent_by.strip().partition(":")
    if not host or (port and not port.isdigit()):
        raise SipParseError(f"bad Via sent-by {text[:60]!r}")
    return Via(parts[2].upper(), host, int(port) if port else None, _params(params))


# -- the parser ---------------------------------------------------------------------------------
def parse_message(data: bytes) -> SipRequest | SipResponse:
    """Parse one datagram. Raises SipParseError (``.request`` set when 400 is due)."""
    if len(data) > MAX_MESSAGE:
        raise SipParseError("message too large")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
        if not sep:
            raise SipParseError("no empty line after the headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)  # RFC 3261 §7.5: ignore CRLFs before the start line
    if not lines:
        raise SipParseError("empty message")
    start = lines[0]
    message: SipRequest | SipResponse
    if start.startswith("SIP/"):
        parts = start.split(" ", 2)
        if len(parts) < 2 or parts[0] != "SIP/2.0":
            raise SipParseError(f"bad status line {start[:60]!r}")
        if not (len(parts[1]) == 3 and parts[1].isdigit() and 100 <= int(parts[1]) <= 699):
            raise SipParseError(f"bad status code {parts[1][:10]!r}")
        message = SipResponse(status=int(parts[1]), reason=parts[2] if len(parts) > 2 else "")
    else:
        parts = start.split(" ")
        if len(parts) != 3 or not _METHOD.match(parts[0]) or not parts[1]:
            raise SipParseError(f"bad request line {start[:60]!r}")
        if parts[2] != "SIP/2.0":
            raise SipParseError(f"unsupported SIP version {parts[2][:20]!r}")
        message = SipRequest(method=parts[0], uri=parts[1])

    problem: str | None = None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if not headers:
                problem = problem or "continuation line before any header"
                continue
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _TOKEN.match(name):
            problem = problem or f"bad header line {line[:60]!r}"
            continue
        headers.append((canonical(name), value.strip()))
    for name, value in headers:
        if name in _SPLIT_COMMAS:
            message.headers += [(name, v.strip()) for v in _split_commas(value) if v.strip()]
        else:
            message.headers.append((name, value))

    missing = [h for h in _REQUIRED if message.get(h) is None]
    if any(h in missing for h in _MATCHED_BY):
        raise SipParseError(f"missing {', '.join(missing)}")
    # From here on a response can be built and matched: errors carry the request.
    request = message if isinstance(message, SipRequest) else None
    try:
        if missing:
            raise SipParseError(f"missing {', '.join(missing)}")
        _number, method = _check_cseq(message.get("CSeq") or "")
        if request is not None and method != request.method:
            raise SipParseError("CSeq method does not match the request method")
        parse_via(message.get_all("Via")[0])
        parse_name_addr(message.get("From") or "")
        parse_name_addr(message.get("To") or "")
        if problem is not None:
            raise SipParseError(problem)
        if len(message.get_all("Content-Length")) > 1:
            raise SipParseError("several Content-Length headers")
        length_text = message.get("Content-Length")
        if length_text is not None:
            if not length_text.isdigit():
                raise SipParseError("bad Content-Length")
            length = int(length_text)
            if length > len(body):
                raise SipParseError("body shorter than Content-Length")
            body = body[:length]
        if request is not None:
            parse_uri(request.uri)
            mf = request.get("Max-Forwards")
            if mf is not None and not (mf.isdigit() and int(mf) <= 255):
                raise SipParseError("bad Max-Forwards")
    except SipParseError as exc:
        exc.request = request
        raise
    message.body = body
    return message


def _check_cseq(value: str) -> tuple[int, str]:
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or len(parts[0]) > 10:
        raise SipParseError(f"bad CSeq {value[:40]!r}")
    number = int(parts[0])
    if number >= 2**31:
        raise SipParseError("CSeq number out of range")
    return number, parts[1]


def _split_commas(value: str) -> list[str]:
    """Split a header value on commas outside quotes and angle brackets."""
    out: list[str] = []
    depth = 0
    quoted = False
    start = 0
    for i, ch in enumerate(value):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and not quoted and depth == 0:
            out.append(value[start:i])
            start = i + 1
    out.append(value[start:])
    return out
