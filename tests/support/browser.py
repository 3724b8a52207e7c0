"""A real headless Chromium for the pages that are the product (scorecard, partner notice, report).

Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it), driven by
Playwright from PyPI pointed at that executable, so no browser is downloaded. Where no Chromium
is installed the tests that need one are skipped with a reason that says so, except under
``CI=true``, where a missing browser is a failure: CI must never pass by skipping them.

    def test_fits_a_phone(page_at):
        page = page_at(390)
        page.goto(path.as_uri())
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser")


def chromium_path() -> str | None:
    """The Chromium to drive: $CHROMIUM (as in the Makefile), else the first of CANDIDATES on PATH."""
    chosen = os.environ.get("CHROMIUM")
    if chosen:
        return chosen if Path(chosen).is_file() else None
    return next(filter(None, map(shutil.which, CANDIDATES)), None)


def require_chromium() -> str:
    path = chromium_path()
    if path is None:
        reason = ("no Chromium is installed: `apt-get install chromium` (as .ci/run does), or set "
                  "CHROMIUM to a Chromium executable")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    return path


# Module scope, not session: while Playwright's sync API is open it holds an asyncio loop running
# in this thread, and a later test file's asyncio.run() would fail on that worker.
@pytest.fixture(scope="module")
def browser():
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # No network for the pages under test: everything they show must be in the file.
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page_at(browser):
    """``page_at(width, height=900)``: a fresh page whose viewport is that many CSS pixels wide;
    requests that leave the machine are refused, so a page that needs the network shows it."""
    contexts = []

    def open_page(width: int, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height})
        context.route("http*://**", lambda route: route.abort())
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()
