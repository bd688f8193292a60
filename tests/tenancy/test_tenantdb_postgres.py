"""Tenant databases on PostgreSQL, driven directly (no agent, no sandbox): an agent whose
database user is no superuser (CREATEDB CREATEROLE only) makes, uses, measures and drops
a tenant's database; the per-tenant connection limit; a limit the tenant changed on its
own database repaired; names that say nothing about the tenant. Same server as
test_postgres_tenants.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hyac_agent.tenancy.tenantdb import (
    DEFAULT_CONNECTIONS,
    DEFAULT_STATEMENT_TIMEOUT,
    TenantDatabases,
)
from hyac_common.errors import InvalidInput
from tests.tenancy.test_postgres_tenants import ADMIN_URL, create_store, drop_store, url_of

psycopg = pytest.importorskip("psycopg")
from psycopg import sql  # noqa: E402


@dataclass
class Store:
    url: str  # the agent's store URL, logged in as ``admin``
    dbname: str
    admin: str

    def superuser(self, dbname: str | None = None) -> psycopg.Connection:
        """To look, never to help."""
        return psycopg.connect(url_of(dbname or self.dbname), autocommit=True)

    def exists(self, name: str) -> tuple[bool, bool]:
        """Whether a database and a role of that name exist."""
        with self.superuser() as conn:
            database = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            has_database = database.fetchone() is not None
            has_role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                    (name,)).fetchone() is not None
        return has_database, has_role


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    admin = "hyac_test_admin_" + secrets.token_hex(4)
    # a password, as an operator gives the agent's role: a server that asks for one over
    # TCP (Debian's default, scripts/services.sh) must get it, one that trusts ignores it
    password = secrets.token_urlsafe(18)
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD {}").format(
                sql.Identifier(admin), sql.Literal(password)))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server to test on"
        pytest.skip(f"PostgreSQL tenancy NOT TESTED: no server at {ADMIN_URL}: {exc}")
    dbname = create_store(owner=admin)
    url = "postgresql+psycopg://" + url_of(dbname, admin, password).split("://", 1)[1]
    try:
        yield Store(url, dbname, admin)
    finally:
        drop_store(dbname, TenantDatabases(Path(), url).role_prefix(), roles=(admin,))


def tenant_dbs(store: Store, tmp_path: Path, **limits: float) -> TenantDatabases:
    (tmp_path / "data").mkdir(exist_ok=True)
    return TenantDatabases(tmp_path / "data", store.url, **limits)  # type: ignore[arg-type]


def rows(result: dict[str, list[list[object]]]) -> list[list[object]]:
    return result["rows"]


def test_an_agent_without_superuser_makes_uses_measures_and_drops_a_database(
        store: Store, tmp_path: Path) -> None:
    dbs = tenant_dbs(store, tmp_path)
    name = dbs.database("acme")
    assert dbs.size("acme") == 0 and store.exists(name) == (False, False)  # made on first use
    dbs.run("acme", None, "CREATE TABLE t (v TEXT)", None, False)
    used = dbs.size("acme")
    dbs.run("acme", None, "INSERT INTO t SELECT repeat(md5(g::text), 8) FROM "
            "generate_series(1, 2000) g", None, False)
    assert dbs.size("acme") > used + 500_000
    who = dbs.run("acme", None, "SELECT current_user, current_database(), current_schema(), "
                  "count(*) FROM t", None, True)
    assert rows(who) == [[name, name, "public", 2000]]
    with store.superuser() as conn:
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                             (name,)).fetchone()
        attrs = conn.execute("SELECT rolsuper, rolcreatedb, rolcreaterole, rolconnlimit "
                             "FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    assert owner == (name,) and attrs == (False, False, False, DEFAULT_CONNECTIONS)

    dbs.drop("acme")
    assert store.exists(name) == (False, False) and dbs.size("acme") == 0
    again = dbs.run("acme", None, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                    None, True)
    assert rows(again) == [[0]]  # a fresh, empty database
    dbs.drop("acme")
    assert store.exists(name) == (False, False)


def test_the_connection_limit_refuses_one_more_with_a_clear_error(
        store: Store, tmp_path: Path) -> None:
    dbs = tenant_dbs(store, tmp_path, connection_limit=2)
    dbs.begin("busy", "req-1", 60)
    dbs.begin("busy", "req-2", 60)
    try:
        with store.superuser() as conn:
            limit = conn.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = %s",
                                 (dbs.role("busy"),)).fetchone()
        assert limit == (2,)
        with pytest.raises(InvalidInput, match="already has 2 connections open"):
            dbs.run("busy", None, "SELECT 1", None, True)
    finally:
        dbs.abandon("req-")
    assert rows(dbs.run("busy", None, "SELECT 1", None, True)) == [[1]]
    dbs.drop("busy")


def test_a_limit_the_tenant_set_on_its_own_database_is_repaired(
        store: Store, tmp_path: Path) -> None:
    dbs = tenant_dbs(store, tmp_path)
    name = dbs.database("selfish")
    dbs.run("selfish", None, f"ALTER DATABASE {name} CONNECTION LIMIT 0", None, False)
    assert rows(dbs.run("selfish", None, "SELECT 1", None, True)) == [[1]]
    with store.superuser() as conn:
        assert conn.execute("SELECT datconnlimit FROM pg_database WHERE datname = %s",
                            (name,)).fetchone() == (-1,)
    dbs.drop("selfish")


def test_names_say_nothing_about_the_tenant(tmp_path: Path) -> None:
    url = "postgresql+psycopg://agent@db.example/hyac"
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one, other = TenantDatabases(tmp_path / "one", url), TenantDatabases(tmp_path / "two", url)
    assert one.database("acme") == one.role("acme") == TenantDatabases(tmp_path / "one",
                                                                       url).database("acme")
    name = one.database("acme")
    assert name.startswith(one.role_prefix() + "_") and "acme" not in name and len(name) <= 63
    assert name != one.database("acme2") and name != other.database("acme")
    assert one.schema("acme") == f"public of database {name}"


def test_limits_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "sqlite:///" + str(tmp_path / "hyac.db")
    dbs = TenantDatabases(tmp_path, url)
    assert (dbs.statement_timeout, dbs.connection_limit) == (DEFAULT_STATEMENT_TIMEOUT,
                                                             DEFAULT_CONNECTIONS)
    monkeypatch.setenv("HYAC_TENANT_DB_STATEMENT_TIMEOUT", "2.5")
    monkeypatch.setenv("HYAC_TENANT_DB_CONNECTIONS", "0")
    dbs = TenantDatabases(tmp_path, url)
    assert (dbs.statement_timeout, dbs.connection_limit) == (2.5, 0)
    assert TenantDatabases(tmp_path, url, statement_timeout=7).statement_timeout == 7
    monkeypatch.setenv("HYAC_TENANT_DB_CONNECTIONS", "many")
    with pytest.raises(ValueError, match="HYAC_TENANT_DB_CONNECTIONS must be a number"):
        TenantDatabases(tmp_path, url)
    monkeypatch.setenv("HYAC_TENANT_DB_CONNECTIONS", "-1")
    with pytest.raises(ValueError, match="must not be negative"):
        TenantDatabases(tmp_path, url)
