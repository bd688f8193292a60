"""Identity attacks against the agent's API (its app, in the test process): a token minting a token that outlives it, a
revoked token's children living on, and a user named as the platform owner to pass its
actions off as the owner's in the audit log. Each attack is shown to run (the request
reaches the agent and, where it can, first works), then to gain nothing, then the agent
still serves its victim.
"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import start_agent
from tests.tenancy.conftest import Platform, agent_env
from tests.waiting import eventually

QUICK = "def main(context):\n    return 1\n"


@pytest.fixture(scope="module")
def platform(api_platform: Platform) -> Platform:
    return api_platform


def mint(platform: Platform, token: str, **body: Any) -> httpx.Response:
    with platform.http(token) as client:
        return client.post("/v1/tokens", json=body)


def whoami(platform: Platform, token: str) -> httpx.Response:
    with platform.http(token) as client:
        return client.get("/v1/whoami")


def test_a_token_cannot_mint_one_that_outlives_it(platform: Platform) -> None:
    platform.tenant("idt-exp")
    with platform.owner("idt-exp") as owner:
        assert owner.put("/v1/users/exp-dev", json={"role": "developer"}).status_code == 200
        made = owner.post("/v1/tokens", json={"user": "exp-dev", "tenant": "idt-exp",
                                              "expires_in": 3})
    assert made.status_code == 201, made.text
    parent = made.json()
    # the attack: no expiry asked for -> it gets the parent's, never none
    child = mint(platform, parent["token"])
    assert child.status_code == 201, child.text
    assert child.json()["parent"] == parent["id"]
    assert child.json()["expires_at"] == parent["expires_at"]
    assert whoami(platform, child.json()["token"]).json()["user"] == "exp-dev"  # it works now
    longer = mint(platform, parent["token"], expires_in=3600)
    assert longer.status_code == 403 and longer.json()["error"]["code"] == "forbidden"
    shorter = mint(platform, parent["token"], expires_in=1)
    assert shorter.status_code == 201 and shorter.json()["expires_at"] <= parent["expires_at"]
    # and once the parent expired, nothing it made still works
    eventually(lambda: whoami(platform, parent["token"]).status_code == 401)
    assert whoami(platform, child.json()["token"]).status_code == 401
    assert platform.invoke("anything", "idt-exp", child.json()["token"]).status_code == 401
    with platform.owner("idt-exp") as owner:  # the platform still serves the tenant
        assert owner.get("/v1/whoami").status_code == 200


def test_revoking_a_token_ends_what_it_made_transitively(platform: Platform) -> None:
    platform.tenant("idt-rev")
    admin = platform.user("rev-admin", "idt-rev", "admin")
    platform.user("rev-dev", "idt-rev", "developer")
    child = mint(platform, admin, name="child")
    assert child.status_code == 201, child.text
    grandchild = mint(platform, child.json()["token"], name="grandchild")
    assert grandchild.status_code == 201, grandchild.text
    # an admin's token issued for a member descends from the admin's token too
    for_member = mint(platform, admin, user="rev-dev", tenant="idt-rev")
    assert for_member.status_code == 201, for_member.text
    made = [child.json(), grandchild.json(), for_member.json()]
    assert [whoami(platform, m["token"]).status_code for m in made] == [200, 200, 200]
    assert platform.deploy("quick", QUICK, "idt-rev", grandchild.json()["token"]).status_code == 201
    admin_id = whoami(platform, admin).json()["token"]
    with platform.owner("idt-rev") as owner:
        revoked = owner.delete(f"/v1/tokens/{admin_id}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        listed = {t["id"]: t for t in owner.get("/v1/tokens").json()}
    assert [whoami(platform, m["token"]).status_code for m in made] == [401, 401, 401]
    assert all(listed[m["id"]]["revoked_at"] is not None for m in made)
    assert platform.deploy("quick", QUICK, "idt-rev", grandchild.json()["token"]).status_code == 401
    # the victim is still served: a new token of the admin works
    fresh = platform.user("rev-admin", "idt-rev", "admin")
    assert whoami(platform, fresh).status_code == 200


def test_a_parent_revoked_by_removing_its_user_ends_its_children(platform: Platform) -> None:
    """Revocations made in bulk (an admin removed from the tenant revokes its tokens
    there) reach the tokens made with them for other members too."""
    platform.tenant("idt-bulk")
    platform.tenant("idt-bulk2")
    admin = platform.user("bulk-admin", "idt-bulk", "admin")
    platform.user("bulk-admin", "idt-bulk2", "admin")
    platform.user("bulk-dev", "idt-bulk", "developer")
    assert mint(platform, admin, tenant="idt-bulk2").status_code == 403  # no wider scope
    for_member = mint(platform, admin, user="bulk-dev", tenant="idt-bulk")
    assert for_member.status_code == 201, for_member.text
    assert whoami(platform, for_member.json()["token"]).json()["user"] == "bulk-dev"
    with platform.owner("idt-bulk") as owner:
        assert owner.delete("/v1/users/bulk-admin").status_code == 204
    assert whoami(platform, admin).status_code == 401
    assert whoami(platform, for_member.json()["token"]).status_code == 401
    # the member itself is still served with a token of its own
    assert whoami(platform, platform.user("bulk-dev", "idt-bulk", "developer")).status_code == 200


RESERVED = ["owner", "Owner", "OWNER", "\uff4f\uff57\uff4e\uff45\uff52", "system", "root",
            "admin", "agent", "hyac", "hyac-bot", "system-x", "HyAc_ops"]


def test_reserved_user_names_are_refused(platform: Platform) -> None:
    platform.tenant("idt-names")
    admin = platform.user("names-admin", "idt-names", "admin")
    for token in (admin, None):  # a tenant admin and the platform owner alike
        with platform.http(token, "idt-names") as client:
            for name in RESERVED:
                answer = client.put(f"/v1/users/{quote(name)}", json={"role": "viewer"})
                assert answer.status_code == 400, (name, answer.text)
                assert answer.json()["error"]["code"] == "invalid_input", name
    with platform.http(admin, "idt-names") as client:
        members = [m["name"] for m in client.get("/v1/users").json()]
        assert not set(members) & {n.lower() for n in RESERVED}, members
        # still served: an ordinary name is fine
        assert client.put("/v1/users/owner-fan", json={"role": "viewer"}).status_code == 200


def test_audit_tells_principals_apart_by_kind_and_id(platform: Platform) -> None:
    platform.tenant("idt-audit")
    dev = platform.user("aud-bob", "idt-audit", "developer")
    bob = whoami(platform, dev).json()
    assert bob["kind"] == "user" and bob["id"].startswith("usr_")
    assert platform.deploy("quick", QUICK, "idt-audit", dev).status_code == 201
    # the same name removed and added again is another principal
    with platform.owner("idt-audit") as owner:
        assert owner.delete("/v1/users/aud-bob", params={"everywhere": "1"}).status_code == 204
    dev2 = platform.user("aud-bob", "idt-audit", "developer")
    bob2 = whoami(platform, dev2).json()
    assert bob2["id"] != bob["id"]
    assert platform.deploy("quick", QUICK + "# 2\n", "idt-audit", dev2).status_code == 201
    with platform.owner("idt-audit") as owner:
        records = owner.get("/v1/audit").json()
    deploys = [r for r in records if r["action"] == "deploy"]
    assert [(r["actor"], r["actor_kind"], r["actor_id"], r["actor_token"]) for r in deploys] == [
        ("aud-bob", "user", bob["id"], bob["token"]),
        ("aud-bob", "user", bob2["id"], bob2["token"]),
    ]
    made = [r for r in records if r["action"] == "user.set"]
    assert made and all((r["actor_kind"], r["actor_id"]) == ("owner", "owner") for r in made)


def test_audit_rows_and_users_of_an_older_store_read_sensibly(tmp_path: Path) -> None:
    """A store made before kinds and ids: its audit rows read with kind and id null, its
    users get ids, and new rows carry them."""
    data = tmp_path / "data"
    first = start_agent(data, "--sandbox", "bwrap", env=agent_env())
    Platform(first).tenant("old")
    first.kill(signal.SIGTERM)
    with sqlite3.connect(data / "hyac.db") as conn:  # back to the old tables
        conn.execute("DROP INDEX ix_tokens_parent")
        conn.execute("INSERT INTO users (name, owner, created_at) VALUES ('old-user', 0, 0)")
        for table, column in (("audit_log", "actor_kind"), ("audit_log", "actor_id"),
                              ("audit_log", "actor_token"), ("users", "id"),
                              ("tokens", "parent")):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    again = start_agent(data, "--sandbox", "bwrap", env=agent_env())
    platform = Platform(again)
    try:
        with platform.owner() as owner:
            records = owner.get("/v1/audit", params={"all": "1"}).json()
            users = {u["name"]: u for u in owner.get("/v1/users", params={"all": "1"}).json()}
        old = [r for r in records if r["action"] == "tenant.create" and r["target"] == "old"]
        assert old and old[0]["actor"] == "owner" and old[0]["actor_kind"] is None
        assert users["old-user"]["id"].startswith("usr_")
        platform.tenant("new")
        with platform.owner() as owner:
            records = owner.get("/v1/audit", params={"all": "1"}).json()
        new = [r for r in records if r["action"] == "tenant.create" and r["target"] == "new"]
        assert new and new[0]["actor_kind"] == "owner"
    finally:
        again.kill(signal.SIGTERM)
