"""The phone's page over plain HTTP: its own files only, with their content types; a call's
recording and timeline only with the call's project credentials, once the call has ended."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from relaykit import RelayServer
from relaykit.phone import CallDirectory
from relaykit.phone.web import PAGE_FILES
from tests.helpers import WAIT, outcome
from tests.phone.audio import dominant_frequency, level_dbfs, read_wav, tone, write_wav
from tests.phone.conftest import PROJECT_A, PROJECT_B, TOKEN_A, TOKEN_B
from tests.phone.http_client import bearer, get

pytestmark = pytest.mark.asyncio

STATIC = resources.files("relaykit.phone").joinpath("static")


async def test_the_page_and_its_files_are_served_with_their_content_types(server):
    """Every listed path answers its file, byte for byte, with its content type and a
    content security policy; HEAD gives the headers without the body."""
    for path, (name, content_type) in PAGE_FILES.items():
        status, headers, body = await get(server.port, path)
        assert status == 200, path
        assert headers["content-type"] == content_type
        assert body == STATIC.joinpath(name).read_bytes()
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
    status, headers, body = await get(server.port, "/phone", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(len(STATIC.joinpath("index.html").read_bytes()))
    # the page names only files that are served
    page = STATIC.joinpath("index.html").read_text()
    for referenced in ("/phone/phone.js", "/phone/phone.css", "/phone/icon.svg"):
        assert referenced in page and referenced in PAGE_FILES
    assert "/phone/audio-worklet.js" in STATIC.joinpath("phone.js").read_text()


@pytest.mark.parametrize(
    "path",
    [
        "/phone/../pyproject.toml",
        "/phone/%2e%2e/%2e%2e/pyproject.toml",
        "/phone/..%2f..%2fpyproject.toml",
        "/phone/static/index.html",
        "/phone/web.py",
        "/phone/__init__.py",
        "/phone//phone.js",
        "/phone/phone.js/",
        "/phone/PHONE.JS",
        "/phone/phone.js%00",
        "/phone/./phone.js",
        "/phone/calls/../../../etc/passwd",
        "/phonebook",
    ],
)
async def test_nothing_but_the_listed_files_is_served(server, path):
    """Paths outside the list, however spelt, are 404 and show nothing of any file."""
    status, _headers, body = await get(server.port, path)
    assert status == 404
    assert body in (b"not found",)


async def test_only_get_and_head_are_served(server):
    status, headers, _ = await get(server.port, "/phone", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"


async def _ended_call(server: RelayServer, run_ivr, tmp_path) -> str:
    """A call of project A whose IVR played a 440 Hz tone, then hung up; returns its id."""
    wav = write_wav(tmp_path / "tone.wav", tone(440, 0.6, -20))

    async def ivr(call):
        await call.answer()
        await call.play_audio(str(wav))
        await call.hangup()

    outcomes = await run_ivr(ivr)
    caller = await server.dial_in("office", project=PROJECT_A)
    await caller.wait_answered(WAIT)
    # while it is up, its files are not ready
    status, _, body = await get(
        server.port, f"/phone/calls/{caller.call_id}/recording.wav", bearer(PROJECT_A, TOKEN_A)
    )
    assert status == 409 and b"still up" in body
    await outcome(outcomes)
    await caller.wait_for_state("ended", WAIT)
    return caller.call_id


async def test_a_calls_files_need_its_projects_credentials(server, run_ivr, tmp_path):
    """No credentials or a wrong token: 401. Another project's credentials: 404, as if there
    were no such call. The call's own project gets the stereo WAV and the timeline PNG."""
    call_id = await _ended_call(server, run_ivr, tmp_path)
    path = f"/phone/calls/{call_id}/recording.wav"
    for headers in (
        {},
        bearer(PROJECT_A, "wrong"),
        {"Authorization": "Bearer not-base64!"},
        {"Authorization": "Basic " + bearer(PROJECT_A, TOKEN_A)["Authorization"][7:]},
    ):
        status, _, body = await get(server.port, path, headers)
        assert status == 401 and b"log in" in body
    status, _, body = await get(server.port, path, bearer(PROJECT_B, TOKEN_B))
    assert (status, body) == (404, b"call not found")

    status, headers, body = await get(server.port, path, bearer(PROJECT_A, TOKEN_A))
    assert status == 200 and headers["content-type"] == "audio/wav"
    assert "attachment" in headers["content-disposition"]
    samples, rate, channels = read_wav(body)
    assert (rate, channels) == (16000, 2)
    entry = server.phone.directory.find(PROJECT_A, call_id)
    assert np.array_equal(samples, entry.call.media.recording())  # nothing lost
    ivr = samples[:, 1]
    played = np.flatnonzero(ivr)
    loud = ivr[played[0] : played[-1] + 1]
    assert len(loud) / 16000 == pytest.approx(0.6, abs=0.05)
    assert dominant_frequency(loud) == pytest.approx(440, abs=2)
    assert level_dbfs(loud) == pytest.approx(-20, abs=0.5)

    status, headers, body = await get(
        server.port, f"/phone/calls/{call_id}/timeline.png", bearer(PROJECT_A, TOKEN_A)
    )
    assert status == 200 and headers["content-type"] == "image/png"
    assert body.startswith(b"\x89PNG\r\n\x1a\n")
    status, _, _ = await get(
        server.port,
        "/phone/calls/00000000-0000-0000-0000-000000000000/timeline.png",
        bearer(PROJECT_A, TOKEN_A),
    )
    assert status == 404


async def test_the_directory_keeps_the_last_ended_calls_of_each_project(server, run_ivr):
    """Beyond ``keep_ended`` ended calls of a project, the oldest is let go; live calls and
    other projects' calls are not affected."""

    async def never_answer(call):
        return call.id

    for project in (PROJECT_A, PROJECT_B):
        await run_ivr(never_answer, ("idle",), project=project)
    directory = CallDirectory(server.call_service, keep_ended=2)
    try:
        other = await server.dial_in("idle", project=PROJECT_B)
        await other.hangup()
        live = await server.dial_in("idle", project=PROJECT_A)
        ended = []
        for _ in range(3):
            caller = await server.dial_in("idle", project=PROJECT_A)
            await caller.hangup()
            ended.append(caller.call_id)
        kept = {entry.call.call_id for entry in directory.calls(PROJECT_A)}
        assert kept == {live.call_id, *ended[1:]}
        assert directory.find(PROJECT_A, ended[0]) is None
        assert directory.find(PROJECT_B, other.call_id) is not None
        assert directory.find(PROJECT_A, other.call_id) is None
    finally:
        directory.close()


async def test_a_server_without_the_phone_serves_no_page():
    async with RelayServer(credentials={PROJECT_A: TOKEN_A}, phone=False) as server:
        assert server.phone is None
        status, _, _ = await get(server.port, "/phone")
        assert status == 404


async def test_the_readme_shows_the_phone_in_a_call():
    """The README's screenshot exists (taken by the PIN test's browser, with
    RELAYKIT_PHONE_SCREENSHOT=docs/phone.png)."""
    root = Path(__file__).resolve().parents[2]
    assert (root / "docs" / "phone.png").read_bytes().startswith(b"\x89PNG")
    assert "](docs/phone.png)" in (root / "README.md").read_text()
