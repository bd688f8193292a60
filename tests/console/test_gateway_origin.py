"""A tenant's function against the console it shares an origin with (`/{tenant}/{fn}`
beside `/console/` and `/v1/` on the agent's address): it never gets the console's
session cookie, cannot set it, and a page it serves runs in an opaque origin of its own,
so a signed-in owner who opens it lends it nothing. A function's response with headers
no HTTP server may send is a 502 that says why, not a dropped connection. The attacks
run on a real agent and, for the page, in Debian's chromium (never a downloaded one)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser import browser_missing, chromium
from tests.conftest import RunningAgent
from tests.console.conftest import COOKIE, give_cookie, sign_in

#: serves a page whose script tries what a hostile tenant would with a signed-in owner's
#: browser; the page shows the Cookie header the function itself was given
THIEF = r'''
import html

PAGE = """<!doctype html><title>thief</title>
<p id="given">%s</p><p id="out">running</p>
<script>
(async () => {
  const out = {};
  for (const path of ["/console/session", "/v1/agent", "/v1/tenants"]) {
    try {
      const answer = await fetch(path, {credentials: "include"});
      out[path] = answer.status + " " + (await answer.text()).slice(0, 300);
    } catch (error) { out[path] = "blocked: " + error; }
  }
  try { out.cookie = "read: " + document.cookie; } catch (error) { out.cookie = "blocked: " + error; }
  try { localStorage.setItem("k", "v"); out.storage = "used"; } catch (error) { out.storage = "blocked"; }
  document.getElementById("out").textContent = JSON.stringify(out);
})();
</script>"""

def main(context):
    given = context.request.headers.get("cookie", "(none)")
    return Response(body=PAGE % html.escape(given), headers={"content-type": "text/html"})
'''

HEADERS = '''
import json

def main(context):
    return Response(200, headers=json.loads(context.request.query["h"]), body=b"ok")
'''

ECHO_COOKIE = '''
def main(context):
    return {"cookie": context.request.headers.get("cookie")}
'''


@pytest.fixture(scope="module")
def deployed(console_agent: RunningAgent) -> RunningAgent:
    with console_agent.client() as owner:
        assert owner.post("/v1/tenants", json={"name": "mallory"}).status_code == 201
    for name, source in (("thief", THIEF), ("headers", HEADERS), ("cookie", ECHO_COOKIE)):
        console_agent.deploy(name, source, tenant="mallory")
    return console_agent


def test_the_console_cookie_never_reaches_a_function(deployed: RunningAgent) -> None:
    url = f"{deployed.url}/mallory/cookie"
    seen = {}
    for sent in (f"{COOKIE}=s3cret", f"theirs=1; {COOKIE}=s3cret; other=2", "theirs=1",
                 f"{COOKIE}x=kept; x{COOKIE}=kept"):
        answer = httpx.get(url, headers={"Cookie": sent}, timeout=30)
        assert answer.status_code == 200, answer.text
        seen[sent] = answer.json()["cookie"]
    assert seen == {
        f"{COOKIE}=s3cret": None,
        f"theirs=1; {COOKIE}=s3cret; other=2": "theirs=1; other=2",
        "theirs=1": "theirs=1",
        f"{COOKIE}x=kept; x{COOKIE}=kept": f"{COOKIE}x=kept; x{COOKIE}=kept",
    }


@pytest.mark.parametrize(("headers", "why"), [
    ({"x-a": "a\r\nset-cookie: evil=1"}, "'x-a' is not valid HTTP"),
    ({"x-a": "a\nb"}, "'x-a' is not valid HTTP"),
    ({"x-a": "a\x00b"}, "'x-a' is not valid HTTP"),
    ({"bad name": "v"}, "'bad name' is not valid HTTP"),
    ({"": "v"}, "'' is not valid HTTP"),
    ({"x-a": "caf\u00e9 \u4e2d"}, "not Latin-1"),
    ({"Set-Cookie": f"{COOKIE}=fixed; Path=/"}, f"sets the console's cookie ({COOKIE})"),
    ({"set-cookie": f" {COOKIE} =fixed"}, f"sets the console's cookie ({COOKIE})"),
    # several cookies are a header each: the console's may hide in none of them
    ({"set-cookie": ["theirs=1", f"{COOKIE}=fixed"]}, f"sets the console's cookie ({COOKIE})"),
    ({"set-cookie": f"theirs=1\n{COOKIE}=fixed"}, f"sets the console's cookie ({COOKIE})"),
    ({"set-cookie": ["theirs=1\r", "b=2"]}, "'set-cookie' is not valid HTTP"),
    ({"x-a": ["a", "b\nc"]}, "'x-a' is not valid HTTP"),
    ({"Clear-Site-Data": '"cookies", "storage"'}, "clears the site's data"),
])
def test_a_response_no_server_may_send_is_a_502_that_says_why(
    deployed: RunningAgent, headers: dict[str, str | list[str]], why: str
) -> None:
    answer = httpx.get(f"{deployed.url}/mallory/headers", params={"h": json.dumps(headers)},
                       timeout=30)
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["code"] == "bad_function_response"
    assert why in error["message"], error
    assert answer.headers["x-hyac-request-id"] == error["request_id"]
    assert "set-cookie" not in answer.headers and "x-a" not in answer.headers
    assert "Exception in ASGI application" not in deployed.log()


def test_what_a_function_may_send_still_goes_through(deployed: RunningAgent) -> None:
    fine = {"x-a": "tab\there, Latin-1 \u00e9", "Set-Cookie": "theirs=1; Path=/mallory/",
            "Content-Security-Policy": "default-src 'self'"}
    answer = httpx.get(f"{deployed.url}/mallory/headers", params={"h": json.dumps(fine)},
                       timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-a"].encode("latin-1") == fine["x-a"].encode("latin-1")
    assert answer.headers["set-cookie"] == "theirs=1; Path=/mallory/"
    several = {"set-cookie": ["one=1; Path=/mallory/", "", "two=2"], "x-b": ["p", "q"]}
    each = httpx.get(f"{deployed.url}/mallory/headers", params={"h": json.dumps(several)},
                     timeout=30)
    assert each.status_code == 200, each.text
    assert each.headers.get_list("set-cookie") == ["one=1; Path=/mallory/", "two=2"]
    assert each.headers.get_list("x-b") == ["p, q"]
    # the function's own policy and the gateway's sandbox both apply
    policies = answer.headers.get_list("content-security-policy")
    assert "default-src 'self'" in policies
    assert any(p.startswith("sandbox allow-scripts") and "allow-same-origin" not in p
               for p in policies), policies


# in a real browser --------------------------------------------------------------------

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    with chromium() as launched:
        yield launched


def test_a_signed_in_owner_opening_a_tenants_page_lends_it_nothing(
    deployed: RunningAgent, browser: Browser
) -> None:
    from playwright.sync_api import expect

    owner = sign_in(deployed)
    context = browser.new_context()
    try:
        give_cookie(context, deployed, owner)
        page = context.new_page()
        # First as the owner does: the console, signed in (the cookie works here)...
        page.goto(f"{deployed.url}/console/")
        with page.expect_response(lambda r: r.url.endswith("/console/session")) as session:
            page.reload()
        assert session.value.status == 200
        # ...then the tenant's page, from a link on the same site.
        page.goto(f"{deployed.url}/mallory/thief")
        out = page.locator("#out")
        expect(out).not_to_have_text("running", timeout=30_000)
        tried = json.loads(out.text_content() or "{}")
        given = page.locator("#given").text_content() or ""
    finally:
        context.close()
    assert owner.cookie not in given and COOKIE not in given, given
    # The script ran (the sandbox allows scripts), but in an opaque origin: the API and
    # the console's session are another origin's, read by nothing it fetches...
    assert set(tried) == {"/console/session", "/v1/agent", "/v1/tenants", "cookie", "storage"}
    for path in ("/console/session", "/v1/agent", "/v1/tenants"):
        assert tried[path].startswith("blocked"), tried
        assert owner.csrf not in tried[path]
    # ...and it has no cookies or storage of the agent's origin.
    assert tried["cookie"].startswith("blocked") and tried["storage"] == "blocked", tried
    # The owner's session is untouched and still theirs.
    assert owner.request("GET", "/v1/agent").status_code == 200
