"""The console's Notifications view in a real browser (Debian's chromium): adding a
channel, sending a test and seeing its delivery; the URL is never shown back."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser import browser_missing, chromium, signed_in_page
from tests.conftest import RunningAgent, start_agent
from tests.notify.conftest import Receiver
from tests.waiting import eventually

if TYPE_CHECKING:
    from playwright.sync_api import Page

missing = browser_missing()
if missing:
    pytest.skip(missing, allow_module_level=True)
from playwright.sync_api import expect  # noqa: E402


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    running = start_agent(tmp_path_factory.mktemp("notify-console") / "data",
                          "--insecure-no-sandbox",
                          env={"HYAC_CALLBACK_ALLOW_CIDRS": "127.0.0.0/8"})
    yield running
    running.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def page(agent: RunningAgent) -> Iterator[Page]:
    with chromium() as browser:
        yield signed_in_page(browser, agent.url, agent.token)


def test_add_a_channel_test_it_and_see_the_delivery(agent: RunningAgent, page: Page) -> None:
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
