"""A function's or a tenant's edge settings go with it: a new function of the same name
starts public, refuses the old keys, and no domain points at it; a removed tenant leaves
no row in any edge table."""

from __future__ import annotations

import httpx
import trustme
from sqlalchemy import func, select

from hyac_agent.edge import tables
from tests.conftest import AgentClient

HELLO = '''
def main(context):
    return {"hello": context.function.tenant}
'''


def ok(answer: httpx.Response, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    return answer.json() if answer.content else {}  # type: ignore[no-any-return]


def fence(agent: AgentClient, tenant: str, function: str, ca: trustme.CA) -> str:
    """Every edge setting a function can have, in ``tenant``; its key."""
    with agent.client() as owner:
        if owner.get(f"/v1/tenants/{tenant}").status_code == 404:
            ok(owner.post("/v1/tenants", json={"name": tenant}), 201)
    agent.deploy(function, HELLO, tenant)
    host = f"{function}.{tenant}.example.test"
    with agent.client(tenant) as owner:
        ok(owner.patch(f"/v1/edge/access/{function}", json={
            "mode": "token", "rate_limit": {"requests": 100, "per_seconds": 60},
            "cors": {"origins": ["https://app.example.test"]}, "replay_window": 60}))
        key = ok(owner.post(f"/v1/edge/access/{function}/keys", json={"name": "ci"}), 201)["key"]
        for where in ({"function": function}, {"domain": host}, {}):
            ok(owner.post("/v1/edge/ip-rules", json={"action": "deny", "cidr": "192.0.2.0/24",
                                                     **where}), 201)
        ok(owner.post("/v1/domains", json={"host": host, "function": function}), 201)
        ok(owner.post("/v1/domains", json={"host": f"root-{function}.{tenant}.example.test",
                                              "tenant_root": True}), 201)
        leaf = ca.issue_cert(host)
        ok(owner.put(f"/v1/domains/{host}/certificate", json={
            "cert_pem": "".join(b.bytes().decode() for b in leaf.cert_chain_pems),
            "key_pem": leaf.private_key_pem.bytes().decode()}))
    with agent.http(None) as anyone:
        assert anyone.get(f"/{tenant}/{function}").status_code == 401
        ok(anyone.get(f"/{tenant}/{function}", headers={"X-Hyac-Key": key}))
        ok(anyone.get("/", headers={"Host": host, "X-Hyac-Key": key}))
    return str(key)


def test_a_function_made_again_under_its_name_inherits_nothing(api_agent: AgentClient) -> None:
    ca = trustme.CA()
    key = fence(api_agent, "shop", "hello", ca)
    host = "hello.shop.example.test"
    with api_agent.client("shop") as owner:
        removed = ok(owner.delete("/v1/functions/hello"))
        assert removed == {"deleted": "hello", "domains_removed": [host]}
        api_agent.deploy("hello", HELLO, "shop")
        access = ok(owner.get("/v1/edge/access/hello"))
        assert access == {"function": "hello", "mode": "public", "rate_limit": None,
                          "cors": None, "signing_secret_set": False, "replay_window": None}
        assert ok(owner.get("/v1/edge/access/hello/keys")) == []
        rules = ok(owner.get("/v1/edge/ip-rules"))
        # the function's rule went with it; the tenant's and the domain name's are the tenant's
        assert [(r["function"], r["domain"]) for r in rules] == [(None, host), (None, None)]
        assert [d["host"] for d in ok(owner.get("/v1/domains"))] == ["root-hello.shop.example.test"]
        assert owner.get(f"/v1/domains/{host}/certificate").status_code == 404
    with api_agent.http(None) as anyone:
        assert ok(anyone.get("/shop/hello")) == {"hello": "shop"}  # public, as any new function
        assert "hello" not in anyone.get("/", headers={"Host": host}).text  # no domain
    # made token-only again, the old function's key is refused
    with api_agent.client("shop") as owner:
        ok(owner.patch("/v1/edge/access/hello", json={"mode": "token"}))
    with api_agent.http(None) as anyone:
        refused = anyone.get("/shop/hello", headers={"X-Hyac-Key": key})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "access_refused"


def test_a_removed_tenant_leaves_nothing_in_the_edge_tables(api_agent: AgentClient) -> None:
    ca = trustme.CA()
    fence(api_agent, "gone", "hello", ca)
    fence(api_agent, "gone", "other", ca)
    fence(api_agent, "stays", "hello", ca)
    engine = api_agent.agent.store.engine  # type: ignore[attr-defined]

    def rows(tenant: str) -> dict[str, int]:
        with engine.connect() as conn:
            return {table.name: conn.execute(select(func.count()).select_from(table).where(
                table.c.tenant == tenant)).scalar_one()
                for table in tables.metadata.sorted_tables if "tenant" in table.c}

    assert all(rows("gone").values())  # every table with tenants holds some of it
    kept = rows("stays")
    with api_agent.client() as owner:
        ok(owner.delete("/v1/tenants/gone"), 204)
    assert rows("gone") == dict.fromkeys(kept, 0)
    assert rows("stays") == kept
    with api_agent.http(None) as anyone:
        assert "hello" not in anyone.get("/", headers={"Host": "hello.gone.example.test"}).text
