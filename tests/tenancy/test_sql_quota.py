"""The storage quota holds against one SQL statement that writes far past it: the
database itself refuses the growth (SQLite's max_page_count; on PostgreSQL a size check
that rolls the statement back), the function gets ``quota_exceeded``, and the table is as
it was before the statement. Each attack first proves it ran (its statement reached the
database: the function says so and the error names the quota), then that it gained
nothing, then that the tenant is still served within its quota.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.tenancy.conftest import Platform, body
from tests.tenancy.test_postgres_tenants import PgPlatform, pg  # noqa: F401 - the fixture

#: the quota's room beyond what the tenant already uses
ROOM = 1_000_000

ATTACK = '''
from hyac_context import HostCallError
def main(context):
    db = context.db
    sql = context.request.json()["sql"]
    before = db.fetchall("SELECT count(*) AS n FROM blobs")[0]["n"]
    try:
        db.execute(sql)
    except HostCallError as exc:
        after = db.fetchall("SELECT count(*) AS n FROM blobs")[0]["n"]
        return {"ran": True, "code": exc.code, "message": exc.message,
                "details": exc.details, "before": before, "after": after}
    after = db.fetchall("SELECT count(*) AS n FROM blobs")[0]["n"]
    return {"ran": True, "code": None, "before": before, "after": after}
'''

SETUP = '''
def main(context):
    context.db.execute("CREATE TABLE IF NOT EXISTS blobs (v TEXT)")
    context.db.execute("INSERT INTO blobs (v) VALUES ('marker')")
    return context.db.fetchall("SELECT count(*) AS n FROM blobs")[0]["n"]
'''

SMALL = '''
def main(context):
    context.db.execute("INSERT INTO blobs (v) VALUES ('small')")
    return context.db.fetchall("SELECT v FROM blobs ORDER BY v")
'''

#: about 8 MB in one statement, past a 1 MB room
SQLITE_ATTACKS = [
    "INSERT INTO blobs SELECT hex(randomblob(4 * 1024 * 1024))",
    # starts with WITH: a statement the agent takes for a read still cannot grow it
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 8000) "
    "INSERT INTO blobs SELECT hex(randomblob(512)) FROM c",
]
PG_ATTACKS = [
    "INSERT INTO blobs SELECT md5(g::text) || md5(random()::text) FROM generate_series(1, 100000) g",
    "WITH c AS (SELECT g FROM generate_series(1, 100000) g) "
    "INSERT INTO blobs SELECT md5(g::text) || md5(random()::text) FROM c",
]
#: a COMMIT sent after the insert in one string would end the check's transaction before
#: the check: under a quota a statement goes alone (the extended protocol), so it is refused
PG_JOINED = ("INSERT INTO blobs SELECT md5(g::text) || md5(random()::text) "
             "FROM generate_series(1, 100000) g; COMMIT")


def storage(platform: Platform, tenant: str) -> dict[str, Any]:
    with platform.owner(tenant) as owner:
        answer = owner.get("/v1/quotas")
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["quotas"]["storage"])


def set_storage_quota(platform: Platform, tenant: str, value: int) -> None:
    with platform.owner(tenant) as owner:
        answer = owner.put("/v1/quotas", json={"values": {"storage": value}})
    assert answer.status_code == 200, answer.text


def invoke_json(platform: Platform, name: str, tenant: str, **payload: object) -> Any:
    data = json.dumps(payload).encode() if payload else b""
    return json.loads(body(platform.invoke(name, tenant, body_b64=base64.b64encode(data).decode())))


def check_one_statement_cannot_pass(platform: Platform, tenant: str, attacks: list[str],
                                    refused: tuple[str, ...] = ()) -> None:
    platform.tenant(tenant)
    for name, source in (("setup", SETUP), ("attack", ATTACK), ("small", SMALL)):
        answer = platform.deploy(name, source, tenant)
        assert answer.status_code in (200, 201), answer.text
    assert invoke_json(platform, "setup", tenant) == 1
    # kv counts against the same quota: the database gets what it leaves
    with platform.owner(tenant) as owner:
        assert owner.put("/v1/storage/other.bin", content=b"o" * 10_000).status_code in (200, 201)
    limit = int(storage(platform, tenant)["use"]) + ROOM
    set_storage_quota(platform, tenant, limit)
    for sql in attacks:
        seen = invoke_json(platform, "attack", tenant, sql=sql)
        assert seen["ran"] is True, seen
        assert seen["code"] == "quota_exceeded", (sql, seen)
        assert seen["details"]["quota"] == "storage" and seen["details"]["limit"] == limit
        assert "storage" in seen["message"]
        assert seen["before"] == seen["after"] == 1, (sql, seen)  # nothing half-written
        shown = storage(platform, tenant)
        assert shown["use"] <= limit, (sql, shown)
    for sql in refused:
        seen = invoke_json(platform, "attack", tenant, sql=sql)
        assert seen["code"] == "db_error" and "multiple commands" in seen["message"], seen
        assert seen["before"] == seen["after"] == 1, (sql, seen)
        assert storage(platform, tenant)["use"] <= limit
    # still served: a small write within the quota goes through
    assert invoke_json(platform, "small", tenant) == [{"v": "marker"}, {"v": "small"}]


def check_attack_runs_without_a_quota(platform: Platform, tenant: str, sql: str) -> None:
    """The same statement really writes megabytes when no quota stops it."""
    platform.tenant(tenant)
    for name, source in (("setup", SETUP), ("attack", ATTACK)):
        assert platform.deploy(name, source, tenant).status_code in (200, 201)
    invoke_json(platform, "setup", tenant)
    seen = invoke_json(platform, "attack", tenant, sql=sql)
    assert seen["code"] is None and seen["after"] > seen["before"], seen
    assert storage(platform, tenant)["use"] > 4 * ROOM


def test_sqlite_one_statement_cannot_pass_the_storage_quota(platform: Platform) -> None:
    check_attack_runs_without_a_quota(platform, "sqlq-free", SQLITE_ATTACKS[0])
    check_one_statement_cannot_pass(platform, "sqlq-lite", SQLITE_ATTACKS)


def transaction_attack(platform: Platform, tenant: str, source: str) -> Any:
    """Run ``source`` in a tenant with the marker row and ROOM bytes of quota left."""
    platform.tenant(tenant)
    for name, code in (("setup", SETUP), ("txn", source)):
        assert platform.deploy(name, code, tenant).status_code in (200, 201)
    invoke_json(platform, "setup", tenant)
    set_storage_quota(platform, tenant, int(storage(platform, tenant)["use"]) + ROOM)
    return invoke_json(platform, "txn", tenant)


def test_sqlite_quota_holds_inside_a_transaction(platform: Platform) -> None:
    txn = '''
from hyac_context import HostCallError
def main(context):
    db = context.db
    try:
        with db.transaction():
            db.execute("INSERT INTO blobs (v) VALUES ('in-txn')")
            db.execute("INSERT INTO blobs SELECT hex(randomblob(4 * 1024 * 1024))")
    except HostCallError as exc:
        return {"code": exc.code, "rows": db.fetchall("SELECT v FROM blobs ORDER BY v")}
    return {"code": None}
'''
    seen = transaction_attack(platform, "sqlq-txn", txn)
    assert seen["code"] == "quota_exceeded", seen
    assert seen["rows"] == [{"v": "marker"}], seen


def test_postgres_one_statement_cannot_pass_the_storage_quota(pg: PgPlatform) -> None:  # noqa: F811
    check_attack_runs_without_a_quota(pg, "pgq-free", PG_JOINED)  # joined: ran both
    check_one_statement_cannot_pass(pg, "pgq-sql", PG_ATTACKS, refused=(PG_JOINED,))


def test_postgres_quota_holds_inside_a_transaction(pg: PgPlatform) -> None:  # noqa: F811
    txn = '''
from hyac_context import HostCallError
def main(context):
    db = context.db
    db.begin()
    db.execute("INSERT INTO blobs (v) VALUES ('in-txn')")
    try:
        db.execute("INSERT INTO blobs SELECT md5(g::text) || md5(random()::text) "
                   "FROM generate_series(1, 100000) g")
    except HostCallError as exc:
        code = exc.code
    else:
        code = None
    db.commit()   # the refused statement alone is undone: the rest of the transaction stays
    return {"code": code, "rows": db.fetchall("SELECT v FROM blobs ORDER BY v")}
'''
    seen = transaction_attack(pg, "pgq-txn", txn)
    assert seen["code"] == "quota_exceeded", seen
    assert seen["rows"] == [{"v": "in-txn"}, {"v": "marker"}], seen


def test_sqlite_a_delete_runs_when_full(platform: Platform) -> None:
    platform.tenant("sqlq-full")
    for name, source in (("setup", SETUP), ("attack", ATTACK)):
        assert platform.deploy(name, source, "sqlq-full").status_code in (200, 201)
    invoke_json(platform, "setup", "sqlq-full")
    set_storage_quota(platform, "sqlq-full", 1)  # far over already
    seen = invoke_json(platform, "attack", "sqlq-full", sql="INSERT INTO blobs VALUES ('more')")
    assert seen["code"] == "quota_exceeded" and seen["after"] == 1, seen
    seen = invoke_json(platform, "attack", "sqlq-full", sql="DELETE FROM blobs")
    assert seen["code"] is None and seen["after"] == 0, seen
