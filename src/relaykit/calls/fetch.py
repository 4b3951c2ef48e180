"""Fetching ``audio`` media: http(s) URLs asynchronously, local files from allowed folders only.

An ``audio`` URL is chosen by whoever sends the command, so it must not become a way to probe
the server's network or disk:

- only ``http://`` and ``https://`` URLs, and local paths or ``file://`` URLs inside the folders
  of ``media_dirs`` (after resolving symbolic links); nothing else;
- every address a host name resolves to must be public (globally routable); loopback,
  private, link-local, multicast and reserved addresses are refused unless they lie in one of
  ``allowed_networks``. The check runs when each connection is made, on the addresses it
  connects to, so neither a redirect nor a DNS answer that changes between lookups gets past;
- connect and read timeouts, a deadline for the whole download (redirects included) and a
  size limit, checked while the body arrives;
- every failure raises :class:`FetchError`, whose text is the same for all of them (the
  caller shows it); ``detail`` says what happened, for the server's log.

Downloads run on the event loop (``httpcore``, no thread); reading a local file runs in a
worker thread.
"""

from __future__ import annotations

__all__ = ["FetchError", "FetchPolicy", "MediaFetcher", "public_message"]

import asyncio
import ipaddress
import socket
import ssl
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import certifi
import httpcore

from ..errors import MediaError

_USER_AGENT = b"relaykit/0.1 (+offline RELAY server)"
_REDIRECTS = (301, 302, 303, 307, 308)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def public_message(location: str) -> str:
    """The one text every failure to load ``location`` shows (what failed goes to the log)."""
    shown = location if len(location) <= 200 else location[:197] + "..."
    return f"audio {shown!r} could not be loaded"


class FetchError(MediaError):
    """``audio`` media could not be fetched. ``str()`` is the same generic text for every
    failure; ``detail`` is what happened (for the server log only)."""

    def __init__(self, location: str, detail: str) -> None:
        super().__init__(public_message(location))
        self.location = location
        self.detail = detail


class _Refused(Exception):
    """A connection the policy does not allow (raised inside the connection pool)."""


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """What ``audio`` media may be fetched from, and how long and how much.

    Args:
        timeout: seconds for the whole download, redirects included.
        connect_timeout: seconds to resolve the host and connect.
        read_timeout: seconds without a byte from the server.
        max_bytes: largest encoded file accepted.
        media_dirs: local folders whose files (paths or ``file://`` URLs) may be played.
        allowed_networks: non-public networks that may be fetched from anyway
            (``"127.0.0.0/8"`` for a test web server on loopback).
        max_redirects: redirects followed (each checked like the first URL).
    """

    timeout: float = 10.0
    connect_timeout: float = 5.0
    read_timeout: float = 5.0
    max_bytes: int = 16 * 2**20
    media_dirs: tuple[Path, ...] = ()
    allowed_networks: tuple[IPNetwork, ...] = ()
    max_redirects: int = 3

    @classmethod
    def build(
        cls,
        *,
        media_dirs: Iterable[str | Path] = (),
        allowed_networks: Iterable[str] = (),
        **options: Any,
    ) -> FetchPolicy:
        """A policy from folder names and network strings (``"10.0.0.0/8"``, ``"::1"``)."""
        dirs = tuple(Path(d).expanduser().resolve() for d in media_dirs)
        nets = tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks)
        return cls(media_dirs=dirs, allowed_networks=nets, **options)

    def address_allowed(self, address: str) -> bool:
        """Whether a connection to ``address`` (an IP literal) is allowed."""
        try:
            ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allowed_networks):
            return True
        return ip.is_global and not ip.is_multicast

    def local_path(self, location: str) -> Path | None:
        """The file a local ``location`` names, if it lies in an allowed folder; else None."""
        parts = urllib.parse.urlsplit(location)
        scheme = parts.scheme.lower()
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                return None
            raw = urllib.request.url2pathname(parts.path)
        elif scheme == "":
            raw = location
        else:
            return None
        if not self.media_dirs or not raw:
            return None
        try:
            path = Path(raw).expanduser().resolve(strict=True)
        except (OSError, RuntimeError, ValueError):
            return None
        if not any(path.is_relative_to(d) for d in self.media_dirs):
            return None
        return path


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves host names itself and connects only to addresses the policy allows."""

    def __init__(self, policy: FetchPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        refused = [a for a in addresses if not self._policy.address_allowed(a)]
        if refused or not addresses:
            raise _Refused(f"{host!r} resolves to {', '.join(refused)}, not a public address")
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise _Refused("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class MediaFetcher:
    """Fetches the bytes of ``audio`` media under a :class:`FetchPolicy` (see the module)."""

    def __init__(self, policy: FetchPolicy | None = None) -> None:
        self.policy = policy if policy is not None else FetchPolicy()
        self._pool: httpcore.AsyncConnectionPool | None = None
        self._ssl: ssl.SSLContext | None = None

    async def start(self) -> None:
        """Do the slow first-use work now rather than during a call: load the CA bundle (in
        a thread) and the socket layer."""
        if self._ssl is None:
            self._ssl = await asyncio.to_thread(_ssl_context)
        anyio.get_cancelled_exc_class()  # imports anyio's asyncio backend

    async def fetch(self, location: str) -> bytes:
        """The encoded bytes at ``location``; FetchError (generic text) on any failure."""
        if not isinstance(location, str) or not location.strip():
            raise FetchError(str(location), "empty location")
        location = location.strip()
        try:
            scheme = urllib.parse.urlsplit(location).scheme.lower()
        except ValueError as exc:
            raise FetchError(location, f"bad URL: {exc}") from None
        if scheme in ("http", "https"):
            return await self._download(location)
        return await asyncio.to_thread(self._read_local, location)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    # -- local files ----------------------------------------------------------------------------
    def _read_local(self, location: str) -> bytes:
        path = self.policy.local_path(location)
        if path is None:
            raise FetchError(location, "not an http(s) URL nor a file in media_dirs")
        try:
            if not path.is_file():
                raise FetchError(location, "not a regular file")
            with path.open("rb") as f:
                data = f.read(self.policy.max_bytes + 1)
        except OSError as exc:
            raise FetchError(location, f"cannot read {path}: {exc.strerror or exc}") from None
        if len(data) > self.policy.max_bytes:
            raise FetchError(location, f"larger than max_bytes ({self.policy.max_bytes})")
        return data

    # -- http(s) --------------------------------------------------------------------------------
    def _connection_pool(self) -> httpcore.AsyncConnectionPool:
        if self._pool is None:
            if self._ssl is None:
                self._ssl = _ssl_context()
            self._pool = httpcore.AsyncConnectionPool(
                ssl_context=self._ssl,
                max_connections=64,
                keepalive_expiry=30.0,
                network_backend=_GuardedBackend(self.policy),
            )
        return self._pool

    async def _download(self, url: str) -> bytes:
        policy = self.policy
        try:
            async with asyncio.timeout(policy.timeout):
                target = url
                for _ in range(policy.max_redirects + 1):
                    data, location = await self._get(target)
                    if location is None:
                        return data
                    target = urllib.parse.urljoin(target, location)
                    if urllib.parse.urlsplit(target).scheme.lower() not in ("http", "https"):
                        raise FetchError(url, f"redirected to a non-http URL {target!r}")
                raise FetchError(url, f"more than {policy.max_redirects} redirects")
        except FetchError:
            raise
        except TimeoutError:
            raise FetchError(url, f"timed out after {policy.timeout:g} s") from None
        except _Refused as exc:
            raise FetchError(url, f"refused: {exc}") from None
        except httpcore.TimeoutException as exc:
            raise FetchError(url, f"timed out ({type(exc).__name__})") from None
        except (httpcore.ConnectError, httpcore.NetworkError) as exc:
            raise FetchError(url, f"cannot connect: {exc}") from None
        except (httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
            raise FetchError(url, f"bad URL or reply: {exc}") from None
        except (OSError, ValueError, TypeError, ssl.SSLError) as exc:  # bad URL, TLS, socket
            raise FetchError(url, f"cannot fetch: {exc}") from None

    async def _get(self, url: str) -> tuple[bytes, str | None]:
        """One GET: the body, or the Location of a redirect."""
        policy = self.policy
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname:
            raise FetchError(url, "no host in the URL")
        headers = [
            (b"Host", parts.netloc.rsplit("@", 1)[-1].encode("idna")),
            (b"User-Agent", _USER_AGENT),
            (b"Accept", b"audio/*, */*;q=0.5"),
        ]
        timeouts = {
            "connect": policy.connect_timeout,
            "read": policy.read_timeout,
            "write": policy.read_timeout,
            "pool": policy.timeout,
        }
        async with self._connection_pool().stream(
            "GET", url, headers=headers, extensions={"timeout": timeouts}
        ) as response:
            status = response.status
            fields = _headers(response.headers)
            if status in _REDIRECTS and "location" in fields:
                return b"", fields["location"]
            if not 200 <= status < 300:
                raise FetchError(url, f"HTTP {status}")
            length = fields.get("content-length", "")
            if length.isdigit() and int(length) > policy.max_bytes:
                raise FetchError(url, f"{length} bytes; the limit is {policy.max_bytes}")
            chunks: list[bytes] = []
            received = 0
            async for chunk in response.aiter_stream():
                received += len(chunk)
                if received > policy.max_bytes:
                    raise FetchError(url, f"larger than the limit of {policy.max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks), None


def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


def _headers(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1").strip() for k, v in raw}
