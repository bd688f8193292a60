"""The console's Notifications view in a real browser (Debian's chromium): adding a
channel, sending a test and seeing its delivery; the URL is never shown back."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.conftest import RunningAgent, start_agent
from tests.notify.conftest import Receiver
from tests.waiting import eventually

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = "/usr/bin/chromium"
WAIT = 30_000  # ms
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: .venv/bin/pip install "
    "'playwright>=1.40' (never `playwright install`: the tests use Debian's chromium)")
if shutil.which(CHROMIUM) is None:
    pytest.skip("chromium is not installed: apt-get install -y chromium", allow_module_level=True)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    running = start_agent(tmp_path_factory.mktemp("notify-console") / "data",
                          "--insecure-no-sandbox",
                          env={"HYAC_CALLBACK_ALLOW_CIDRS": "127.0.0.0/8"})
    yield running
    running.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def page(agent: RunningAgent) -> Iterator[Page]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            tab = browser.new_page()
            tab.set_default_timeout(WAIT)
            assert tab.request.post(f"{agent.url}/console/session",
                                    data={"token": agent.token}).ok
            yield tab
        finally:
            browser.close()


def test_add_a_channel_test_it_and_see_the_delivery(agent: RunningAgent, page: Page) -> None:
    expect = playwright_api.expect
    receiver = Receiver()
    try:
        page.goto(f"{agent.url}/console/#/notifications")
        expect(page.locator("main h1")).to_have_text("Notifications")
        tenant = page.locator("section", has_text="Channels of default")
        tenant.get_by_label("Name").fill("team-chat")
        tenant.get_by_label("Type").select_option("discord")
        tenant.get_by_label("URL or recipients").fill(receiver.url)
        tenant.get_by_role("button", name="Add channel").click()
        row = tenant.locator("tr", has=page.locator('[data-channel="team-chat"]'))
        expect(row).to_contain_text("http://127.0.0.1")
        expect(page.locator("main")).not_to_contain_text(receiver.url)
        row.get_by_role("button", name="Test").click()
        eventually(lambda: receiver.calls)
        deliveries = page.locator("section", has_text="Deliveries sent by default")
        delivered = deliveries.locator(".badge.delivered")
        for _ in range(20):  # the page shows the log as it was when Refresh was pressed
            deliveries.get_by_role("button", name="Refresh").click()
            if delivered.count():
                break
        expect(delivered).to_have_count(1)
        expect(page.locator("section", has_text="Alert rules")).to_be_visible()  # the owner
    finally:
        receiver.close()
