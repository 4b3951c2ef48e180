"""Debian's chromium, headless, driven by Playwright; its fake microphone speaks a WAV file.

Playwright's own browser download cannot work here (and is never run): the browser is the
``chromium`` package, which the README's test command installs. A CI run fails without it; a
local run skips the browser tests, saying how to install it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from relaykit import RelayServer

ARGS = [
    "--no-sandbox",  # as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-ui-for-media-stream",  # grant the microphone without asking
    "--use-fake-device-for-media-stream",
]
TIMEOUT_MS = 20_000  # generous: a loaded 2-core machine; never a timing claim


def chromium() -> str:
    """The chromium binary; fails a CI run, skips elsewhere (loudly) when it is missing."""
    path = shutil.which("chromium")
    message = None
    if path is None:
        message = (
            "chromium is not installed, so the browser phone's tests cannot run: "
            "apt-get install -y --no-install-recommends chromium"
        )
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            message = "playwright is not installed: pip install -e '.[test]'"
    if message is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (.ci/run installs it)")
        pytest.skip(message)
    assert path is not None
    return path


@asynccontextmanager
async def browser(microphone: Path, *extra: str) -> AsyncIterator[Any]:
    """A headless chromium whose microphone plays ``microphone`` (16 kHz WAV) once, from the
    start each time a page opens it."""
    from playwright.async_api import async_playwright, expect

    executable = chromium()
    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable,
            args=[*ARGS, f"--use-file-for-fake-audio-capture={microphone}%noloop", *extra],
        )
        try:
            yield launched
        finally:
            await launched.close()


def page_url(server: RelayServer, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{server.port}/phone"


async def open_phone(
    browser_: Any, url: str, project: str, token: str, *, expect_login: bool = True
) -> Any:
    """A new tab on the phone, logged in to ``project``."""
    from playwright.async_api import expect

    context = await browser_.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(url)
    await page.fill("#login-project", project)
    await page.fill("#login-token", token)
    await page.click("#login button[type=submit]")
    if expect_login:
        await expect(page.locator("#main")).to_be_visible(timeout=TIMEOUT_MS)
    return page
