"""Custom domains: routing by Host, one tenant per domain, suffixes the owner allows,
names of the platform reserved, and the HTTP ownership check on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.edge.conftest import DNS_PORT, DnsServer, Edge


def claim(edge: Edge, tenant: str, host: str, **how: object) -> object:
    with edge.owner(tenant) as owner:
        return owner.post("/v1/domains", json={"host": host, **how})


def settings(edge: Edge, **values: object) -> None:
    with edge.owner() as owner:
        assert owner.patch("/v1/edge/settings", json=values).status_code == 200


@pytest.fixture(autouse=True)
def open_settings(edge: Edge) -> Iterator[None]:
    settings(edge, domain_suffixes=[], domain_verification="none", reserved_hosts=[])
    yield
    settings(edge, domain_suffixes=[], domain_verification="none", reserved_hosts=[])


def test_the_gateway_routes_by_host_and_the_api_stays_the_api(edge: Edge) -> None:
    edge.echo("shop", "echo")
    assert claim(edge, "shop", "API.Example.test.", function="echo").status_code == 201
    assert claim(edge, "shop", "pre.example.test", function="echo",
                 path_prefix="/api").status_code == 201
    assert claim(edge, "shop", "root.example.test", tenant_root=True).status_code == 201
    with edge.client() as client:
        routed = client.post("/items/7?x=1", headers={"Host": "api.example.test"}, content=b"hi")
        assert routed.status_code == 200, routed.text
        assert routed.json()["path"] == "/items/7" and routed.json()["body"] == "hi"
        assert client.get("/api/v2", headers={"Host": "pre.example.test:8080"}).json()["path"] == "/v2"
        outside = client.get("/elsewhere", headers={"Host": "pre.example.test"})
        assert outside.status_code == 404
        assert client.get("/echo/deep/path", headers={"Host": "root.example.test"}
                          ).json()["path"] == "/deep/path"
        assert client.get("/v1/health", headers={"Host": "api.example.test"}).json()["status"] == "ok"
        # a method the gateway does not take reaches no function on a domain either
        assert client.request("TRACE", "/x", headers={"Host": "api.example.test"}).status_code in (
            404, 405)
        # other names still reach the path gateway
        on_path = client.get("/shop/echo/x")
        assert on_path.json()["path"] == "/x"
        # a domain is the function's own origin: no sandbox, which the agent's own origin
        # (shared with the console) puts on every function response
        assert "content-security-policy" not in routed.headers
        assert on_path.headers["content-security-policy"].startswith("sandbox ")
    with edge.owner("shop") as owner:
        listed = {d["host"]: d for d in owner.get("/v1/domains").json()}
    assert listed["api.example.test"]["status"] == "active"
    assert listed["root.example.test"]["tenant_root"] is True


def test_a_domain_belongs_to_one_tenant(edge: Edge) -> None:
    edge.echo("alpha", "echo")
    edge.echo("beta", "echo")
    assert claim(edge, "alpha", "mine.example.test", function="echo").status_code == 201
    taken = claim(edge, "beta", "mine.example.test", function="echo")
    assert taken.status_code == 409 and "alpha" not in taken.text
    assert claim(edge, "alpha", "mine.example.test", function="echo").status_code == 409
    # the other tenant cannot remove it either
    with edge.owner("beta") as owner:
        assert owner.delete("/v1/domains/mine.example.test").status_code == 404
    admin = edge.user("beta-admin", "beta", "admin")
    with edge.client(headers={"Authorization": f"Bearer {admin}", "X-Hyac-Tenant": "alpha"}) as client:
        assert client.delete("/v1/domains/mine.example.test").status_code == 403
    developer = edge.user("alpha-dev", "alpha", "developer")
    with edge.client(headers={"Authorization": f"Bearer {developer}", "X-Hyac-Tenant": "alpha"}) as c:
        assert c.post("/v1/domains", json={"host": "dev.example.test", "function": "echo"}
                      ).status_code == 403  # claiming a name needs the admin role
    with edge.client() as client:
        assert client.get("/", headers={"Host": "mine.example.test"}).status_code == 200
    with edge.owner("alpha") as owner:
        assert owner.delete("/v1/domains/mine.example.test").status_code == 204
    assert claim(edge, "beta", "mine.example.test", function="echo").status_code == 201


def test_owner_suffixes_and_reserved_names(edge: Edge) -> None:
    edge.echo("suffixed", "echo")
    settings(edge, domain_suffixes=["apps.example.test"], reserved_hosts=["hyac.example.test"])
    refused = claim(edge, "suffixed", "evil.example.test", function="echo")
    assert refused.status_code == 403 and refused.json()["error"]["allowed_suffixes"] == [
        "apps.example.test"]
    assert claim(edge, "suffixed", "notapps.example.test", function="echo").status_code == 403
    assert claim(edge, "suffixed", "a.apps.example.test", function="echo").status_code == 201
    settings(edge, domain_suffixes=[])
    assert claim(edge, "suffixed", "hyac.example.test", function="echo").status_code == 403
    assert claim(edge, "suffixed", "x.hyac.example.test", function="echo").status_code == 403
    # the name the API was reached by is never a tenant's: it would take the gateway's paths
    with edge.owner("suffixed") as owner:
        own = owner.post("/v1/domains", json={"host": "agent.example.test", "function": "echo"},
                         headers={"Host": "agent.example.test"})
    assert own.status_code == 403
    for bad in ("127.0.0.1", "localhost", "a..b", "-x.example.test", "x" * 64 + ".test",
                "*.example.test", "a.example.test/path", "[::1]"):
        assert claim(edge, "suffixed", bad, function="echo").status_code == 400, bad


def test_the_http_ownership_check_and_contested_claims(edge: Edge) -> None:
    edge.echo("prover", "echo")
    edge.echo("squatter", "echo")
    settings(edge, domain_verification="http")
    made = claim(edge, "prover", "verify-me.example.test", function="echo")
    assert made.status_code == 201 and made.json()["status"] == "pending"
    token = made.json()["challenge"]
    # a pending claim blocks no one: whoever proves the name first has it
    squat = claim(edge, "squatter", "verify-me.example.test", function="echo")
    assert squat.status_code == 201
    with edge.client() as client:
        assert client.get("/x", headers={"Host": "verify-me.example.test"}).status_code == 404
        assert client.get(f"/.well-known/hyac-challenge/{token}",
                          headers={"Host": "verify-me.example.test"}).text == token
        guess = client.get("/.well-known/hyac-challenge/guess",
                           headers={"Host": "verify-me.example.test"})
        assert guess.status_code >= 400 and token not in guess.text
    with edge.owner("prover") as owner:
        done = owner.post("/v1/domains/verify-me.example.test/verify")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "active"
    with edge.owner("squatter") as owner:
        assert owner.post("/v1/domains/verify-me.example.test/verify").status_code == 404
    with edge.client() as client:
        assert client.get("/x", headers={"Host": "verify-me.example.test"}).json()["path"] == "/x"
    # a name that does not lead to this agent is not verified
    with edge.owner("prover") as owner:
        assert claim(edge, "prover", "elsewhere.example.test", function="echo").status_code == 201
        failed = owner.post("/v1/domains/elsewhere.example.test/verify")
    assert failed.status_code == 400
    assert failed.json()["error"]["code"] == "domain_unverified"


def test_domain_ip_rules_apply_to_the_domain(edge: Edge) -> None:
    edge.echo("ruled", "echo")
    assert claim(edge, "ruled", "ruled.example.test", function="echo").status_code == 201
    with edge.owner("ruled") as owner:
        made = owner.post("/v1/edge/ip-rules", json={"action": "deny", "cidr": "127.0.0.60",
                                                     "domain": "ruled.example.test"})
    assert made.status_code == 201, made.text
    with edge.client("127.0.0.60") as client:
        refused = client.get("/", headers={"Host": "ruled.example.test"})
        assert refused.status_code == 403 and refused.json()["error"]["level"] == "domain"
        assert client.get("/ruled/echo").status_code == 200  # the path gateway: another door


def test_the_dns_ownership_check(edge: Edge) -> None:
    edge.echo("dnsproof", "echo")
    settings(edge, domain_verification="dns")
    server = DnsServer(DNS_PORT)
    try:
        made = claim(edge, "dnsproof", "txt.example.test", function="echo")
        token = made.json()["challenge"]
        with edge.owner("dnsproof") as owner:
            missing = owner.post("/v1/domains/txt.example.test/verify")
            assert missing.status_code == 400 and "TXT" in missing.json()["error"]["message"]
            server.records["_hyac-challenge.txt.example.test."] = "not the token"
            assert owner.post("/v1/domains/txt.example.test/verify").status_code == 400
            server.records["_hyac-challenge.txt.example.test."] = token
            done = owner.post("/v1/domains/txt.example.test/verify")
        assert done.status_code == 200 and done.json()["status"] == "active"
    finally:
        server.close()
    with edge.client() as client:
        assert client.get("/a", headers={"Host": "txt.example.test"}).json()["path"] == "/a"
