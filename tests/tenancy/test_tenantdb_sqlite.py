"""Tenant databases on SQLite, driven directly (no agent, no sandbox): the store URL
chooses the dialect; a statement cannot reach another file; the room the storage quota
leaves caps one statement; a request's transaction is one connection until it ends; the
row limit; dropping removes the file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hyac_agent.tenancy.tenantdb import MAX_ROWS, DatabaseFull, TenantDatabases
from hyac_agent.tenancy.tenantdb.postgres import PostgresTenantDatabases
from hyac_agent.tenancy.tenantdb.sqlite import SQLiteTenantDatabases
from hyac_common.errors import InvalidInput


@pytest.fixture
def dbs(tmp_path: Path) -> TenantDatabases:
    return TenantDatabases(tmp_path, "sqlite:///" + str(tmp_path / "hyac.db"))


def count(dbs: TenantDatabases, tenant: str = "acme") -> object:
    return dbs.run(tenant, None, "SELECT count(*) FROM t", None, True)["rows"][0][0]


def test_the_store_url_chooses_the_dialect(tmp_path: Path) -> None:
    sqlite = TenantDatabases(tmp_path, "sqlite:///" + str(tmp_path / "hyac.db"))
    postgres = TenantDatabases(tmp_path, "postgresql+psycopg://agent@db.example/hyac")
    assert type(sqlite) is SQLiteTenantDatabases and not sqlite.postgres
    assert type(postgres) is PostgresTenantDatabases and postgres.postgres
    assert isinstance(postgres, TenantDatabases) and isinstance(sqlite, TenantDatabases)
    assert sqlite.database("acme") == str(tmp_path / "tenants" / "acme" / "db.sqlite3")


@pytest.mark.parametrize("sql", [
    "ATTACH DATABASE '/etc/hostname' AS other",
    "VACUUM INTO '/tmp/copy.sqlite3'",
    "PRAGMA journal_mode = DELETE",
    "SELECT load_extension('/tmp/x.so')",
])
def test_a_statement_cannot_reach_another_file(dbs: TenantDatabases, sql: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        dbs.run("acme", None, sql, None, False)
    assert refused.value.code == "db_error"
    # Control: the agent's refusal, not a broken database; a read-only PRAGMA still runs.
    assert dbs.run("acme", None, "PRAGMA user_version", None, True)["rows"] == [[0]]


def test_the_room_caps_one_statement(dbs: TenantDatabases) -> None:
    dbs.run("acme", None, "CREATE TABLE t (v TEXT)", None, False)
    dbs.run("acme", None, "INSERT INTO t VALUES (?)", ["small"], False, room=1_000_000)
    with pytest.raises(DatabaseFull) as full:
        dbs.run("acme", None, "INSERT INTO t SELECT hex(randomblob(4 * 1024 * 1024))", None,
                False, room=1_000_000)
    assert 0 < full.value.size <= 1_000_000 + 4096
    assert count(dbs) == 1
    assert 0 < dbs.size("acme") <= 1_000_000
    # A statement that frees space runs when the database is full.
    assert dbs.run("acme", None, "DELETE FROM t", None, False, room=0) == 1


def test_a_transaction_is_one_connection_until_it_ends(dbs: TenantDatabases) -> None:
    dbs.run("acme", None, "CREATE TABLE t (v TEXT)", None, False)
    dbs.begin("acme", "req-1", 60)
    assert dbs.in_transaction("req-1")
    dbs.run("acme", "req-1", "INSERT INTO t VALUES (:v)", {"v": "kept"}, False)
    assert count(dbs) == 0, "not seen outside the transaction before its commit"
    with pytest.raises(InvalidInput, match="another tenant"):
        dbs.run("other", "req-1", "SELECT 1", None, True)
    assert dbs.finish("req-1", commit=True) and not dbs.in_transaction("req-1")
    assert count(dbs) == 1
    dbs.begin("acme", "req-2", 60)
    dbs.run("acme", "req-2", "INSERT INTO t VALUES ('lost')", None, False)
    dbs.abandon("req-")
    assert count(dbs) == 1 and not dbs.finish("req-2", commit=True)


def test_more_rows_than_the_limit_are_refused(dbs: TenantDatabases) -> None:
    rows = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) SELECT x FROM c"
    assert len(dbs.run("acme", None, rows.format(n=MAX_ROWS), None, True)["rows"]) == MAX_ROWS
    with pytest.raises(InvalidInput, match="add a LIMIT"):
        dbs.run("acme", None, rows.format(n=MAX_ROWS + 1), None, True)


def test_drop_removes_the_tenants_file(dbs: TenantDatabases) -> None:
    dbs.run("acme", None, "CREATE TABLE t (v TEXT)", None, False)
    dbs.begin("acme", "req-1", 60)
    assert dbs.sqlite_path("acme").exists()
    dbs.drop("acme")
    assert not dbs.sqlite_path("acme").exists() and not dbs.in_transaction("req-1")
    assert dbs.size("acme") == 0
