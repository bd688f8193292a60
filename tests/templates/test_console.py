"""The console's Templates view in a real browser (Debian's chromium through Playwright):
browse and search, read a README — as text, whatever it holds —, see what a template
needs and its scan result, rate it, and approve a user's template as the platform owner."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import WAIT, browser_missing, chromium
from tests.templates.conftest import files_b64
from tests.templates.test_registry import template
from tests.tenancy.conftest import Platform

missing = browser_missing()
if missing:
    pytest.skip(missing, allow_module_level=True)
from playwright.sync_api import Page, expect  # noqa: E402

expect.set_options(timeout=WAIT)


@pytest.fixture(scope="module")
def page(platform: Platform) -> Iterator[Page]:
    with chromium() as browser:
        opened = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        opened.set_default_timeout(WAIT)
        dialogs: list[str] = []
        opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        opened.goto(f"{platform.agent.url}/console/")
        opened.get_by_label("API token").fill(platform.agent.token)
        opened.get_by_role("button", name="Sign in").click()
        expect(opened.locator("main h1")).to_have_text("Overview")
        yield opened
        assert dialogs == []  # no script of a template ever ran


def test_browse_search_read_and_rate(page: Page, platform: Platform) -> None:
    page.get_by_role("navigation", name="Console views").get_by_role("link", name="Templates").click()
    expect(page.locator("main h1")).to_have_text("Templates")
    rows = page.locator("#template-list tbody tr")
    expect(rows.filter(has_text="kv-counter")).to_have_count(1)
    page.get_by_label("Search").fill("hmac")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    page.get_by_role("link", name="webhook-hmac").click()
    expect(page.locator("main h1")).to_have_text("Webhook receiver with HMAC verification")
    expect(page.locator("#template-readme")).to_contain_text("hyac secret set WEBHOOK_SECRET")
    expect(page.locator("main")).to_contain_text("The secret the sender signs each body with")
    expect(page.locator("#template-scan")).to_have_text("no_dependencies")
    page.get_by_label("Your rating").select_option("4")
    page.get_by_role("button", name="Rate").click()
    expect(page.locator("#template-rating")).to_have_text("4 ★ (1)")
    with platform.owner() as client:
        assert client.get("/v1/templates/webhook-hmac").json()["rating"] == {"average": 4.0, "count": 1}


def test_the_owner_approves_and_a_readme_stays_text(page: Page, platform: Platform) -> None:
    platform.tenant("eve-team")
    eve = platform.user("eve", "eve-team", "developer")
    hostile = "# Hi\n<script>alert(1)</script><img src=x onerror=alert(2)>\n"
    files = template("eves-greeter")
    files.update(files_b64({"README.md": hostile}))
    with platform.http(eve) as client:
        assert client.post("/v1/templates", json={"files_b64": files}).status_code == 201
    page.goto(page.url.split("#")[0] + "#/templates/eves-greeter")
    expect(page.locator("#template-status")).to_have_text("pending")
    expect(page.locator("#template-readme")).to_have_text(hostile.rstrip("\n"))
    assert page.locator("main script, main img").count() == 0
    page.get_by_role("button", name="Approve 1.0.0").click()
    expect(page.locator("#template-status")).to_have_text("approved")
    with platform.http(eve) as client:
        assert client.get("/v1/templates/eves-greeter").json()["status"] == "approved"


def test_a_functions_new_findings_are_marked_after_an_import(
        page: Page, platform: Platform) -> None:
    """The owner uploads npm advisories; the rescan's new findings of a version show on
    its function page, marked new."""
    import io
    import json
    import zipfile

    from hyac_agent.store import SqlStore
    from hyac_common.wire import FunctionConfig
    from tests.vulns.conftest import FIXTURES

    lock = json.dumps({"package.json": {"dependencies": {"lodash": "4.17.15"}},
                       "package-lock.json": {"lockfileVersion": 3, "packages": {
                           "": {"dependencies": {"lodash": "4.17.15"}},
                           "node_modules/lodash": {"version": "4.17.15"}}}}, sort_keys=True)
    store = SqlStore(f"sqlite:///{platform.agent.data_dir / 'hyac.db'}")
    try:  # a deployed version with that lock (what a node20 deploy of lodash records)
        store.record_deploy("default", "legacy", "c" * 64, "functions/legacy.js",
                            FunctionConfig(runtime="node20", lock=lock))
    finally:
        store.close()
    dump = io.BytesIO()
    with zipfile.ZipFile(dump, "w") as archive:
        for path in sorted((FIXTURES / "npm").glob("*.json")):
            archive.writestr(path.name, path.read_bytes())
    with platform.owner() as client:
        imported = client.post("/v1/system/vulndb/import", params={"name": "npm-all.zip"},
                               content=dump.getvalue())
    assert imported.status_code == 200, imported.text
    assert any(line.startswith("default/legacy v1: ")
               for line in imported.json()["rescanned_with_new_findings"]), imported.json()
    page.goto(f"{platform.agent.url}/console/#/functions/legacy")
    expect(page.locator("main h1")).to_have_text("legacy")
    expect(page.locator("#scan-new")).to_contain_text("GHSA-p6mc-m468-83gw")
    expect(page.locator("main table").last).to_contain_text("GHSA-p6mc-m468-83gw (new)")
