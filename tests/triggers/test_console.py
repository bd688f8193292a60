"""The console's Triggers view in a real browser (Debian's chromium): each function's
schedules, events and webhooks with their last run, and pausing a schedule."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser import browser_missing, chromium, signed_in_page
from tests.conftest import RunningAgent, start_agent
from tests.waiting import eventually

if TYPE_CHECKING:
    from playwright.sync_api import Page

missing = browser_missing()
if missing:
    pytest.skip(missing, allow_module_level=True)
from playwright.sync_api import expect  # noqa: E402


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    running = start_agent(tmp_path_factory.mktemp("triggers-console") / "data",
                          "--insecure-no-sandbox")
    yield running
    running.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def page(agent: RunningAgent) -> Iterator[Page]:
    with chromium() as browser:
        yield signed_in_page(browser, agent.url, agent.token)


def test_triggers_view_shows_last_runs_and_pauses_a_schedule(agent: RunningAgent,
                                                             page: Page) -> None:
    agent.deploy("digest", "def main(context):\n    return 1\n", schedule="0 6 * * *",
                 on={"storage": {"prefix": "mail/"}})
    with agent.client() as client:
        [schedule] = client.get("/v1/schedules").json()
        task_id = client.post(f"/v1/schedules/{schedule['id']}/run").json()["task_id"]
        eventually(lambda: client.get(f"/v1/tasks/{task_id}").json()["status"] == "succeeded")
        hook = client.post("/v1/webhooks", json={"function": "digest"}).json()
    page.goto(f"{agent.url}/console/#/triggers")
    expect(page.locator("main h1")).to_have_text("Triggers")
    rows = page.locator("#trigger-list tbody tr")
    expect(rows).to_have_count(3)
    scheduled = page.locator("#trigger-list tr", has_text="0 6 * * * (UTC)")
    expect(scheduled.locator(f'[data-task="{task_id}"]')).to_contain_text("succeeded")
    expect(page.locator("#trigger-list tbody")).to_contain_text("storage put/delete under mail/")
    expect(page.locator("#trigger-list tbody")).to_contain_text(hook["path"])
    expect(page.locator("#trigger-list tbody")).not_to_contain_text(hook["secret"])
    page.locator(f'[data-task="{task_id}"]').click()
    expect(page.locator(f'[data-task-trigger="{task_id}"]')).to_have_text(
        f"schedule {schedule['id']}")
    page.goto(f"{agent.url}/console/#/triggers")
    scheduled.get_by_role("button", name="Pause").click()
    expect(scheduled.get_by_role("button", name="Resume")).to_be_visible()
    with agent.client() as client:
        assert client.get(f"/v1/schedules/{schedule['id']}").json()["paused"] is True
