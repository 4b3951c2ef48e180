"""relaykit.calls.fetch: audio URLs fetched asynchronously, within limits, and never a probe.

Real HTTP servers on 127.0.0.1 (allowed explicitly with ``allowed_networks``); the refusals
of private addresses happen before any packet is sent.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from relaykit.calls.fetch import FetchError, FetchPolicy, MediaFetcher, public_message
from relaykit.media.frames import SAMPLE_RATE
from relaykit.media.sources import decode_audio

LOOPBACK = ("127.0.0.0/8",)


def tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate)


def dominant_frequency(x: np.ndarray) -> float:
    mag = np.abs(np.fft.rfft(x * np.hanning(x.size), n=SAMPLE_RATE))
    return float(np.argmax(mag[1:]) + 1)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/redirect"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/to-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving ``tmp_path/www``; yields (base URL, directory)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def fetch(location: str, **policy: object) -> bytes:
    fetcher = MediaFetcher(FetchPolicy.build(**policy))  # type: ignore[arg-type]
    try:
        return await fetcher.fetch(location)
    finally:
        await fetcher.close()


async def failure(location: str, **policy: object) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetch(location, **policy)
    assert str(info.value) == public_message(location)  # one text for every failure
    return info.value


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- what used to be load_audio's URL tests (tests/media/test_sources.py) ----------------------
@pytest.mark.asyncio
async def test_http_url_is_downloaded_and_decoded(http_root: tuple[str, Path]) -> None:
    """An http:// URL is fetched and decodes like a file."""
    base, root = http_root
    sf.write(root / "prompt.wav", tone(440, 0.75, 44100), 44100)
    audio = decode_audio(await fetch(f"{base}/prompt.wav", allowed_networks=LOOPBACK), "p")
    assert abs(audio.size - 0.75 * SAMPLE_RATE) <= 16
    assert abs(dominant_frequency(audio) - 440) <= 2


@pytest.mark.asyncio
async def test_http_mp3_is_decoded(http_root: tuple[str, Path]) -> None:
    """An MP3 served over HTTP decodes from memory."""
    base, root = http_root
    sf.write(root / "prompt.mp3", tone(440, 1.0, 44100), 44100, format="MP3")
    audio = decode_audio(await fetch(f"{base}/prompt.mp3", allowed_networks=LOOPBACK), "p")
    assert abs(dominant_frequency(audio) - 440) <= 2


@pytest.mark.asyncio
async def test_http_404_reports_the_status_in_the_detail(http_root: tuple[str, Path]) -> None:
    """A non-2xx reply is a FetchError; the status is in its detail (the log), not its text."""
    base, _ = http_root
    error = await failure(f"{base}/missing.wav", allowed_networks=LOOPBACK)
    assert "HTTP 404" in error.detail and "HTTP" not in str(error)  # the port may hold "404"


@pytest.mark.asyncio
async def test_http_body_over_max_bytes_is_refused(http_root: tuple[str, Path]) -> None:
    """A download larger than max_bytes is abandoned."""
    base, root = http_root
    sf.write(root / "big.wav", tone(440, 1.0, 16000), 16000)
    error = await failure(f"{base}/big.wav", allowed_networks=LOOPBACK, max_bytes=4096)
    assert "limit" in error.detail


@pytest.mark.asyncio
async def test_connection_refused_is_a_fetch_error() -> None:
    """A closed port (on an allowed network) fails with the generic text; the detail says why."""
    error = await failure(f"http://127.0.0.1:{_closed_port()}/a.wav", allowed_networks=LOOPBACK)
    assert "connect" in error.detail


@pytest.mark.asyncio
async def test_server_that_never_answers_times_out() -> None:
    """A server that accepts but never replies: FetchError within the deadline."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel completes the handshake; nobody ever replies
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/slow.wav"
        error = await failure(url, allowed_networks=LOOPBACK, timeout=0.3)
    assert "timed out" in error.detail


@pytest.mark.asyncio
async def test_a_server_that_sends_forever_is_cut_off_at_the_size_limit() -> None:
    """No Content-Length, an endless body: the download stops past max_bytes."""

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\n\r\n")
        try:
            for _ in range(10_000):
                writer.write(bytes(8192))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        writer.close()

    server = await asyncio.start_server(endless, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        error = await failure(
            f"http://127.0.0.1:{port}/big.wav", allowed_networks=LOOPBACK, max_bytes=100_000
        )
    assert "limit" in error.detail


# -- no probing ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "127.1", "2130706433", "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]"],
)
@pytest.mark.asyncio
async def test_loopback_targets_are_refused_before_connecting(host: str) -> None:
    """Without allowed_networks, no connection is tried to loopback or unspecified addresses,
    however the host is written."""
    error = await failure(f"http://{host}:{_closed_port()}/a.wav")
    assert error.detail.startswith("refused")


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "192.168.0.1", "172.16.5.4", "169.254.169.254", "100.64.0.1", "224.0.0.1",
     "fd00::1", "fe80::1", "::ffff:10.0.0.1", "240.0.0.1", "255.255.255.255"],
)  # fmt: skip
def test_private_link_local_shared_multicast_and_reserved_addresses_are_not_allowed(
    address: str,
) -> None:
    """The check every connection passes (decided without sending anything): only public
    addresses, unless the network is configured."""
    assert not FetchPolicy().address_allowed(address)
    assert FetchPolicy.build(allowed_networks=["0.0.0.0/0", "::/0"]).address_allowed(address)


def test_public_addresses_are_allowed() -> None:
    assert FetchPolicy().address_allowed("93.184.215.14")
    assert FetchPolicy().address_allowed("2606:4700::1111")


@pytest.mark.asyncio
async def test_open_closed_and_silent_ports_look_the_same(http_root: tuple[str, Path]) -> None:
    """An audio URL on loopback cannot tell a listening port from a closed or a silent one:
    the same generic message, refused before any connection."""
    base, root = http_root
    (root / "a.wav").write_bytes(b"RIFF")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        urls = {
            "open": f"{base}/a.wav",
            "closed": f"http://127.0.0.1:{_closed_port()}/a.wav",
            "silent": f"http://127.0.0.1:{silent.getsockname()[1]}/a.wav",
        }
        errors = {name: await failure(url) for name, url in urls.items()}
    texts = {str(e).replace(e.location, "URL") for e in errors.values()}
    assert texts == {"audio 'URL' could not be loaded"}
    assert all(e.detail.startswith("refused") for e in errors.values())


@pytest.mark.asyncio
async def test_a_redirect_to_a_refused_address_is_refused(http_root: tuple[str, Path]) -> None:
    """Redirects are followed only to where the first URL could go: to file:// never."""
    base, root = http_root
    sf.write(root / "ok.wav", tone(440, 0.1, 8000), 8000)
    assert await fetch(f"{base}/redirect/ok.wav", allowed_networks=LOOPBACK)
    error = await failure(f"{base}/to-file", allowed_networks=LOOPBACK)
    assert "non-http" in error.detail


@pytest.mark.asyncio
async def test_local_files_only_from_media_dirs(tmp_path: Path) -> None:
    """A path or file:// URL is read only inside media_dirs (symbolic links resolved); any
    other local file — existing or not — fails with the same generic text."""
    allowed = tmp_path / "prompts"
    allowed.mkdir()
    (allowed / "hello.wav").write_bytes(b"hello")
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"secret")
    (allowed / "link.wav").symlink_to(secret)
    dirs = {"media_dirs": [allowed]}
    assert await fetch(str(allowed / "hello.wav"), **dirs) == b"hello"
    assert await fetch((allowed / "hello.wav").as_uri(), **dirs) == b"hello"
    for location in (
        str(secret),
        secret.as_uri(),
        str(allowed / "link.wav"),
        str(allowed / ".." / "secret.wav"),
        str(tmp_path / "missing.wav"),
        "/etc/passwd",
        "file://otherhost/etc/passwd",
        "ftp://example.com/a.wav",
        "data:,x",
    ):
        await failure(location, **dirs)
    await failure(str(allowed / "hello.wav"))  # no media_dirs: no local files at all


@pytest.mark.asyncio
async def test_a_local_file_over_max_bytes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big.wav").write_bytes(bytes(10_000))
    error = await failure(str(tmp_path / "big.wav"), media_dirs=[tmp_path], max_bytes=1000)
    assert "max_bytes" in error.detail
