"""Console sign-in and sessions against a real agent over HTTP: codes are single-use and
short-lived, a session is exactly its token's principal and ends with it, changes need
the CSRF header, and every console answer carries the security headers."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from hyac_agent.console import sessions as console_sessions
from hyac_agent.console.sessions import ConsoleSessions, Identity
from hyac_common.errors import Conflict, Unauthorized
from tests.conftest import RunningAgent
from tests.console.conftest import exchange, hyac, login_code, make_user, sign_in

HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}


def audit_actions(agent: RunningAgent) -> list[tuple[str, str, int]]:
    with agent.client() as owner:
        rows = owner.get("/v1/audit", params={"all": "true"}).json()
    return [(r["action"], r["actor"], r["result"]) for r in rows if r["action"].startswith("console.")]


def test_a_code_signs_in_once(console_agent: RunningAgent) -> None:
    code = login_code(console_agent)
    first = exchange(console_agent, code=code)
    assert first.status_code == 200, first.text
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here: a Secure cookie would never come back
    again = exchange(console_agent, code=code)
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "unauthorized"
    actions = audit_actions(console_agent)
    assert ("console.login", "owner", 200) in actions
    assert ("console.login", "-", 401) in actions


def test_a_wrong_code_or_token_is_refused(console_agent: RunningAgent) -> None:
    assert exchange(console_agent, code="not-a-code").status_code == 401
    assert exchange(console_agent, token="hyac_u_forged").status_code == 401
    assert exchange(console_agent).status_code == 400


def test_no_other_site_signs_a_browser_in(console_agent: RunningAgent) -> None:
    """Login CSRF: a form (no JSON) or a page of another origin cannot sign in."""
    token = {"token": console_agent.token}
    as_form = httpx.post(f"{console_agent.url}/console/session", content=json.dumps(token),
                         headers={"Content-Type": "text/plain"})
    assert as_form.status_code == 400 and "set-cookie" not in as_form.headers
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        refused = httpx.post(f"{console_agent.url}/console/session", json=token, headers=headers)
        assert refused.status_code == 403 and "set-cookie" not in refused.headers
    same = httpx.post(f"{console_agent.url}/console/session", json=token,
                      headers={"Origin": console_agent.url, "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 200


def test_codes_expire_and_sessions_idle_out(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(console_sessions.time, "time", lambda: now[0])
    store = ConsoleSessions()
    identity = Identity("0" * 64, False, "ann")
    code = store.issue_code(identity)
    now[0] += console_sessions.CODE_TTL + 1
    with pytest.raises(Unauthorized):
        store.redeem_code(code)
    secret, session = store.open(identity, "127.0.0.1")
    now[0] += console_sessions.IDLE_TTL - 1
    assert store.find(secret) is session  # in use: the idle clock restarts
    now[0] += console_sessions.IDLE_TTL - 1
    # An open log stream asking again whether it may go on does not keep it alive.
    assert store.find(secret, touch=False) is session
    now[0] += 2
    assert store.find(secret, touch=False) is None
    assert store.find(secret) is None
    assert store.sessions() == []


def test_pasting_a_token_signs_in(console_agent: RunningAgent) -> None:
    answer = exchange(console_agent, token=console_agent.token)
    assert answer.status_code == 200 and "hyac_console=" in answer.headers["set-cookie"]
    assert console_agent.token not in answer.text


def test_a_session_is_its_tokens_principal(console_agent: RunningAgent) -> None:
    token = make_user(console_agent, "vera", "shop", "viewer")
    browser = sign_in(console_agent, token)
    with httpx.Client(base_url=console_agent.url,
                      headers={"Authorization": f"Bearer {token}"}) as api:
        by_token = api.get("/v1/whoami").json()
    by_session = browser.request("GET", "/v1/whoami").json()
    assert by_session == by_token and by_session["user"] == "vera"
    # A viewer stays a viewer: reading works, deploying does not (CSRF header or not).
    assert browser.request("GET", "/v1/functions", tenant="shop").status_code == 200
    deploy = browser.request("PUT", "/v1/functions/x", tenant="shop",
                             json={"entry": "functions/x.py", "files_b64": {}})
    assert deploy.status_code == 403
    assert browser.request("GET", "/v1/functions", tenant="default").status_code == 403
    assert browser.request("GET", "/v1/console/settings").status_code == 403


def test_revoking_the_token_ends_its_sessions(console_agent: RunningAgent) -> None:
    token = make_user(console_agent, "rita", "shop", "developer")
    browser = sign_in(console_agent, token)
    assert browser.request("GET", "/v1/whoami").status_code == 200
    with console_agent.client() as owner:
        token_id = owner.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"}).json()["token"]
        assert owner.delete(f"/v1/tokens/{token_id}").status_code == 200
    ended = browser.request("GET", "/v1/whoami")
    assert ended.status_code == 401
    assert browser.request("GET", "/v1/health").status_code == 200  # public, cookie or not
    assert browser.request("GET", "/console/session").status_code == 401


def test_changes_need_the_csrf_header(console_agent: RunningAgent) -> None:
    browser = sign_in(console_agent)
    refused = browser.request("POST", "/v1/tenants", csrf=False, json={"name": "csrf-a"})
    assert refused.status_code == 403
    assert "X-Hyac-CSRF" in refused.json()["error"]["message"]
    wrong = browser.request("POST", "/v1/tenants", csrf="guess", json={"name": "csrf-a"})
    assert wrong.status_code == 403
    with console_agent.client() as owner:
        assert owner.get("/v1/tenants/csrf-a").status_code == 404  # nothing was made
    made = browser.request("POST", "/v1/tenants", json={"name": "csrf-a"})
    assert made.status_code == 201, made.text
    # The API's own audit names the owner for the change made from the console.
    with console_agent.client() as owner:
        rows = owner.get("/v1/audit", params={"all": "true"}).json()
    assert any(r["action"] == "tenant.create" and r["target"] == "csrf-a" and r["actor"] == "owner"
               for r in rows)


def test_signing_out_and_owner_revocation(console_agent: RunningAgent) -> None:
    mine, other = sign_in(console_agent), sign_in(console_agent)
    assert mine.request("DELETE", "/console/session", csrf=False).status_code == 403
    assert mine.request("DELETE", "/console/session").status_code == 200
    assert mine.request("GET", "/v1/whoami").status_code == 401
    with console_agent.client() as owner:
        listed = owner.get("/v1/console/sessions").json()
        session = other.request("GET", "/console/session").json()["session"]
        assert session in [s["id"] for s in listed]
        assert owner.delete(f"/v1/console/sessions/{session}").status_code == 200
    assert other.request("GET", "/v1/whoami").status_code == 401


def test_a_session_mints_no_codes(console_agent: RunningAgent) -> None:
    browser = sign_in(console_agent)
    assert browser.request("POST", "/v1/console/login-codes").status_code == 403


@pytest.mark.parametrize("path", ["/console/", "/console/static/app.js", "/console/session",
                                  "/console/static/missing.js"])
def test_security_headers(console_agent: RunningAgent, path: str) -> None:
    answer = httpx.get(console_agent.url + path, timeout=30)
    assert answer.status_code in (200, 401, 404)
    for name, value in HEADERS.items():
        assert answer.headers.get(name) == value, (path, name)


def test_console_is_no_tenant_name(console_agent: RunningAgent) -> None:
    with console_agent.client() as owner:
        answer = owner.post("/v1/tenants", json={"name": "console"})
    assert answer.status_code == 400 and "reserved" in answer.json()["error"]["message"]


def test_hyac_console_prints_a_one_time_url(console_agent: RunningAgent) -> None:
    printed = hyac(console_agent, "console", "--print-url")
    assert printed.returncode == 0, printed.stderr
    url = printed.stdout.strip()
    assert url.startswith(f"{console_agent.url}/console/#code=")
    assert console_agent.token not in printed.stdout + printed.stderr
    code = url.partition("#code=")[2]
    assert exchange(console_agent, code=code).status_code == 200
    assert exchange(console_agent, code=code).status_code == 401


def test_hyac_console_json(console_agent: RunningAgent) -> None:
    printed = hyac(console_agent, "console", "--print-url", "--json")
    assert printed.returncode == 0, printed.stderr
    answer = json.loads(printed.stdout)
    assert answer["expires_in"] == 60 and "#code=" in answer["url"]


def test_a_tenant_named_like_the_console_prefix_still_serves(console_agent: RunningAgent) -> None:
    """Only /console/ is the console's: /consoles/… is a tenant's gateway as ever."""
    with console_agent.client() as owner:
        assert owner.post("/v1/tenants", json={"name": "consoles"}).status_code == 201
    console_agent.deploy("hi", "def main(context):\n    return 'hi there'\n", tenant="consoles")
    answer = httpx.get(f"{console_agent.url}/consoles/hi",
                       headers={"Authorization": f"Bearer {console_agent.token}"}, timeout=60)
    assert answer.status_code == 200 and answer.text == "hi there"


def test_signing_out_ends_the_sessions_log_stream(console_agent: RunningAgent) -> None:
    """The console's live logs are a stream opened with the session's cookie: signing
    out ends it (tests/tenancy/test_stream_access.py does the same for tokens)."""
    browser = sign_in(console_agent)
    ended = threading.Event()

    def read() -> None:
        headers = {"Cookie": f"{console_sessions.COOKIE}={browser.cookie}"}
        try:
            with httpx.stream("GET", f"{console_agent.url}/v1/logs/stream", headers=headers,
                              timeout=httpx.Timeout(10, read=60)) as stream:
                assert stream.status_code == 200
                for _line in stream.iter_lines():
                    opened.set()
        except httpx.HTTPError:
            pass
        finally:
            opened.set()
            ended.set()

    opened = threading.Event()
    threading.Thread(target=read, daemon=True).start()
    assert opened.wait(20) and not ended.is_set()
    assert browser.request("DELETE", "/console/session").status_code == 200
    assert ended.wait(30), "the stream went on after signing out"


def test_no_user_can_use_up_sign_in_for_everyone() -> None:
    """Codes and sessions have platform-wide caps (memory); one account minting codes or
    opening sessions in a loop must not reach them and lock every other user out."""
    store = ConsoleSessions()
    mallory, ann = Identity("1" * 64, False, "mallory"), Identity("2" * 64, False, "ann")
    for _ in range(console_sessions.MAX_CODES_PER_USER):
        store.issue_code(mallory)
    with pytest.raises(Conflict, match="mallory has 5"):
        store.issue_code(mallory)
    store.redeem_code(store.issue_code(ann))  # others still sign in
    ann_secret, _ = store.open(ann, "10.0.0.2")
    opened = [store.open(mallory, "10.0.0.1")[0]
              for _ in range(console_sessions.MAX_SESSIONS_PER_USER * 3)]
    # Each of mallory's sessions past the cap ended mallory's least recently used one.
    mine = [s for s in store.sessions() if s.identity.name == "mallory"]
    assert len(mine) == console_sessions.MAX_SESSIONS_PER_USER
    assert store.find(opened[0]) is None and store.find(opened[-1]) is not None
    assert store.find(ann_secret) is not None
