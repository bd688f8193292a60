"""Tenant A reaches nothing of tenant B: not through any host call, not through the API
with A's token; and a tenant's secrets, env and database behave as documented."""

from __future__ import annotations

import json

import pytest

from tests.tenancy.conftest import Platform, body
from tests.waiting import eventually

WRITER = '''
def main(context):
    context.kv.set("shared-name", "b-data")
    context.db.execute("CREATE TABLE IF NOT EXISTS private (v TEXT)")
    context.db.execute("INSERT INTO private VALUES (?)", ["b-row"])
    return {"ok": True}
'''

PROBE = '''
import json, os

def attempt(fn):
    try:
        return {"value": fn()}
    except Exception as exc:
        return {"error": type(exc).__name__ + ": " + str(exc)}

def main(context):
    q = context.request.query
    db_path = q.get("db_path", "")
    return {
        "kv_get": attempt(lambda: context.kv.get("shared-name")),
        "kv_list": attempt(lambda: context.kv.list("")),
        "db_tables": attempt(lambda: context.db.fetchall("SELECT name FROM sqlite_master")),
        "db_read": attempt(lambda: context.db.fetchall("SELECT * FROM private")),
        "attach": attempt(lambda: context.db.execute("ATTACH DATABASE ? AS other", [db_path])),
        "vacuum_into": attempt(lambda: context.db.execute("VACUUM INTO '/tmp/copy.db'")),
        "pragma": attempt(lambda: context.db.fetchall("PRAGMA database_list")),
        "secret": attempt(lambda: context.secrets["B_SECRET"]),
        "secret_names": attempt(lambda: list(context.secrets)),
        "enqueue": attempt(lambda: context.enqueue("writer")),
        "db_file_visible": os.path.exists(db_path),
        "tenant": context.function.tenant,
    }
'''


@pytest.fixture(scope="module")
def tenants(platform: Platform) -> dict[str, str]:
    platform.tenant("tenant-a")
    platform.tenant("tenant-b")
    a = platform.user("alice", "tenant-a", "admin")
    b = platform.user("bob", "tenant-b", "admin")
    assert platform.deploy("writer", WRITER, "tenant-b", b).status_code == 201
    body(platform.invoke("writer", "tenant-b", b))
    with platform.http(b, "tenant-b") as client:
        assert client.put("/v1/secrets/B_SECRET", json={"value": "bobs-secret-value"}).status_code == 204
        assert client.put("/v1/env", json={"values": {"B_ONLY": "1"}}).status_code == 200
    return {"a": a, "b": b}


def test_host_calls_reach_only_the_callers_tenant(platform: Platform, tenants: dict[str, str]) -> None:
    db_path = platform.agent.data_dir / "tenants" / "tenant-b" / "db.sqlite3"
    assert db_path.exists()
    assert platform.deploy("probe", PROBE, "tenant-a", tenants["a"]).status_code == 201
    seen = json.loads(body(platform.invoke("probe", "tenant-a", tenants["a"],
                                            query={"db_path": str(db_path)})))
    assert seen["tenant"] == "tenant-a"
    assert seen["kv_get"] == {"value": None}
    assert seen["kv_list"] == {"value": []}
    assert seen["db_tables"] == {"value": []}
    assert "no such table" in seen["db_read"]["error"]
    assert "not authorized" in seen["attach"]["error"]
    assert "authoriz" in seen["vacuum_into"]["error"]
    assert "authoriz" in seen["pragma"]["error"]
    assert seen["secret"]["error"].startswith("KeyError")
    assert seen["secret_names"] == {"value": []}
    assert "not found" in seen["enqueue"]["error"]
    assert seen["db_file_visible"] is False  # no sandbox holds another tenant's files
    # and B's data is intact and B's own
    same = json.loads(body(platform.invoke("probe", "tenant-b", tenants["b"],
                                           query={"db_path": str(db_path)}))) if platform.deploy(
        "probe", PROBE, "tenant-b", tenants["b"]).status_code in (200, 201) else None
    assert same["kv_get"] == {"value": "b-data"}
    assert same["db_read"] == {"value": [{"v": "b-row"}]}
    assert same["secret"] == {"value": "bobs-secret-value"}


API_PROBES = [
    ("GET", "/v1/functions", None),
    ("GET", "/v1/functions/writer", None),
    ("GET", "/v1/functions/writer/versions", None),
    ("POST", "/v1/functions/writer/invoke", {}),
    ("PUT", "/v1/functions/writer", {"entry": "f.py", "files_b64": {"f.py": ""}}),
    ("DELETE", "/v1/functions/writer", None),
    ("POST", "/v1/functions/writer/rollback", {"version": 1}),
    ("GET", "/v1/logs", None),
    ("GET", "/v1/tasks", None),
    ("GET", "/v1/secrets", None),
    ("PUT", "/v1/secrets/B_SECRET", {"value": "overwritten"}),
    ("DELETE", "/v1/secrets/B_SECRET", None),
    ("GET", "/v1/env", None),
    ("GET", "/v1/storage", None),
    ("GET", "/v1/storage/reports/q1.csv", None),
    ("PUT", "/v1/storage/reports/q1.csv", {"not": "checked"}),
    ("DELETE", "/v1/storage/reports/q1.csv", None),
    ("PUT", "/v1/env", {"values": {"X": "1"}}),
    ("GET", "/v1/quotas", None),
    ("PUT", "/v1/quotas", {"values": {"functions": 1}}),
    ("GET", "/v1/users", None),
    ("PUT", "/v1/users/alice", {"role": "admin"}),
    ("GET", "/v1/audit", None),
    ("GET", "/v1/tenants/tenant-b", None),
]


@pytest.mark.parametrize(("method", "path", "payload"), API_PROBES)
@pytest.mark.parametrize("target", ["tenant-b", "no-such-tenant"])
def test_api_with_a_token_of_tenant_a_is_refused_in_b(
    platform: Platform, tenants: dict[str, str], method: str, path: str, payload: object, target: str
) -> None:
    path = path.replace("tenant-b", target)
    with platform.http(tenants["a"], target) as client:
        answer = client.request(method, path, json=payload)
    # The same answer whether or not the tenant exists: nothing to learn by guessing.
    assert answer.status_code == 403, answer.text
    assert "tenant-b" not in answer.text or target == "tenant-b"


def test_token_of_a_cannot_mint_tokens_for_b(platform: Platform, tenants: dict[str, str]) -> None:
    with platform.http(tenants["a"], "tenant-a") as client:
        for payload in ({"tenant": "tenant-b"}, {"user": "bob", "tenant": "tenant-b"},
                        {"user": "bob"}):
            assert client.post("/v1/tokens", json=payload).status_code == 403, payload
        listed = client.get("/v1/tokens").json()
        assert {t["user"] for t in listed} <= {"alice"}
        bobs = platform.tokens["bob@tenant-b"]
        with platform.owner() as owner:
            bob_ids = [t["id"] for t in owner.get("/v1/tokens").json() if t["user"] == "bob"]
        assert client.delete(f"/v1/tokens/{bob_ids[0]}").status_code == 404
    with platform.http(bobs, "tenant-b") as client:
        assert client.get("/v1/functions").status_code == 200


def test_secrets_are_encrypted_at_rest_redacted_and_never_returned(
    platform: Platform, tenants: dict[str, str]
) -> None:
    b = tenants["b"]
    with platform.http(b, "tenant-b") as client:
        assert client.get("/v1/secrets").json() == ["B_SECRET"]
    data = platform.agent.data_dir
    assert b"bobs-secret-value" not in (data / "hyac.db").read_bytes()
    key = data / "secrets.key"
    assert key.stat().st_mode & 0o777 == 0o600
    leak = ("def main(context):\n    value = context.secrets['B_SECRET']\n"
            "    print('the key is', value)\n    context.logger.info('again: %s!', value)\n"
            "    return {'length': len(value)}\n")
    assert platform.deploy("leak", leak, "tenant-b", b).status_code == 201
    assert json.loads(body(platform.invoke("leak", "tenant-b", b))) == {"length": 17}

    def redacted_lines() -> list[str] | None:
        with platform.http(b, "tenant-b") as client:
            records = client.get("/v1/logs", params={"function": "leak"}).json()
        messages = [r["message"] for r in records]
        return messages if {"the key is ***", "again: ***!"} <= set(messages) else None

    found = eventually(redacted_lines, timeout=30)
    assert not any("bobs-secret-value" in line for line in found)


def test_tenant_env_is_merged_under_the_functions_own(platform: Platform, tenants: dict[str, str]) -> None:
    a = tenants["a"]
    source = "def main(context):\n    return dict(context.env)\n"
    with platform.http(a, "tenant-a") as client:
        assert client.put("/v1/env", json={"values": {"REGION": "eu", "LEVEL": "tenant"}}).status_code == 200
    assert platform.deploy("envy", source, "tenant-a", a, env={"LEVEL": "function"}).status_code == 201
    env = json.loads(body(platform.invoke("envy", "tenant-a", a)))
    assert env["REGION"] == "eu" and env["LEVEL"] == "function" and "B_ONLY" not in env
    with platform.http(a, "tenant-a") as client:  # a change reaches running workers
        assert client.put("/v1/env", json={"values": {"REGION": "us"}}).status_code == 200
        assert client.delete("/v1/env/LEVEL").status_code == 204
        assert client.get("/v1/env").json() == {"REGION": "us"}
    eventually(lambda: json.loads(body(platform.invoke("envy", "tenant-a", a)))["REGION"] == "us")


TXN = '''
def main(context):
    db = context.db
    db.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
    db.execute("DELETE FROM t")
    with db.transaction():
        db.execute("INSERT INTO t VALUES (?)", [1])
        db.execute("INSERT INTO t VALUES (:v)", {"v": 2})
    try:
        with db.transaction():
            db.execute("INSERT INTO t VALUES (3)")
            raise ValueError("undo")
    except ValueError:
        pass
    db.begin()
    db.execute("INSERT INTO t VALUES (4)")
    db.rollback()
    if context.request.query.get("leave_open"):
        db.begin()
        db.execute("INSERT INTO t VALUES (5)")
    return db.fetchall("SELECT v FROM t ORDER BY v")
'''


def test_db_transactions(platform: Platform, tenants: dict[str, str]) -> None:
    a = tenants["a"]
    assert platform.deploy("txn", TXN, "tenant-a", a).status_code == 201
    assert json.loads(body(platform.invoke("txn", "tenant-a", a))) == [{"v": 1}, {"v": 2}]
    # a transaction left open when the invocation ends is rolled back
    assert json.loads(body(platform.invoke("txn", "tenant-a", a, query={"leave_open": "1"}))) == [
        {"v": 1}, {"v": 2}, {"v": 5}]
    check = "def main(context):\n    return context.db.fetchall('SELECT v FROM t ORDER BY v')\n"
    assert platform.deploy("check", check, "tenant-a", a).status_code == 201
    assert json.loads(body(platform.invoke("check", "tenant-a", a))) == [{"v": 1}, {"v": 2}]


NET_PROBE = '''
import socket

def main(context):
    port = int(context.request.query["port"])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return {"reached": True}
    except OSError as exc:
        return {"reached": False, "error": str(exc)}
'''


def test_bwrap_sandbox_has_no_network_by_default(platform: Platform, tenants: dict[str, str]) -> None:
    """Egress itself is tested with real traffic in test_network.py."""
    port = platform.agent.url.rsplit(":", 1)[1]
    assert platform.deploy("net", NET_PROBE, "tenant-a", tenants["a"]).status_code == 201
    seen = json.loads(body(platform.invoke("net", "tenant-a", tenants["a"], query={"port": port})))
    assert seen["reached"] is False
