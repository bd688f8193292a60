"""Who may do what: each role (and a stranger, and a token scoped elsewhere) against each
action of the API, allowed or 403. The answers are the app's, so it runs in process."""

from __future__ import annotations

import pytest

from tests.tenancy.conftest import Platform
from tests.waiting import eventually

HELLO = "def main(context):\n    return {'hello': context.function.tenant}\n"


@pytest.fixture(scope="module")
def platform(api_platform: Platform) -> Platform:
    return api_platform

# action -> (least role that may do it, how to do it)
ACTIONS = {
    "list functions": ("viewer", lambda c: c.get("/v1/functions")),
    "invoke": ("viewer", lambda c: c.post("/v1/functions/hello/invoke", json={})),
    "logs": ("viewer", lambda c: c.get("/v1/logs")),
    "list tasks": ("viewer", lambda c: c.get("/v1/tasks")),
    "show quota": ("viewer", lambda c: c.get("/v1/quotas")),
    "show tenant": ("viewer", lambda c: c.get("/v1/tenants/team")),
    "deploy": ("developer", None),
    "rollback": ("developer", lambda c: c.post("/v1/functions/hello/rollback", json={"version": 1})),
    "set secret": ("developer", lambda c: c.put("/v1/secrets/API_KEY", json={"value": "s3cret-value"})),
    "list secrets": ("developer", lambda c: c.get("/v1/secrets")),
    "set env": ("developer", lambda c: c.put("/v1/env", json={"values": {"REGION": "eu"}})),
    "list env": ("developer", lambda c: c.get("/v1/env")),
    "list objects": ("viewer", lambda c: c.get("/v1/storage")),
    "get object": ("viewer", lambda c: c.get("/v1/storage/docs/readme.txt")),
    "put object": ("developer", lambda c: c.put("/v1/storage/docs/readme.txt", content=b"hello")),
    "delete object": ("developer", lambda c: c.delete("/v1/storage/docs/readme.txt")),
    "set quota": ("admin", lambda c: c.put("/v1/quotas", json={"values": {"functions": 50}})),
    "list users": ("admin", lambda c: c.get("/v1/users")),
    "add user": ("admin", lambda c: c.put("/v1/users/newcomer", json={"role": "viewer"})),
    "read audit": ("admin", lambda c: c.get("/v1/audit")),
    "create tenant": ("owner", lambda c: c.post("/v1/tenants", json={"name": "made-by-test"})),
    "remove tenant": ("owner", lambda c: c.delete("/v1/tenants/no-such-tenant")),
    "platform quotas": ("owner", lambda c: c.put("/v1/platform/quotas", json={"values": {}})),
}
RANK = {"stranger": 0, "viewer": 1, "developer": 2, "admin": 3, "owner": 4}


@pytest.fixture(scope="module")
def team(platform: Platform) -> dict[str, str]:
    platform.tenant("team")
    platform.tenant("elsewhere")
    assert platform.deploy("hello", HELLO, "team").status_code in (200, 201)
    tokens = {role: platform.user(f"u-{role}", "team", role)
              for role in ("viewer", "developer", "admin")}
    tokens["stranger"] = platform.user("u-stranger", "elsewhere", "admin")
    return tokens


@pytest.mark.parametrize("role", ["stranger", "viewer", "developer", "admin", "owner"])
@pytest.mark.parametrize("action", list(ACTIONS))
def test_denial_table(platform: Platform, team: dict[str, str], role: str, action: str) -> None:
    least, call = ACTIONS[action]
    token = None if role == "owner" else team[role]
    with platform.http(token, "team") as client:
        if call is None:
            answer = platform.deploy("hello", HELLO, "team", token)
        else:
            answer = call(client)
    allowed = RANK[role] >= RANK[least]
    if allowed:
        assert answer.status_code < 400 or answer.status_code in (404, 409), (action, role, answer.text)
    else:
        assert answer.status_code == 403, (action, role, answer.text)
        assert answer.json()["error"]["code"] == "forbidden"


def test_no_token_is_401_and_a_revoked_token_stops_working(platform: Platform, team: dict[str, str]) -> None:
    with platform.http("hyac_u_not-a-real-token", "team") as client:
        assert client.get("/v1/functions").status_code == 401
    token = platform.user("short-lived", "team", "viewer")
    with platform.http(token, "team") as client:
        assert client.get("/v1/functions").status_code == 200
        mine = client.get("/v1/tokens").json()
        assert [t["user"] for t in mine] == ["short-lived"] and "token" not in mine[0]
        assert client.delete(f"/v1/tokens/{mine[0]['id']}").status_code == 200
        assert client.get("/v1/functions").status_code == 401


def test_expired_token_is_refused(platform: Platform, team: dict[str, str]) -> None:
    with platform.owner() as owner:
        made = owner.post("/v1/tokens", json={"user": "u-viewer", "tenant": "team", "expires_in": 1})
    token = made.json()["token"]
    with platform.http(token, "team") as client:
        assert client.get("/v1/functions").status_code == 200
        answer = eventually(lambda: (a := client.get("/v1/functions")).status_code != 200 and a)
        assert answer.status_code == 401 and "expired" in answer.json()["error"]["message"]


def test_token_lifetimes_beyond_reason_are_refused(platform: Platform, team: dict[str, str]) -> None:
    with platform.owner() as owner:
        for lifetime in (1e300, 101 * 365 * 86400):
            refused = owner.post("/v1/tokens", json={"user": "u-viewer", "expires_in": lifetime})
            assert refused.status_code in (400, 422), refused.text
            assert "expires_in" in refused.text
        listed = owner.get("/v1/tokens").json()
        assert all((t.get("expires_at") or 0) < 1e11 for t in listed), "nothing absurd was stored"


def test_tokens_are_stored_as_hashes(platform: Platform, team: dict[str, str]) -> None:
    db = (platform.agent.data_dir / "hyac.db").read_bytes()
    for token in team.values():
        assert token.encode() not in db


def test_a_scoped_token_reaches_only_its_tenant(platform: Platform, team: dict[str, str]) -> None:
    # u-admin is made admin of "elsewhere" too, but its token is scoped to "team"
    with platform.owner("elsewhere") as owner:
        assert owner.put("/v1/users/u-admin", json={"role": "admin"}).status_code == 200
    with platform.http(team["admin"], "elsewhere") as client:
        assert client.get("/v1/functions").status_code == 403
    with platform.http(team["admin"], "team") as client:
        listed = client.get("/v1/tenants").json()
        assert [t["name"] for t in listed] == ["team"]


def test_admin_cannot_exceed_platform_quota(platform: Platform, team: dict[str, str]) -> None:
    with platform.owner() as owner:
        assert owner.put("/v1/platform/quotas", json={"values": {"executions_per_day": 1000}}).status_code == 200
    try:
        with platform.http(team["admin"], "team") as admin:
            denied = admin.put("/v1/quotas", json={"values": {"executions_per_day": 5000}})
            assert denied.status_code == 403 and denied.json()["error"]["quota"] == "executions_per_day"
            assert admin.put("/v1/quotas", json={"values": {"executions_per_day": 900}}).status_code == 200
    finally:
        with platform.owner() as owner:
            owner.put("/v1/platform/quotas", json={"values": {"executions_per_day": None}})
        with platform.owner("team") as owner:
            owner.put("/v1/quotas", json={"values": {"executions_per_day": None}})
