"""The console's Domains & IP rules view in a real browser (Debian's chromium)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser import browser_missing, chromium, signed_in_page
from tests.edge.conftest import Edge

if TYPE_CHECKING:
    from playwright.sync_api import Page

missing = browser_missing()
if missing:
    pytest.skip(missing, allow_module_level=True)
from playwright.sync_api import expect  # noqa: E402


@pytest.fixture(scope="module")
def page(edge: Edge) -> Iterator[Page]:
    with chromium() as browser:
        tab = signed_in_page(browser, edge.url(), edge.agent.token)
        tab.on("dialog", lambda dialog: dialog.accept())
        yield tab


def test_domains_and_ip_rules_from_the_console(edge: Edge, page: Page) -> None:
    edge.echo("default", "echo")
    page.goto(f"{edge.url()}/console/#/domains")
    expect(page.locator("main h1")).to_have_text("Domains & IP rules")
    page.fill("#domain-host", "console.example.test")
    page.fill("#domain-function", "echo")
    page.click("#domain-list button[type=submit]")
    expect(page.locator('[data-domain="console.example.test"]')).to_have_text("active")
    page.fill("#rule-cidr", "198.51.100.0/24")
    page.click("#ip-rule-list button[type=submit]")
    expect(page.locator("#ip-rule-list tbody")).to_contain_text("198.51.100.0/24")
    with edge.owner("default") as owner:
        assert [r["cidr"] for r in owner.get("/v1/edge/ip-rules").json()] == ["198.51.100.0/24"]
        assert "console.example.test" in [d["host"] for d in owner.get("/v1/domains").json()]
    with edge.client() as client:
        assert client.get("/p", headers={"Host": "console.example.test"}).json()["path"] == "/p"
    page.locator("#domain-list tr", has_text="console.example.test").get_by_role(
        "button", name="Remove").click()
    expect(page.locator('[data-domain="console.example.test"]')).to_have_count(0)
    page.locator("#ip-rule-list tr", has_text="198.51.100.0/24").get_by_role(
        "button", name="Remove").click()
    expect(page.locator("#ip-rule-list tbody")).not_to_contain_text("198.51.100.0/24")
