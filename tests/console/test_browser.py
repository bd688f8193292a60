"""The console in a real browser: Debian's chromium driven by Playwright (never a
downloaded browser). Signs in through the URL `hyac console --print-url` prints, sees a
deployed function, invokes it from the panel, watches a log line arrive live and a task's
progress bar move before cancelling it, checks that a viewer sees no admin views and that
a function's `<script>` output stays text. Writes a screenshot of each page to
docs/console/."""

from __future__ import annotations

import base64
import collections
import csv
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser import WAIT, browser_missing, chromium
from tests.conftest import RunningAgent, current_runtime
from tests.console.conftest import hyac, make_user

# Every run takes a screenshot of each page; they go to docs/console only when asked
# (HYAC_CONSOLE_SHOTS=docs/console), so an ordinary run leaves the tree as it was.
SHOTS = Path(os.environ.get("HYAC_CONSOLE_SHOTS") or Path(tempfile.gettempdir()) / "hyac-console-shots")

missing = browser_missing()
if missing:
    pytest.skip(missing, allow_module_level=True)
from playwright.sync_api import Browser, Dialog, Page, Request, expect  # noqa: E402

expect.set_options(timeout=WAIT)

HELLO = """
def main(context):
    name = context.request.query.get("name", "world")
    print(f"hello line {name}")
    return {"hello": name}
"""
XSS = """
def main(context):
    print("<script>alert(1)</script>")
    return Response(body="<script>alert(1)</script><img src=x onerror=alert(2)>",
                    headers={"content-type": "text/html"})
"""
NOISY = """
def main(context):
    for n in range(300):
        print(f"noisy line {n}")
    return "done"
"""
SLOW = """
import time

def main(context):
    for step in range(1, 121):
        context.task.progress(step / 120, f"step {step}")
        time.sleep(0.25)
    return {"done": True}
"""


#: every page a test here opens (tests/conftest.py reports a failing test's waiting requests)
WATCHED: list[Watched] = []

#: hello's sample request (hyac.toml's sample, or any request through the API)
SAMPLE = {"method": "POST", "path": "/", "query": {"name": "sample"},
          "headers": {"X-Demo": "yes"}, "body": {"greeting": "hi"}}


def deploy_with_sample(agent: RunningAgent, name: str, source: str, sample: dict) -> None:
    entry = f"functions/{name}.py"
    with agent.client() as client:
        answer = client.put(f"/v1/functions/{name}", json={
            "entry": entry, "files_b64": {entry: base64.b64encode(source.encode()).decode()},
            "config": {"runtime": current_runtime()}, "sample": sample})
    assert answer.status_code == 201, answer.text


@pytest.fixture(scope="module")
def deployed(backend_agent: RunningAgent) -> RunningAgent:
    console_agent = backend_agent
    console_agent.deploy("hello", HELLO)
    # a second version to diff, with a sample for the invoke panel
    deploy_with_sample(console_agent, "hello", HELLO.replace("world", "there"), SAMPLE)
    console_agent.deploy("xss", XSS)
    console_agent.deploy("slow", SLOW, background=True, timeout=120)
    console_agent.deploy("noisy", NOISY)
    for name in ("ann", "bob", "cy"):
        assert console_agent.invoke("hello", query={"name": name}).json()["ok"]
    with console_agent.client() as owner:
        limits = {"functions": 10, "executions_per_day": 1000, "concurrency": 8}
        assert owner.put("/v1/quotas", json={"values": limits}).status_code == 200
    return console_agent


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


class Watched:
    """A page, and the dialogs and script errors it met (none may happen). The requests
    it sent and has no answer to yet are kept, and its last events (answers, failed
    requests, console lines, script errors), closed or not: a failing test shows them
    (WATCHED)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.sent: dict[Request, float] = {}
        self.events: collections.deque[str] = collections.deque(maxlen=30)
        self.opened = time.monotonic()
        page.on("dialog", self._dialog)
        page.on("pageerror", self._error)
        page.on("request", self._sent)
        page.on("requestfinished", lambda request: self.sent.pop(request, None))
        page.on("requestfailed", self._failed)
        page.on("response", lambda answer: self._event(
            f"{answer.status} {answer.request.method} {answer.url}"))
        page.on("console", lambda line: self._event(f"console.{line.type}: {line.text}"))
        page.set_default_timeout(WAIT)
        WATCHED.append(self)

    def unfinished(self) -> list[str]:
        now = time.monotonic()
        waiting = [] if self.page.is_closed() else [
            f"{request.method} {request.url} sent {now - at:.1f} s ago by the page at "
            f"{self.page.url}" for request, at in self.sent.items()]
        return waiting + [f"  last events of a page opened {now - self.opened:.1f} s ago:",
                          *self.events]

    def _event(self, text: str) -> None:
        self.events.append(f"  {time.monotonic() - self.opened:7.2f} s  {text}")

    def _sent(self, request: Request) -> None:
        self.sent.setdefault(request, time.monotonic())
        self._event(f"-> {request.method} {request.url}")

    def _failed(self, request: Request) -> None:
        self.sent.pop(request, None)
        self._event(f"failed {request.method} {request.url}: {request.failure}")

    def _error(self, error: object) -> None:
        self.errors.append(str(error))
        self._event(f"script error: {error}")

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture(scope="module")
def owner(browser: Browser, deployed: RunningAgent) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    watched = Watched(context.new_page())
    yield watched
    context.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.fonts.ready")  # settled text, not a half-drawn page
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def view(page: Page, route: str, heading: str) -> None:
    """Open a view afresh (the same address again would change nothing: reload it)."""
    target = page.url.split("#")[0] + f"#/{route}"
    if page.url == target:
        page.reload()
    else:
        page.goto(target)
    expect(page.locator("main h1")).to_have_text(heading)


def test_sign_in_through_the_printed_url(owner: Watched, deployed: RunningAgent) -> None:
    printed = hyac(deployed, "console", "--print-url")
    assert printed.returncode == 0, printed.stderr
    url = printed.stdout.strip()
    assert "#code=" in url and deployed.token not in url
    owner.page.goto(url)
    expect(owner.page.locator("main h1")).to_have_text("Overview")
    assert "code=" not in owner.page.url  # the single-use code left the address bar
    assert deployed.token not in owner.page.content()
    cookies = owner.page.context.cookies()
    assert [c["httpOnly"] for c in cookies if c["name"] == "hyac_console"] == [True]
    view(owner.page, "functions", "Functions")
    expect(owner.page.get_by_role("link", name="hello", exact=True)).to_be_visible()
    expect(owner.page.get_by_role("link", name="slow", exact=True)).to_be_visible()


def test_invoke_from_the_panel(owner: Watched) -> None:
    page = owner.page
    view(page, "functions/hello", "hello")
    # the panel starts with the active version's sample
    expect(page.get_by_label("Query")).to_have_value("name=sample")
    expect(page.get_by_label("Headers")).to_have_value("X-Demo: yes")
    assert json.loads(page.get_by_label("JSON body").input_value()) == SAMPLE["body"]
    page.get_by_role("button", name="Invoke").click()
    expect(page.locator("#inv-status")).to_have_text("200")
    assert json.loads(page.locator("#inv-body-out").inner_text()) == {"hello": "sample"}
    page.get_by_label("Method").select_option("GET")
    page.get_by_label("Query").fill("name=panel")
    page.get_by_label("JSON body").fill("")
    page.get_by_role("button", name="Invoke").click()
    expect(page.locator("#inv-body-out")).to_contain_text("panel")  # this answer, not the last
    expect(page.locator("#inv-status")).to_have_text("200")
    assert json.loads(page.locator("#inv-body-out").inner_text()) == {"hello": "panel"}
    page.get_by_role("button", name="Load sample").click()
    expect(page.get_by_label("Method")).to_have_value("POST")
    expect(page.get_by_label("Query")).to_have_value("name=sample")
    # Versions with who deployed them, and the diff between the two.
    expect(page.get_by_role("button", name="Roll back to v1")).to_be_visible()
    page.get_by_role("button", name="Show diff").click()
    expect(page.locator(".diff .add")).to_contain_text(['"there"'])
    shot(page, "function")


def test_a_log_line_appears_live(owner: Watched, deployed: RunningAgent) -> None:
    page = owner.page
    view(page, "logs", "Logs")
    expect(page.locator("#log-state")).to_have_text("live")
    marker = f"live-{time.monotonic_ns()}"
    assert marker not in page.locator("#log-lines").inner_text()  # not there before
    answer = deployed.invoke("hello", query={"name": marker}).json()
    line = page.locator("#log-lines li", has_text=f"hello line {marker}")
    expect(line).to_be_visible()
    # Pause holds new lines back; the request id button filters to one request.
    page.get_by_role("button", name="Pause").click()
    held = f"held-{time.monotonic_ns()}"
    deployed.invoke("hello", query={"name": held})
    expect(page.locator("#log-state")).to_contain_text("1 waiting")
    assert held not in page.locator("#log-lines").inner_text()
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#log-lines li", has_text=held)).to_be_visible()
    shot(page, "logs")
    line.locator("button.rid").click()
    expect(page.get_by_label("Request id")).to_have_value(answer["request_id"])
    expect(page.locator("#log-lines li:visible")).to_have_count(1)


def test_a_request_id_shows_all_of_its_lines(owner: Watched, deployed: RunningAgent) -> None:
    """The tail loads the newest 200 lines; a request's older ones come when it is picked."""
    answer = deployed.invoke("noisy").json()
    with deployed.client() as api:
        stored = api.get("/v1/logs", params={"function": "noisy", "limit": 1000}).json()
    assert len([r for r in stored if r["request_id"] == answer["request_id"]]) == 300
    page = owner.page
    view(page, "logs", "Logs")
    page.get_by_label("Function").select_option("noisy")
    lines = page.locator("#log-lines li:visible")
    expect(lines).to_have_count(200)
    lines.first.locator("button.rid").click()
    expect(lines).to_have_count(300)
    expect(lines.first).to_contain_text("noisy line 0")


def test_a_task_progress_bar_moves_and_cancels(owner: Watched, deployed: RunningAgent) -> None:
    page = owner.page
    with deployed.client() as api:
        task_id = api.post("/v1/functions/slow/invoke", json={}).json()["task_id"]
    view(page, "tasks", "Tasks")
    bar = page.locator(f'progress[data-task="{task_id}"]')
    page.wait_for_function(
        "id => (document.querySelector(`progress[data-task='${id}']`)?.value || 0) > 0", arg=task_id)
    first = float(bar.get_attribute("value") or 0)
    page.wait_for_function(
        "([id, first]) => document.querySelector(`progress[data-task='${id}']`)?.value > first",
        arg=[task_id, first])
    moved = float(bar.get_attribute("value") or 0)
    assert 0 < first < moved < 1
    page.locator(f'button[data-cancel="{task_id}"]').click()
    expect(page.locator(f'[data-task-status="{task_id}"]')).to_have_text("cancelled")
    with deployed.client() as api:
        assert api.get(f"/v1/tasks/{task_id}").json()["status"] == "cancelled"
    page.get_by_role("link", name=task_id).click()  # its event history
    events = page.locator("ol.events li")
    expect(events.last).to_contain_text("cancelled")
    shot(page, "tasks")


def test_script_output_is_text(owner: Watched, deployed: RunningAgent) -> None:
    page = owner.page
    view(page, "functions/xss", "xss")
    page.get_by_role("button", name="Invoke").click()
    expect(page.locator("#inv-body-out")).to_have_text(
        "<script>alert(1)</script><img src=x onerror=alert(2)>")
    view(page, "logs", "Logs")
    expect(page.locator("#log-lines li", has_text="<script>alert(1)</script>").first).to_be_visible()
    assert page.locator("main script, main img").count() == 0
    assert owner.dialogs == []
    assert owner.errors == []


def test_a_viewer_sees_no_admin_views(browser: Browser, deployed: RunningAgent) -> None:
    token = make_user(deployed, "val", "default", "viewer")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = Watched(context.new_page()).page
    try:
        page.goto(f"{deployed.url}/console/")
        expect(page.get_by_role("heading", name="Sign in to Hyac")).to_be_visible()
        # nobody is signed in: no tenant to pick, nothing to sign out of
        expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
        expect(page.get_by_label("Tenant")).to_be_hidden()
        shot(page, "sign-in")
        page.get_by_label("API token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("main h1")).to_have_text("Overview")
        nav = page.get_by_role("navigation", name="Console views")
        expect(nav.get_by_role("link", name="Functions")).to_be_visible()
        for admin in ("Tenants & access", "Audit", "Settings"):
            expect(nav.get_by_role("link", name=admin)).to_have_count(0)
        # The keyboard alone reaches a view: skip link, Overview, Functions, Enter.
        page.locator("a.skip").focus()
        for _ in range(2):
            page.keyboard.press("Tab")
        expect(page.locator(":focus")).to_have_text("Functions")
        page.keyboard.press("Enter")
        expect(page.locator("main h1")).to_have_text("Functions")
        expect(page.locator("main")).to_be_focused()
        page.goto(f"{deployed.url}/console/#/settings")
        expect(page.locator("main .notice")).to_contain_text("needs an administrator")
        assert token not in page.content()
    finally:
        context.close()


def test_an_admin_mints_a_token_and_exports_the_audit(owner: Watched,
                                                      deployed: RunningAgent) -> None:
    page = owner.page
    view(page, "admin", "Tenants & access")
    page.get_by_label("Name").fill("minted in the console")
    page.get_by_role("button", name="Mint token").click()
    minted = page.locator("#minted-token")
    expect(minted).to_have_text(re.compile(r"^hyac_u_"))
    token = minted.inner_text()
    who = httpx.get(f"{deployed.url}/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert who.status_code == 200 and who.json()["scope"] == "default"
    view(page, "functions", "Functions")
    view(page, "admin", "Tenants & access")
    assert token not in page.content()  # shown once: gone from the page after
    view(page, "audit", "Audit log")
    page.get_by_label("Action").fill("token.")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("main tbody tr").first).to_contain_text("token.create")
    expect(page.locator("main tbody tr").filter(has_not_text="token.")).to_have_count(0)
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert rows and {r["action"] for r in rows} == {"token.create"}
    assert rows[0]["actor"] == "owner"


def test_screenshots_of_every_page(owner: Watched, browser: Browser, deployed: RunningAgent) -> None:
    page = owner.page
    for route, heading in [("overview", "Overview"), ("functions", "Functions"),
                           ("admin", "Tenants & access"), ("audit", "Audit log"),
                           ("settings", "Settings")]:
        view(page, route, heading)
        if route == "overview":
            expect(page.locator(".stat .value").nth(2)).not_to_have_text("-")
            expect(page.locator("text=Probing runtimes")).to_have_count(0)
            expect(page.locator("main meter").first).to_be_visible()
        if route == "settings":
            expect(page.get_by_role("heading", name="Sandboxes (doctor)")).to_be_visible()
            expect(page.locator("main")).to_contain_text("Where each value comes from")
            storage = page.locator('main [data-kind="storage"]')
            expect(storage).to_contain_text("Object storage — not configured")
            expect(storage.get_by_role("row", name="backend builtin default")).to_be_visible()
            expect(storage.get_by_role("button", name="Test object storage")).to_be_disabled()
            expect(page.locator('main [data-kind="mail"]')).to_contain_text("Send a test message to")
        shot(page, route)
    audit_rows = page.locator("main tbody tr")
    expect(audit_rows.first).to_be_visible()
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        small = Watched(phone.new_page()).page
        answer = small.request.post(f"{deployed.url}/console/session",
                                    data={"token": deployed.token})
        assert answer.ok
        small.goto(f"{deployed.url}/console/#/overview")
        expect(small.locator("main h1")).to_have_text("Overview")
        expect(small.locator("main meter").first).to_be_visible()
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing runs off a phone's screen
        shot(small, "phone-overview")
    finally:
        phone.close()
    assert owner.errors == []


