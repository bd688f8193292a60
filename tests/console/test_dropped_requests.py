"""The console when the network drops its requests, in Debian's chromium (never a
downloaded browser). Chromium aborts every request in flight when a network interface
changes (``net::ERR_NETWORK_CHANGED``), as Docker's do whenever a container starts on the
same host; a page whose script did not arrive used to stay on "Loading…" for good. Here
each kind of request is dropped on purpose: a module of the page, the whole page's
script, the session read at start, the live log tail. The console says what happened and
recovers by itself, or offers to try again, and shows no line twice."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.browser import WAIT, browser_missing, chromium
from tests.conftest import RunningAgent
from tests.console.conftest import give_cookie, sign_in

missing = browser_missing()
if missing:
    pytest.skip(missing, allow_module_level=True)
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect  # noqa: E402

from tests.console.test_browser import Watched  # noqa: E402

HELLO = """
def main(context):
    print("line", context.request.query.get("name"))
    return {"ok": True}
"""

DROPPED = "internetdisconnected"  # what chromium reports for a request the network lost


@pytest.fixture(scope="module")
def agent(console_agent: RunningAgent) -> RunningAgent:
    console_agent.deploy("hello", HELLO)
    return console_agent


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture()
def context(browser: Browser) -> Iterator[BrowserContext]:
    opened = browser.new_context(viewport={"width": 1280, "height": 800})
    yield opened
    opened.close()


def drop(page: Page, pattern: str, times: int | None = 1) -> list[str]:
    """Drop the first ``times`` requests to URLs matching ``pattern`` (all if None), as the
    network would; returns the URLs of every request that matched, dropped or not."""
    matched: list[str] = []

    def handle(route: Route) -> None:
        matched.append(route.request.url)
        if times is None or len(matched) <= times:
            route.abort(DROPPED)
        else:
            route.continue_()

    page.route(pattern, handle)
    return matched


def test_a_module_the_network_dropped_loads_on_the_next_try(
    context: BrowserContext, agent: RunningAgent
) -> None:
    watched = Watched(context.new_page())
    page = watched.page
    boots = drop(page, "**/console/static/boot.js", times=0)
    tasks = drop(page, "**/console/static/views/tasks.js")
    page.goto(f"{agent.url}/console/")
    expect(page.get_by_role("heading", name="Sign in to Hyac")).to_be_visible()
    # the page loaded itself once more, and the second time the module arrived
    assert len(boots) == 2 and len(tasks) == 2, (boots, tasks)
    assert page.evaluate("sessionStorage.getItem('hyac-console-load-failures')") is None
    assert not watched.errors, watched.errors


def test_a_page_whose_script_never_arrives_says_so_and_offers_a_reload(
    context: BrowserContext, agent: RunningAgent
) -> None:
    page = Watched(context.new_page()).page
    apps = drop(page, "**/console/static/app.js", times=None)
    page.goto(f"{agent.url}/console/")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("did not load completely")
    expect(alert).to_contain_text("Trying again")
    # three reloads on their own (1 + 2 + 4 s), then the page asks
    expect(alert).to_contain_text("could not load", timeout=WAIT)
    assert len(apps) == 4, apps
    reload = page.get_by_role("button", name="Reload")
    time.sleep(2.5)  # no further reload on its own
    assert len(apps) == 4, apps
    page.unroute("**/console/static/app.js")
    reload.click()
    expect(page.get_by_role("heading", name="Sign in to Hyac")).to_be_visible()


def test_without_any_script_the_page_points_to_a_reload_after_a_while(
    context: BrowserContext, agent: RunningAgent
) -> None:
    page = context.new_page()
    drop(page, "**/console/static/boot.js", times=None)
    page.goto(f"{agent.url}/console/")
    hint = page.get_by_role("link", name="Reload the console")
    expect(page.locator("main")).to_contain_text("Loading…")
    expect(hint).to_be_hidden()  # not while a page that works is still loading
    expect(hint).to_be_visible(timeout=WAIT)
    page.unroute("**/console/static/boot.js")
    hint.click()
    expect(page.get_by_role("heading", name="Sign in to Hyac")).to_be_visible()


def test_a_session_read_the_network_dropped_is_sent_again(
    context: BrowserContext, agent: RunningAgent
) -> None:
    give_cookie(context, agent, sign_in(agent))
    page = Watched(context.new_page()).page
    boots = drop(page, "**/console/static/boot.js", times=0)
    reads = drop(page, "**/console/session")
    page.goto(f"{agent.url}/console/")
    expect(page.locator("main h1")).to_have_text("Overview")
    assert len(reads) == 2 and len(boots) == 1, (reads, boots)  # sent again, no reload


def test_an_agent_out_of_reach_at_start_is_said_with_a_way_to_try_again(
    context: BrowserContext, agent: RunningAgent
) -> None:
    give_cookie(context, agent, sign_in(agent))
    page = Watched(context.new_page()).page
    reads = drop(page, "**/console/session", times=None)
    page.goto(f"{agent.url}/console/")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The console could not start")
    expect(alert).to_contain_text("/console/session could not be reached")
    assert len(reads) == 2, reads
    page.unroute("**/console/session")
    page.get_by_role("button", name="Try again").click()
    expect(page.locator("main h1")).to_have_text("Overview")


def test_a_live_tail_the_network_dropped_reconnects_and_shows_each_line_once(
    context: BrowserContext, agent: RunningAgent
) -> None:
    give_cookie(context, agent, sign_in(agent))
    page = Watched(context.new_page()).page
    before = f"before-{time.monotonic_ns()}"
    agent.invoke("hello", query={"name": before})
    tails = drop(page, "**/v1/logs/stream*", times=2)
    page.goto(f"{agent.url}/console/#/logs")
    expect(page.locator("main h1")).to_have_text("Logs")
    lines = page.locator("#log-lines li")
    expect(lines.filter(has_text=f"line {before}")).to_have_count(1)
    # dropped twice: the tail waits 1 s, then 2 s, and says so, then it is live again
    state = page.locator("#log-state")
    expect(state).to_contain_text("reconnecting in")
    expect(state).to_have_text("live", timeout=WAIT)
    assert len(tails) == 3, tails
    # the reconnection asked for what came since the newest line, which it has once
    assert "since=" in tails[-1], tails
    after = f"after-{time.monotonic_ns()}"
    agent.invoke("hello", query={"name": after})
    expect(lines.filter(has_text=f"line {after}")).to_have_count(1)
    # whatever came around the reconnection, no line is there twice
    texts = [text for text in lines.all_inner_texts() if before in text or after in text]
    assert len(texts) == len(set(texts)) == 2, texts
