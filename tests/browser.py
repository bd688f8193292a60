"""Debian's chromium for the browser tests, driven by Playwright for Python (never a
downloaded browser): where it is, how it is started, and what to install when it is not
there (the tests then skip, naming it)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
WAIT = 30_000  # ms: how long a page may take to show what a step waits for


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (what to install), or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return ("playwright is not installed: .venv/bin/pip install 'playwright>=1.40' "
                "(never `playwright install`: the tests use Debian's chromium)")
    if not os.path.exists(CHROMIUM):
        return "chromium is not installed: apt-get install -y chromium"
    return None


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's chromium, headless, closed on the way out."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def signed_in_page(browser: Browser, url: str, token: str) -> Page:
    """A tab of ``browser`` signed in to the console of the agent at ``url`` with ``token``
    (the session cookie the page would get), waiting up to WAIT for what a step awaits."""
    tab = browser.new_page()
    tab.set_default_timeout(WAIT)
    assert tab.request.post(f"{url}/console/session", data={"token": token}).ok
    return tab
