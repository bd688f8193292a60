"""Inbound webhooks: a signed POST answers 202 and runs the function as a task with the
request as its body; a wrong, missing or stale signature is 401 and runs nothing; the
secret is shown once and stored encrypted; a body over the cap is 413."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from hyac_agent.triggers.signatures import sign
from tests.tenancy.conftest import Platform
from tests.triggers.conftest import agent_of
from tests.waiting import eventually

ECHO = """
import json
def main(context):
    return {"body": context.request.body.decode(), "event": context.request.headers.get("x-github-event")}
"""


def _hook(platform: Platform, tenant: str, function: str, **body: object) -> dict:
    with platform.owner(tenant) as client:
        answer = client.post("/v1/webhooks", json={"function": function, **body})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _tasks(platform: Platform, tenant: str, function: str) -> list[dict]:
    with platform.owner(tenant) as client:
        return client.get("/v1/tasks", params={"function": function}).json()  # type: ignore[no-any-return]


def _post(platform: Platform, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    with platform.http(None) as anyone:  # no token: the signature is the credential
        anyone.headers.pop("Authorization", None)
        return anyone.post(path, content=body, headers=headers)


@pytest.mark.parametrize("scheme", ["github", "hmac-sha256", "stripe"])
def test_signed_request_runs_the_function_with_the_request_as_body(
    platform: Platform, scheme: str
) -> None:
    tenant = f"hooks-{scheme}"
    platform.tenant(tenant)
    assert platform.deploy("gh", ECHO, tenant).status_code == 201
    hook = _hook(platform, tenant, "gh", scheme=scheme, secret="s3cret-value")
    assert hook["secret"] == "s3cret-value" and hook["path"] == f"/v1/hooks/{hook['id']}"
    payload = json.dumps({"action": "opened", "number": 7}).encode()
    header = {"github": "X-Hub-Signature-256", "stripe": "Stripe-Signature",
              "hmac-sha256": "X-Hyac-Signature"}[scheme]
    signature = sign(scheme, "s3cret-value", payload, int(time.time()))
    answer = _post(platform, hook["path"], payload,
                   {header: signature, "X-GitHub-Event": "pull_request",
                    "content-type": "application/json"})
    assert answer.status_code == 202, answer.text
    task_id = answer.json()["task_id"]
    with platform.owner(tenant) as client:
        task = eventually(lambda: (t := client.get(f"/v1/tasks/{task_id}").json())
                          ["status"] == "succeeded" and t)
        listed = client.get("/v1/webhooks").json()
    import base64
    result = json.loads(base64.b64decode(task["result"]["body_b64"]))
    assert result == {"body": payload.decode(), "event": "pull_request"}
    assert task["trigger"] == {"kind": "webhook", "id": hook["id"]}
    with platform.owner(tenant) as client:  # the run's own lines name the trigger
        run_lines = client.get("/v1/logs", params={"function": "gh"}).json()
    assert any(line["request_id"] == task["request_id"]
               and f"started by webhook {hook['id']}" in line["message"] for line in run_lines)
    assert listed[0]["last_task_id"] == task_id and "secret" not in listed[0]


def test_wrong_missing_or_stale_signatures_run_nothing(platform: Platform) -> None:
    platform.tenant("hooks-bad")
    assert platform.deploy("gh", ECHO, "hooks-bad").status_code == 201
    github = _hook(platform, "hooks-bad", "gh", scheme="github", secret="right-secret")
    stripe = _hook(platform, "hooks-bad", "gh", scheme="stripe", secret="right-secret")
    body = b'{"x": 1}'
    now = int(time.time())
    for path, headers in [
        (github["path"], {}),
        (github["path"], {"X-Hub-Signature-256": sign("github", "wrong-secret", body, now)}),
        (github["path"], {"X-Hub-Signature-256": sign("github", "right-secret", body + b" ", now)}),
        (stripe["path"], {"Stripe-Signature": sign("stripe", "right-secret", body, now - 3600)}),
        (stripe["path"], {"Stripe-Signature": "t=abc,v1=00"}),
        (stripe["path"], {"Stripe-Signature": sign("github", "right-secret", body, now)}),
    ]:
        answer = _post(platform, path, body, headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.json()["error"]["code"] == "unauthorized"
    assert _post(platform, "/v1/hooks/whk_0000000000", body, {}).status_code == 404
    assert _tasks(platform, "hooks-bad", "gh") == []


def test_body_over_the_cap_is_413_and_runs_nothing(platform: Platform) -> None:
    platform.tenant("hooks-big")
    assert platform.deploy("gh", ECHO, "hooks-big").status_code == 201
    hook = _hook(platform, "hooks-big", "gh", scheme="github", secret="big-secret")
    limit = agent_of(platform).config.webhook_max_body_bytes
    body = b"x" * (limit + 1)
    answer = _post(platform, hook["path"], body,
                   {"X-Hub-Signature-256": sign("github", "big-secret", body, 0)})
    assert answer.status_code == 413, answer.text
    assert _tasks(platform, "hooks-big", "gh") == []


def test_secret_is_shown_once_stored_encrypted_and_hidden_from_other_tenants(
    platform: Platform,
) -> None:
    platform.tenant("hooks-own")
    platform.tenant("hooks-other")
    assert platform.deploy("gh", ECHO, "hooks-own").status_code == 201
    hook = _hook(platform, "hooks-own", "gh")  # the agent makes the secret
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) > 30
    from sqlalchemy import select

    from hyac_agent.triggers import tables as t

    with agent_of(platform).store.engine.connect() as conn:
        stored = conn.execute(select(t.webhooks.c.secret)
                              .where(t.webhooks.c.id == hook["id"])).scalar_one()
    assert hook["secret"] not in stored
    intruder = platform.user("eve", "hooks-other", "admin")
    with platform.http(intruder, "hooks-other") as client:
        assert client.get("/v1/webhooks").json() == []
        assert client.delete(f"/v1/webhooks/{hook['id']}").status_code == 404
        # a webhook to a function of another tenant: that name is not found here
        assert client.post("/v1/webhooks", json={"function": "gh"}).status_code == 404
    with platform.owner("hooks-own") as client:
        again = client.get("/v1/webhooks").json()
        assert [h["id"] for h in again] == [hook["id"]]
        assert all("secret" not in h for h in again)
        missing = client.post("/v1/webhooks", json={"function": "nope"})
        assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]
        assert client.get("/v1/webhooks").json() == again  # nothing half-saved


def test_the_tenants_ip_rules_hold_for_its_webhooks(platform: Platform) -> None:
    platform.tenant("hooks-ip")
    assert platform.deploy("gh", ECHO, "hooks-ip").status_code == 201
    hook = _hook(platform, "hooks-ip", "gh", scheme="github", secret="ip-secret")
    body = b"{}"
    signed = {"X-Hub-Signature-256": sign("github", "ip-secret", body, 0)}
    with platform.owner("hooks-ip") as client:  # the test client's address: 127.0.0.1
        rule = client.post("/v1/edge/ip-rules", json={"action": "deny", "cidr": "127.0.0.0/8",
                                                      "function": "gh"})
        assert rule.status_code == 201, rule.text
    refused = _post(platform, hook["path"], body, signed)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "ip_denied"
    assert _tasks(platform, "hooks-ip", "gh") == []
    with platform.owner("hooks-ip") as client:
        assert client.delete(f"/v1/edge/ip-rules/{rule.json()['id']}").status_code in (200, 204)
    assert _post(platform, hook["path"], body, signed).status_code == 202
