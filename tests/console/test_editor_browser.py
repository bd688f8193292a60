"""The console's editor in Debian's chromium: `context.` completes the context's members,
`context.env["` the tenant's env names, a misspelt member is underlined, Save shows the
diff and makes version N+1 whose response the Run panel shows, and a save from an editor
opened before another save is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.browser import chromium
from tests.conftest import RunningAgent, current_runtime
from tests.console.test_browser import Watched

try:  # test_browser has already skipped loudly without playwright or chromium
    from playwright.sync_api import Page, Request, Response, Route, expect
except ImportError:
    pytest.skip("playwright is not installed: .venv/bin/pip install 'playwright>=1.40'",
                allow_module_level=True)

SOURCE = 'def main(context):\n    pass\n    return {"answer": "one"}\n'
SAMPLE = {"method": "POST", "path": "/", "query": {}, "headers": {}, "body": {"n": 1}}


@pytest.fixture(scope="module")
def agent(console_agent: RunningAgent) -> RunningAgent:
    with console_agent.client() as client:
        answer = client.put("/v1/functions/edited", json={
            "entry": "main.py", "files_b64": {"main.py": base64.b64encode(SOURCE.encode()).decode()},
            "config": {"runtime": current_runtime(), "env": {"REGION": "eu"}}, "sample": SAMPLE})
        assert answer.status_code == 201, answer.text
    return console_agent


@pytest.fixture(scope="module")
def page(agent: RunningAgent) -> Iterator[Watched]:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        watched = Watched(context.new_page())
        watched.page.goto(f"{agent.url}/console/")
        watched.page.get_by_label("API token").fill(agent.token)
        watched.page.get_by_role("button", name="Sign in").click()
        expect(watched.page.locator("main h1")).to_have_text("Overview")
        yield watched
        context.close()


def open_editor(page: Page) -> None:
    page.goto(page.url.split("#")[0] + "#/functions/edited")
    page.get_by_role("link", name="Open in the editor").click()
    expect(page.locator("main h1")).to_have_text("Edit edited")
    expect(page.locator("#editor .cm-content")).to_contain_text("def main(context):")
    expect(page.locator("main")).to_be_focused()  # the console focuses a view once shown


def replace_line(page: Page, line: int, text: str) -> None:
    """Select line ``line``'s text after its indentation and type ``text`` over it."""
    page.locator("#editor .cm-line").nth(line - 1).click()
    page.keyboard.press("End")
    page.keyboard.press("Shift+Home")
    page.keyboard.type(text, delay=30)


def replace_all(page: Page, text: str) -> None:
    """The whole file becomes ``text``, as a paste would make it (no auto-indentation)."""
    page.locator("#editor .cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(text)


class Completions:
    """Every answer the page's completions got, for a failure to show (the popup's own
    state says little: a stale one looks like a fresh one)."""

    def __init__(self, page: Page) -> None:
        self.answers: list[str] = []
        page.on("response", self._answered)
        page.on("requestfailed", self._failed)

    def _answered(self, response: Response) -> None:
        if "/v1/editor/complete" not in response.url:
            return
        sent = json.loads(response.request.post_data or "{}")
        typed = (sent.get("source") or "").split("\n")[sent.get("line", 1) - 1]
        self.answers.append(f"{response.status} for {typed[:sent.get('column', 0)]!r}: "
                            f"{response.text()[:120]}")

    def _failed(self, request: Request) -> None:
        if "/v1/editor/complete" in request.url:
            self.answers.append(f"failed: {request.failure}")

    @contextmanager
    def reported(self) -> Iterator[None]:
        try:
            yield
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nthe completions' answers: {self.answers}") from None


def test_completion_and_diagnostics(page: Watched) -> None:
    p = page.page
    open_editor(p)
    asked: list[int] = []

    def busy_once(route: Route) -> None:
        """The agent's answer to an analysis over its time cap, for the first ask only."""
        asked.append(len(asked))
        if len(asked) == 1:
            route.fulfill(status=503, content_type="application/json", body=json.dumps(
                {"error": {"code": "analysis_timeout", "message": "took longer than 5s"}}))
        else:
            route.continue_()

    completions = Completions(p)
    p.route("**/v1/editor/complete", busy_once)
    with completions.reported():
        replace_line(p, 2, "context.")
        popup = p.locator(".cm-tooltip-autocomplete")
        # asked again after the busy answer: a loaded agent's first analysis can run over
        for member in ("kv", "storage", "mail", "env", "secrets", "invoke"):
            expect(popup.get_by_text(member, exact=True).first).to_be_visible()
        assert len(asked) >= 2, asked
        p.unroute("**/v1/editor/complete")
        p.keyboard.press("Escape")
        p.keyboard.type('env["', delay=30)
        expect(popup.get_by_text("REGION", exact=True)).to_be_visible()
        p.keyboard.press("Escape")
    # a misspelt member: underlined by the debounced diagnostics
    # one line: leading spaces typed into the page arrive as no-break spaces
    replace_all(p, "def main(context): return context.kvv.get('a')\n")
    expect(p.locator("#editor .cm-lintRange-error")).to_have_text("kvv")
    assert page.errors == [], page.errors


def test_a_completion_that_fails_while_typing_is_asked_again(page: Watched) -> None:
    """An ask that fails after more was typed leaves CodeMirror's completion pending (a
    greyed-out old popup, or none) until the next keystroke: the editor asks again, for
    the text as it is now."""
    p = page.page
    open_editor(p)
    held: list[Route] = []

    def hold_first(route: Route) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)  # answered below, once more has been typed

    completions = Completions(p)
    p.route("**/v1/editor/complete", hold_first)
    with completions.reported():
        replace_line(p, 2, "contex")
        for _ in range(120):  # the route's handler runs while the page is waited on
            if held:
                break
            p.wait_for_timeout(250)
        assert held, "the editor never asked for completions"
        p.keyboard.type("t.", delay=30)
        held[0].fulfill(status=500, content_type="application/json", body=json.dumps(
            {"error": {"code": "internal", "message": "lost"}}))
        popup = p.locator(".cm-tooltip-autocomplete")
        for member in ("kv", "storage", "invoke"):
            expect(popup.get_by_text(member, exact=True).first).to_be_visible()
    p.unroute("**/v1/editor/complete")
    assert page.errors == [], page.errors


def test_a_view_finishing_late_does_not_take_the_editors_focus(page: Watched) -> None:
    """The function's page shows its "Open in the editor" link before its last request
    (the scan) has answered. Opened from there, the editor keeps the keyboard when that
    page finishes later: its focus call once moved the focus away from the editor the
    user had clicked into, and the typing went nowhere."""
    p = page.page
    held: list[Route] = []
    p.route("**/v1/functions/edited/scan", lambda route: held.append(route))
    p.goto(p.url.split("#")[0] + "#/functions/edited")
    p.get_by_role("link", name="Open in the editor").click()
    expect(p.locator("main h1")).to_have_text("Edit edited")
    expect(p.locator("#editor .cm-content")).to_contain_text("def main(context):")
    for _ in range(120):  # the function page's scan is asked for, and held
        if held:
            break
        p.wait_for_timeout(250)
    assert held, "the function page never asked for its scan"
    p.locator("#editor .cm-line").nth(1).click()
    with p.expect_response("**/v1/functions/edited/scan"):
        held[0].continue_()
    p.wait_for_timeout(200)  # the late page's own turn of the event loop, after its answer
    p.keyboard.press("End")
    p.keyboard.type("  # typed", delay=20)
    expect(p.locator("#editor .cm-line").nth(1)).to_contain_text("# typed")
    p.unroute("**/v1/functions/edited/scan")
    assert page.errors == [], page.errors


def test_save_makes_the_next_version_and_a_stale_editor_is_refused(page: Watched,
                                                                  agent: RunningAgent) -> None:
    p = page.page
    open_editor(p)
    expect(p.locator("#editor-version")).to_contain_text("v1")
    replace_all(p, 'def main(context): print("ran v2"); return {"answer": "two"}\n')
    p.get_by_role("button", name="Save…").click()
    expect(p.locator("#editor-diff .add")).to_contain_text(['"two"'])
    expect(p.locator("#editor-diff .del").last).to_contain_text('"one"')
    p.get_by_role("button", name="Deploy").click()
    expect(p.locator("#editor-saved")).to_have_text("Saved: v2 is live.")
    p.get_by_role("button", name="Run with the sample").click()
    expect(p.locator("#editor-status")).to_have_text("200")
    expect(p.locator("#editor-response")).to_contain_text('"two"')
    expect(p.locator("#editor-logs")).to_contain_text("ran v2")
    # Someone else saves v3 while this editor still holds v2: this save is refused.
    with agent.client() as client:
        moved = client.post("/v1/editor/save", json={
            "function": "edited", "files": {"main.py": SOURCE.replace("one", "three")},
            "expected_active_version": 2})
        assert moved.status_code == 200 and moved.json()["version"] == 3, moved.text
    replace_all(p, 'def main(context): return {"answer": "mine"}\n')
    p.get_by_role("button", name="Save…").click()
    p.get_by_role("button", name="Deploy").click()
    expect(p.locator("#editor-error")).to_contain_text("is at version 3 now")
    with agent.client() as client:
        versions = client.get("/v1/functions/edited/versions").json()
    assert [v["version"] for v in versions if v["active"]] == [3]
    assert page.errors == [] and page.dialogs == [], (page.errors, page.dialogs)


def test_a_request_that_hangs_is_sent_again(page: Watched, agent: RunningAgent) -> None:
    """A GET whose answer never comes (a connection that hung on the way) is given up
    after the console's timeout and sent once more: the view loads instead of showing
    "Loading…" for good. A GET that hangs twice ends in an error on the page."""
    browser = page.page.context.browser
    assert browser is not None
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = Watched(context.new_page()).page
    held: list[str] = []

    def lost(route: Route) -> None:
        held.append(route.request.url)  # never answered: the page's timeout ends it

    p.route("**/v1/tenants", lambda route: lost(route) if not held else route.continue_())
    p.goto(f"{agent.url}/console/")
    p.get_by_label("API token").fill(agent.token)
    p.get_by_role("button", name="Sign in").click()
    expect(p.locator("main h1")).to_have_text("Overview", timeout=60_000)
    assert len(held) == 1, held
    p.unroute("**/v1/tenants")
    p.route("**/v1/functions?*", lost)
    p.route("**/v1/functions", lost)
    p.goto(p.url.split("#")[0] + "#/functions")
    expect(p.get_by_role("alert")).to_contain_text("did not answer /v1/functions", timeout=60_000)
    context.close()
