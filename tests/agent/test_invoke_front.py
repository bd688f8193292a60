"""``POST /v1/functions/{name}/invoke`` in its plain shape is served ahead of FastAPI
(``hyac_agent/api/fast_invoke.py``). It must answer exactly what the route answers through
FastAPI: the same results, the same refusals (token, tenant, role), the same 422s for a
bad body. A query parameter the front does not take (``delay=0`` changes nothing) sends
the same request through FastAPI, so each case is asked both ways and compared."""

from __future__ import annotations

import base64
import logging
from typing import Any

import httpx
import pytest

from hyac_agent.api.fast_invoke import _plain
from tests.in_process import InProcessAgent

ECHO = "def main(context):\n    return {'got': context.request.body.decode()}\n"
BACKGROUND = "def main(context):\n    return None\n"
VOLATILE = {"request_id", "duration_ms", "task_id", "location"}


def _both(client: httpx.Client, name: str, query: str = "", **kwargs: Any,
          ) -> tuple[httpx.Response, httpx.Response]:
    """The request through the front, and through FastAPI."""
    sep = "&" if query else ""
    fast = client.post(f"/v1/functions/{name}/invoke?{query}", **kwargs)
    slow = client.post(f"/v1/functions/{name}/invoke?{query}{sep}delay=0", **kwargs)
    return fast, slow


def _same(fast: httpx.Response, slow: httpx.Response) -> dict[str, Any]:
    assert fast.status_code == slow.status_code, (fast.text, slow.text)
    assert fast.headers["content-type"] == slow.headers["content-type"]
    assert ("location" in fast.headers) == ("location" in slow.headers)
    a, b = fast.json(), slow.json()
    if isinstance(a, dict) and not isinstance(a.get("error"), dict):  # not a refusal
        assert a.keys() == b.keys()
        a = {k: v for k, v in a.items() if k not in VOLATILE}
        b = {k: v for k, v in b.items() if k not in VOLATILE}
    assert a == b
    return fast.json()  # type: ignore[no-any-return]


def test_the_plain_shape_is_recognised_and_nothing_else() -> None:
    def scope(path: str = "/v1/functions/echo/invoke", query: bytes = b"mode=async",
              method: str = "POST", **headers: bytes) -> dict[str, Any]:
        base = {b"authorization": b"Bearer t", b"content-type": b"application/json"}
        base.update({k.replace("_", "-").encode(): v for k, v in headers.items()})
        return {"type": "http", "method": method, "path": path, "query_string": query,
                "headers": [(k, v) for k, v in base.items() if v]}

    assert _plain(scope()) == ("echo", "async")
    assert _plain(scope(query=b"")) == ("echo", "auto")
    assert _plain(scope(content_type=b"application/json; charset=utf-8")) == ("echo", "async")
    for other in (scope(method="GET"), scope(path="/v1/functions//invoke"),
                  scope(path="/v1/functions/a/b/invoke"), scope(path="/v1/functions/echo"),
                  scope(query=b"mode=async&delay=1"), scope(query=b"mode=later"),
                  scope(query=b"callback_url=http://x"), scope(authorization=b""),
                  scope(authorization=b"Basic dTpw"), scope(content_type=b"text/plain"),
                  scope(content_type=b"")):
        assert _plain(other) is None, other


def test_results_are_the_routes_results(api_agent: InProcessAgent,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from hyac_agent.api import fast_invoke

    served: list[str] = []
    tenant_of = fast_invoke._tenant

    async def counted(request: Any, *args: Any) -> str:
        served.append(request.url.query)
        return await tenant_of(request, *args)

    monkeypatch.setattr(fast_invoke, "_tenant", counted)  # only the front calls it there
    api_agent.deploy("echo", ECHO)
    api_agent.deploy("job", BACKGROUND, background=True)
    payload = {"method": "POST", "body_b64": base64.b64encode(b"hi").decode()}
    with api_agent.client() as client:
        for query in ("", "mode=sync", "mode=auto"):
            answer = _same(*_both(client, "echo", query, json=payload))
            assert answer["ok"] is True
            assert base64.b64decode(answer["body_b64"]) == b'{"got": "hi"}'
        for name, query in (("echo", "mode=async"), ("job", ""), ("job", "mode=auto")):
            fast, slow = _both(client, name, query, json=payload)
            answer = _same(fast, slow)
            assert fast.status_code == 202 and answer["status"] == "queued"
            assert fast.headers["location"] == f"/v1/tasks/{answer['task_id']}"
        missing = _same(*_both(client, "nothing", "mode=async", json=payload))
        assert missing["error"]["code"] == "not_found"
    # the front answered each first request, FastAPI each second one
    assert served == ["", "mode=sync", "mode=auto", "mode=async", "", "mode=auto", "mode=async"]


@pytest.mark.parametrize("content", [
    b"{not json", b"[1, 2]", b'"text"', b"", b'{"headers": 5}', b'{"body_b64": 7}',
    b'{"query": {"a": [1]}}', b"null",
])
def test_a_bad_body_gets_fastapis_own_answer(api_agent: InProcessAgent, content: bytes) -> None:
    api_agent.deploy("echo", ECHO)
    with api_agent.client() as client:
        fast, slow = _both(client, "echo", "mode=async", content=content,
                           headers={"Content-Type": "application/json"})
    assert fast.status_code == 422, fast.text
    assert fast.json() == slow.json()


def test_tokens_tenants_and_roles_are_the_routes(api_agent: InProcessAgent) -> None:
    api_agent.deploy("echo", ECHO)
    payload = {"body_b64": ""}
    with api_agent.client() as owner:
        assert owner.post("/v1/tenants", json={"name": "other"}).status_code == 201
        assert owner.put("/v1/users/vic", json={"role": "viewer"}).status_code == 200
        viewer = owner.post("/v1/tokens", json={"user": "vic", "tenant": "default"}).json()["token"]
    cases = {
        "no such token": ("hyac_" + "0" * 40, None, 401),
        "not a token at all": ("garbage", None, 401),
        "a tenant it is no member of": (viewer, "other", 403),
        "a tenant name that is not one": (viewer, "../default", 400),
        "its own tenant, as a viewer": (viewer, None, 200),
    }
    for why, (token, tenant, status) in cases.items():
        with api_agent.http(token, tenant) as client:
            fast, slow = _both(client, "echo", "mode=sync", json=payload)
            assert fast.status_code == status, (why, fast.text)
            _same(fast, slow)
            # a background task is no way around it either
            queued, _ = _both(client, "echo", "mode=async", json=payload)
            assert queued.status_code == (202 if status == 200 else status), (why, queued.text)


def test_a_bug_is_a_json_500_and_a_logged_traceback(
    api_agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    api_agent.deploy("echo", ECHO)
    secret = "the-bug-says-/srv/secret/path"

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(secret)

    monkeypatch.setattr(api_agent.agent.tasks, "submit", broken)
    with caplog.at_level(logging.ERROR), api_agent.client() as client:
        answer = client.post("/v1/functions/echo/invoke?mode=async", json={})
    assert answer.status_code == 500 and answer.json()["error"]["code"] == "internal"
    assert answer.headers["content-type"] == "application/json"
    assert secret not in answer.text
    assert len([r for r in caplog.records if r.exc_info and secret in str(r.exc_info[1])]) == 1


def test_a_body_over_the_limit_is_refused(api_agent: InProcessAgent) -> None:
    api_agent.deploy("echo", ECHO)
    limit = api_agent.agent.config.max_body_bytes
    big = {"body_b64": base64.b64encode(b"x" * (limit + 1)).decode()}
    with api_agent.client() as client:
        fast, slow = _both(client, "echo", "mode=async", json=big)
    assert fast.status_code == 413 and slow.status_code == 413, (fast.text, slow.text)
    assert fast.json()["error"]["code"] == slow.json()["error"]["code"]


def test_two_authorization_headers_get_the_routes_answer(api_agent: InProcessAgent) -> None:
    """Which header counts is the route's business (the first): the front's look at
    the headers only picks the path, never the caller."""
    api_agent.deploy("echo", ECHO)
    good = f"Bearer {api_agent.token}"
    for first, second in ((good, "Basic dTpw"), ("Basic dTpw", good),
                          (good, "Bearer hyac_" + "0" * 40), ("Bearer hyac_" + "0" * 40, good)):
        headers = [("Authorization", first), ("Authorization", second),
                   ("Content-Type", "application/json")]
        with httpx.Client(transport=api_agent._transport(), base_url=api_agent.url) as client:
            fast, slow = _both(client, "echo", "mode=sync", content=b"{}", headers=headers)
        assert fast.status_code == (200 if first == good else 401), (first, fast.text)
        _same(fast, slow)
