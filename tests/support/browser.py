"""The headless Chromium the browser tests drive through Playwright: Debian's `chromium`
package, never a browser Playwright downloads. Without it the tests skip, saying how to
install it; with CI=true they fail (.ci/run installs it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NoReturn

import pytest
from playwright.async_api import Browser, async_playwright

from tests.support.databases import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
HOW_TO_INSTALL = "install Debian's package: sudo apt-get install chromium"
# No sandbox: CI runs as root, where Chromium's sandbox refuses to start. The rest keeps
# a test run from reaching for Google's services, updates or a first-run dialog.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"CI requires Chromium: {reason}", pytrace=False)
    pytest.skip(f"{reason}; the browser tests are off: {HOW_TO_INSTALL}")


def chromium_executable() -> Path:
    """Debian's Chromium; skips the test (fails it in CI) without it."""
    if not CHROMIUM.is_file():
        _unavailable(f"no Chromium at {CHROMIUM}")
    return CHROMIUM


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless Chromium, closed at the end; skips the test (fails it in CI) without one."""
    executable = chromium_executable()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=LAUNCH_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()
