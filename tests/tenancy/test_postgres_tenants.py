"""Tenancy on a PostgreSQL store, against a real agent: each tenant's ``context.db`` is a
database of its own reached as a role of its own; tenant A reaches nothing of tenant B's
(rows, table names, database) nor the agent's tables whatever SQL it sends; statements
are cut at the statement timeout; kv, secrets and the storage quota stay per tenant;
everything survives a restart; removing a tenant drops its database and role, and the
run leaves no database or role behind. Needs a PostgreSQL server
(``HYAC_TEST_POSTGRES_URL``, default the local one with trust auth) whose user may create
databases and roles; skipped, with the reason, if none.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hyac_agent.tenancy.tenantdb import TenantDatabases
from tests.conftest import start_agent
from tests.tenancy.conftest import Platform, agent_env

psycopg = pytest.importorskip("psycopg")
from psycopg import sql  # noqa: E402

ADMIN_URL = os.environ.get("HYAC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
#: seconds a tenant statement may run on the module's agent
STATEMENT_TIMEOUT = 3


def url_of(dbname: str, user: str | None = None, password: str | None = None) -> str:
    """ADMIN_URL for another database (and, given, another user)."""
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname
    if user is not None:
        scheme, rest = url.split("://", 1)
        url = f"{scheme}://{user}:{password or ''}@{rest.split('@', 1)[-1]}"
    return url


def create_store(owner: str | None = None) -> str:
    """A throwaway store database (skip the test if there is no server to make it on)."""
    dbname = "hyac_test_" + secrets.token_hex(4)
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)) + (
                sql.SQL(" OWNER {}").format(sql.Identifier(owner)) if owner else sql.SQL("")))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server to test on"
        pytest.skip(f"PostgreSQL tenancy NOT TESTED: no server at {ADMIN_URL}: {exc}")
    return dbname


def drop_store(dbname: str, prefix: str, roles: tuple[str, ...] = ()) -> None:
    """Drop a throwaway store database with every tenant database and role made for it
    (those are cluster-wide), then check that none is left."""
    pattern = prefix.replace("_", r"\_") + "%"
    with psycopg.connect(url_of(dbname), autocommit=True) as conn:
        tenant_roles = [r[0] for r in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (pattern,))]
        for role in tenant_roles:  # what they own or were granted in this database
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        databases = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (pattern,))]
        for name in [*databases, dbname]:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
        for role in [*tenant_roles, *roles]:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s OR datname = %s "
            "UNION ALL SELECT rolname FROM pg_roles WHERE rolname LIKE %s OR rolname = ANY(%s)",
            (pattern, dbname, pattern, list(roles))).fetchall()
    assert left == [], f"left behind: {left}"


@dataclass
class PgPlatform(Platform):
    url: str = ""
    dbname: str = ""
    home: Path = Path()

    def admin(self, dbname: str | None = None) -> Any:
        """A superuser connection to the agent's database, or another one (to look, never
        to help)."""
        return psycopg.connect(url_of(dbname or self.dbname), autocommit=True)

    def names(self) -> TenantDatabases:
        """The agent's own naming of tenant databases and roles (its key, its store)."""
        return TenantDatabases(self.home / "data", self.url)

    def restart(self) -> None:
        self.agent.kill(signal.SIGTERM)
        self.agent = start_agent(self.home / "data", "--sandbox", "bwrap", env=pg_env(self.url))


def pg_env(url: str) -> dict[str, str]:
    return {**agent_env(), "HYAC_DATABASE_URL": url,
            "HYAC_TENANT_DB_STATEMENT_TIMEOUT": str(STATEMENT_TIMEOUT)}


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgPlatform]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    dbname = create_store()
    url = "postgresql+psycopg://" + url_of(dbname).split("://", 1)[1]
    home = tmp_path_factory.mktemp("pg-tenancy")
    prefix = TenantDatabases(home, url).role_prefix()
    running = None
    try:
        running = start_agent(home / "data", "--sandbox", "bwrap", env=pg_env(url))
        platform = PgPlatform(running, url=url, dbname=dbname, home=home)
        yield platform
        running = platform.agent
    finally:
        if running is not None:
            running.kill(signal.SIGTERM)
        drop_store(dbname, prefix)


def outcome(pg: PgPlatform, tenant: str, name: str, source: str) -> dict[str, Any]:
    """Deploy and invoke; the invocation's answer (``ok``, ``error`` or ``body_b64``)."""
    answer = pg.deploy(name, source, tenant)
    assert answer.status_code in (200, 201), answer.text
    result = pg.invoke(name, tenant)
    assert result.status_code == 200, result.text
    return dict(result.json())


def run(pg: PgPlatform, tenant: str, name: str, source: str) -> Any:
    result = outcome(pg, tenant, name, source)
    assert result["ok"], result.get("error")
    return json.loads(base64.b64decode(result["body_b64"]))


ORDERS = '''
def main(context):
    db = context.db
    db.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, total NUMERIC, "
               "note TEXT, at TIMESTAMPTZ DEFAULT now(), blob BYTEA)")
    with db.transaction():
        db.execute("INSERT INTO orders (id, total, note) VALUES (%s, %s, %s)", [1, 9.5, "50% off"])
        db.execute("INSERT INTO orders (id, total, note, blob) VALUES (%(id)s, %(t)s, %(n)s, "
                   "'\\\\x00ff')", {"id": 2, "t": 20, "n": "full"})
    try:
        with db.transaction():
            db.execute("INSERT INTO orders (id, total) VALUES (%s, %s)", [3, 1])
            raise RuntimeError("undo")
    except RuntimeError:
        pass
    db.begin()
    db.execute("INSERT INTO orders (id, total) VALUES (4, 4)")
    db.rollback()
    out = {
        "rows": db.fetchall("SELECT id, total, note, blob FROM orders ORDER BY id"),
        "big": db.fetchall("SELECT id FROM orders WHERE total > %(t)s", {"t": 5}),
        "percent": db.fetchall("SELECT note FROM orders WHERE note LIKE '%off'"),
        "types": db.fetchall("SELECT sum(total) AS s, count(*) AS n, min(at) < now() AS past "
                             "FROM orders"),
        "who": db.fetchall("SELECT current_user AS u, current_schema() AS s, "
                           "current_database() AS d, current_setting('statement_timeout') AS t"),
    }
    db.begin()
    db.execute("INSERT INTO orders (id, total) VALUES (5, 5)")   # left open: rolled back
    return out
'''


def test_db_statements_placeholders_and_transactions(pg: PgPlatform) -> None:
    pg.tenant("pg-a")
    seen = run(pg, "pg-a", "orders", ORDERS)
    assert seen["rows"] == [
        {"id": 1, "total": 9.5, "note": "50% off", "blob": None},
        {"id": 2, "total": 20, "note": "full", "blob": "AP8="},
    ]
    assert seen["big"] == [{"id": 1}, {"id": 2}]
    assert seen["percent"] == [{"note": "50% off"}]
    assert seen["types"] == [{"s": 29.5, "n": 2, "past": True}]
    role = pg.names().role("pg-a")
    database = pg.names().database("pg-a")
    assert seen["who"] == [{"u": role, "s": "public", "d": database, "t": f"{STATEMENT_TIMEOUT}s"}]
    assert "pg-a" not in role and "pg-a" not in database
    again = run(pg, "pg-a", "count", "def main(context):\n"
                "    return context.db.fetchall('SELECT count(*) AS n FROM orders')\n")
    assert again == [{"n": 2}]  # the open transaction of the last call was rolled back
    with pg.admin(database) as admin:
        owner = admin.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public' "
                              "AND tablename = 'orders'").fetchone()
    with pg.admin() as admin:
        attrs = admin.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolinherit, "
                              "rolbypassrls, rolconnlimit, rolconfig FROM pg_roles "
                              "WHERE rolname = %s", (role,)).fetchone()
        members = admin.execute("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r "
                                "ON r.oid = m.member WHERE r.rolname = %s", (role,)).fetchone()
        db_owner, acl = admin.execute(
            "SELECT pg_get_userbyid(datdba), datacl::text[] FROM pg_database WHERE datname = %s",
            (database,)).fetchone()
        connect = admin.execute(
            "SELECT r.rolname FROM pg_roles r WHERE has_database_privilege(r.oid, %s, 'CONNECT') "
            "AND NOT r.rolsuper", (database,)).fetchall()
    assert owner == (role,) and db_owner == role
    assert attrs == (False, False, False, True, False, 10,
                     [f"statement_timeout={STATEMENT_TIMEOUT * 1000}"]), attrs
    assert members == (0,)
    assert not any(entry.startswith("=") for entry in acl), acl  # nothing for PUBLIC
    assert connect == [(role,)]  # no other ordinary role may connect


B_WRITER = '''
def main(context):
    context.kv.set("shared-name", "b-kv-value")
    context.db.execute("CREATE TABLE IF NOT EXISTS private (v TEXT)")
    context.db.execute("INSERT INTO private VALUES (%s)", ["b-row-value"])
    context.db.execute("CREATE VIEW private_view AS SELECT v FROM private")
    return {"ok": True}
'''

#: (name, statements) run by tenant A; the last one's result or error is reported
ATTACKS: list[tuple[str, list[str]]] = [
    ("unqualified_read", ["SELECT * FROM private"]),
    ("cross_database_read", ["SELECT * FROM {db_b}.public.private"]),
    ("cross_database_view", ["SELECT * FROM {db_b}.public.private_view"]),
    ("cross_database_write", ["INSERT INTO {db_b}.public.private VALUES ('from-a')"]),
    ("cross_database_drop", ["DROP TABLE {db_b}.public.private"]),
    ("legacy_schema_read", ['SELECT * FROM "hyac_t_pg-b".private']),
    ("set_role_b", ["SET ROLE {role_b}"]),
    ("set_role_postgres", ["SET ROLE postgres"]),
    ("reset_role", ["RESET ROLE", "SELECT * FROM {db_b}.public.private"]),
    ("session_authorization", ["SET SESSION AUTHORIZATION postgres"]),
    ("grant_self", ["GRANT {role_b} TO CURRENT_USER"]),
    ("alter_self_superuser", ["ALTER ROLE CURRENT_USER SUPERUSER"]),
    ("alter_self_connection_limit", ["ALTER ROLE CURRENT_USER CONNECTION LIMIT -1"]),
    ("create_role", ["CREATE ROLE hyac_evil LOGIN"]),
    ("create_superuser", ["CREATE ROLE hyac_evil LOGIN SUPERUSER"]),
    ("agent_kv", ["SELECT * FROM public.kv"]),
    ("agent_secrets", ["SELECT * FROM public.tenant_secrets"]),
    ("agent_tokens", ["UPDATE public.tokens SET expires_at = NULL"]),
    ("pg_read_file", ["SELECT pg_read_file('/etc/passwd')"]),
    ("pg_ls_dir", ["SELECT pg_ls_dir('.')"]),
    ("lo_import", ["SELECT lo_import('/etc/passwd')"]),
    ("copy_program", ["COPY (SELECT 1) TO PROGRAM 'id'"]),
    ("copy_file", ["COPY (SELECT 1) TO '/tmp/hyac-copy'"]),
    ("create_extension", ["CREATE EXTENSION dblink"]),
    ("create_fdw", ["CREATE EXTENSION postgres_fdw"]),
    ("dblink", ["SELECT * FROM dblink('dbname={db_b}', 'SELECT v FROM private') AS t(v text)"]),
    ("create_database", ["CREATE DATABASE hyac_evil"]),
    ("size_of_b", ["SELECT pg_database_size('{db_b}')"]),
    ("grant_connect_b", ["GRANT CONNECT ON DATABASE {db_b} TO CURRENT_USER"]),
    ("alter_database_b", ["ALTER DATABASE {db_b} CONNECTION LIMIT 0"]),
    ("drop_database_b", ["DROP DATABASE {db_b}"]),
    # allowed: they only touch A's own database
    ("plant_in_public", ["CREATE TABLE public.planted (v TEXT)"]),
    ("plant_function", ["CREATE FUNCTION public.lower(varchar) RETURNS text LANGUAGE sql "
                        "AS 'SELECT 1::text'"]),
    ("information_schema", ["SELECT table_schema, table_name FROM information_schema.tables "
                            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"]),
    ("schemata", ["SELECT schema_name FROM information_schema.schemata"]),
    ("pg_stats", ["SELECT tablename FROM pg_stats WHERE schemaname = 'public'"]),
]
#: what A may do in its own database (rolled back anyway)
OWN_DATABASE = {"plant_in_public", "plant_function", "information_schema", "schemata", "pg_stats"}

PROBE = '''
import json

ATTACKS = json.loads(%r)

def main(context):
    out = {}
    for name, statements in ATTACKS:
        alone = statements[0].startswith(("CREATE DATABASE", "DROP DATABASE"))  # no BEGIN
        if not alone:
            context.db.begin()
        try:
            result = None
            for sql in statements:
                result = context.db.fetchall(sql) if sql.lstrip().upper().startswith(
                    ("SELECT", "UPDATE")) else context.db.execute(sql)
            out[name] = {"value": result}
        except Exception as exc:
            out[name] = {"error": type(exc).__name__ + ": " + str(exc)}
        finally:
            if not alone:
                context.db.rollback()
    out["kv_get"] = context.kv.get("shared-name")
    out["kv_list"] = context.kv.list("")
    out["secret_names"] = list(context.secrets)
    out["secret_in"] = "B_SECRET" in context.secrets
    return out
'''


def test_tenant_reaches_nothing_of_another(pg: PgPlatform) -> None:
    pg.tenant("pg-a")
    pg.tenant("pg-b")
    assert run(pg, "pg-b", "writer", B_WRITER) == {"ok": True}
    with pg.owner("pg-b") as client:
        answer = client.put("/v1/secrets/B_SECRET", json={"value": "bobs-secret-value"})
        assert answer.status_code == 204, answer.text
    role_b, db_b = pg.names().role("pg-b"), pg.names().database("pg-b")
    attacks = [(name, [s.format(role_b=role_b, db_b=db_b) for s in statements])
               for name, statements in ATTACKS]
    seen = run(pg, "pg-a", "probe", PROBE % json.dumps(attacks))
    assert isinstance(seen, dict)
    text = json.dumps(seen)
    assert "b-row-value" not in text and "b-kv-value" not in text and "bobs-secret" not in text
    for name, _ in ATTACKS:
        if name in OWN_DATABASE:
            assert "value" in seen[name], (name, seen[name])
        else:
            assert "error" in seen[name], (name, seen[name])
            assert "HostCallError" in seen[name]["error"], (name, seen[name])
    tables = {(row["table_schema"], row["table_name"]) for row in seen["information_schema"]["value"]}
    assert tables <= {("public", "orders")}, tables  # A's own, from an earlier test
    assert {row["schema_name"] for row in seen["schemata"]["value"]} == {
        "public", "pg_catalog", "information_schema"}
    assert seen["pg_stats"] == {"value": []}
    assert "relation \"private\" does not exist" in seen["unqualified_read"]["error"]
    for name in ("cross_database_read", "cross_database_write", "reset_role"):
        assert "cross-database references are not implemented" in seen[name]["error"], name
    assert "relation \"hyac_t_pg-b.private\" does not exist" in seen["legacy_schema_read"]["error"]
    assert f'permission denied to set role "{role_b}"' in seen["set_role_b"]["error"]
    assert 'permission denied to set role "postgres"' in seen["set_role_postgres"]["error"]
    assert "permission denied for function pg_read_file" in seen["pg_read_file"]["error"]
    assert "permission denied" in seen["create_extension"]["error"]
    assert "permission denied" in seen["create_fdw"]["error"]
    assert "permission denied to create role" in seen["create_role"]["error"]
    assert "permission denied to create database" in seen["create_database"]["error"]
    assert "function dblink(unknown, unknown) does not exist" in seen["dblink"]["error"]
    assert f"permission denied for database {db_b}" in seen["size_of_b"]["error"]
    assert "must be owner of database" in seen["drop_database_b"]["error"]
    assert seen["kv_get"] is None and seen["kv_list"] == []
    assert seen["secret_names"] == [] and seen["secret_in"] is False
    with pg.admin(db_b) as admin:  # B's data as it was
        assert admin.execute("SELECT v FROM private").fetchall() == [("b-row-value",)]
        assert admin.execute("SELECT count(*) FROM pg_class WHERE relname = 'planted'"
                             ).fetchone() == (0,)
    with pg.admin() as admin:  # nothing planted in the agent's database or the cluster
        planted = admin.execute("SELECT count(*) FROM pg_class WHERE relname = 'planted'").fetchone()
        evil = admin.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'hyac_evil'").fetchone()
        functions = admin.execute("SELECT count(*) FROM pg_proc p JOIN pg_namespace n "
                                  "ON n.oid = p.pronamespace WHERE n.nspname = 'public' "
                                      "AND p.proname <> 'hyac_note_change'").fetchone()
        b_database = admin.execute("SELECT datconnlimit FROM pg_database WHERE datname = %s",
                                   (db_b,)).fetchone()
    assert planted == (0,) and evil == (0,) and functions == (0,) and b_database == (-1,)
    # and B still has its own
    mine = run(pg, "pg-b", "mine", "def main(context):\n    return [context.kv.get('shared-name'), "
               "context.secrets['B_SECRET'] == 'bobs-secret-value', "
               "context.db.fetchall('SELECT v FROM private')]\n")
    assert mine == ["b-kv-value", True, [{"v": "b-row-value"}]]


CATALOGS = """
def main(context):
    db = context.db
    return {
        "pg_tables": db.fetchall("SELECT schemaname, tablename FROM pg_tables"),
        "pg_class": db.fetchall("SELECT relname FROM pg_class"),
        "pg_namespace": db.fetchall("SELECT nspname FROM pg_namespace"),
        "columns": db.fetchall("SELECT table_name, column_name FROM information_schema.columns"),
        "pg_attribute": db.fetchall("SELECT attname FROM pg_attribute"),
        "pg_database": db.fetchall("SELECT datname FROM pg_database"),
        "pg_roles": db.fetchall("SELECT rolname FROM pg_roles"),
        "activity": db.fetchall("SELECT datname, usename, query FROM pg_stat_activity"),
    }
"""


def test_catalogs_hide_other_tenants_table_names(pg: PgPlatform) -> None:
    pg.tenant("pg-a")
    pg.tenant("pg-b")
    run(pg, "pg-b", "mk", "def main(context):\n"
        "    context.db.execute('CREATE TABLE IF NOT EXISTS b_secret_table_name "
        "(b_secret_column TEXT)')\n"
        "    return 1\n")
    seen = run(pg, "pg-a", "cat", CATALOGS)
    text = json.dumps(seen)
    assert "b_secret_table_name" not in text and "b_secret_column" not in text
    assert "pg-a" not in text and "pg-b" not in text  # no tenant is named anywhere
    assert {"relname": "b_secret_table_name"} not in seen["pg_class"]
    assert {row["nspname"] for row in seen["pg_namespace"]} == {
        "public", "pg_catalog", "pg_toast", "information_schema"}
    tables = {(row["schemaname"], row["tablename"]) for row in seen["pg_tables"]
              if row["schemaname"] not in ("pg_catalog", "information_schema")}
    assert tables <= {("public", "orders")}, tables  # A's own, from an earlier test
    with pg.admin() as admin:  # B's table is there, under a name the catalogs never show
        assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                             (pg.names().database("pg-b"),)).fetchone() == (1,)


def test_another_tenants_database_refuses_the_tenants_credentials(pg: PgPlatform) -> None:
    """Even with A's role and password in hand (never in a sandbox), B's database refuses."""
    pg.tenant("pg-a")
    pg.tenant("pg-b")
    for tenant in ("pg-a", "pg-b"):  # both databases exist
        run(pg, tenant, "touch", "def main(context):\n    return context.db.execute('SELECT 1')\n")
    names = pg.names()
    role_a, db_a, db_b = names.role("pg-a"), names.database("pg-a"), names.database("pg-b")
    password_a = names._pg_password(role_a)
    with psycopg.connect(url_of(db_a, role_a, password_a)) as mine:
        assert mine.execute("SELECT current_database()").fetchone() == (db_a,)
    with pytest.raises(psycopg.OperationalError, match=f"permission denied for database \"?{db_b}"):
        psycopg.connect(url_of(db_b, role_a, password_a))
    role_b = names.role("pg-b")
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(url_of(db_a, role_b, names._pg_password(role_b)))


TIMEOUTS = """
import time
from hyac_context import HostCallError

def attempt(call):
    started = time.monotonic()
    try:
        call()
        outcome = {"ok": True}
    except HostCallError as exc:
        outcome = {"code": exc.code, "message": exc.message}
    outcome["seconds"] = time.monotonic() - started
    return outcome

def in_transaction(db):
    with db.transaction():
        db.execute("SET LOCAL statement_timeout = 0")
        db.fetchall("SELECT pg_sleep(30)")

def main(context):
    db = context.db
    db.execute("ALTER ROLE CURRENT_USER SET statement_timeout = 0")
    db.execute("ALTER DATABASE " + db.fetchall("SELECT current_database() AS d")[0]["d"]
               + " SET statement_timeout = 0")
    return {
        "setting": db.fetchall("SELECT current_setting('statement_timeout') AS t")[0]["t"],
        "plain": attempt(lambda: db.fetchall("SELECT pg_sleep(30)")),
        "set_off": attempt(lambda: db.fetchall("SET statement_timeout = 0; SELECT pg_sleep(30)")),
        "transaction": attempt(lambda: in_transaction(db)),
        "after": db.fetchall("SELECT 1 AS one"),
        "short": attempt(lambda: db.fetchall("SELECT pg_sleep(0.2)")),
    }
"""


def test_statement_timeout_cancels_a_long_statement(pg: PgPlatform) -> None:
    pg.tenant("pg-t")
    seen = run(pg, "pg-t", "sleepy", TIMEOUTS)
    # the agent's value wins over the defaults the tenant set on its role and database
    assert seen["setting"] == f"{STATEMENT_TIMEOUT}s"
    plain = seen["plain"]
    assert plain["code"] == "db_error", plain
    assert "canceling statement due to statement timeout" in plain["message"], plain
    assert f"a statement may run {STATEMENT_TIMEOUT} s at most" in plain["message"], plain
    assert STATEMENT_TIMEOUT - 0.5 < plain["seconds"] < STATEMENT_TIMEOUT + 2, plain
    for name in ("set_off", "transaction"):  # SET away: the agent cancels it itself
        cut = seen[name]
        assert cut["code"] == "db_error", (name, cut)
        assert (f"statement cancelled: it ran longer than {STATEMENT_TIMEOUT} s"
                in cut["message"]), (name, cut)
        assert STATEMENT_TIMEOUT < cut["seconds"] < STATEMENT_TIMEOUT + 4, (name, cut)
    assert seen["after"] == [{"one": 1}]
    assert seen["short"]["ok"] is True
    with pg.admin() as admin:  # nothing of it still running on the server
        running = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s "
                                "AND state = 'active'", (pg.names().role("pg-t"),)).fetchone()
    assert running == (0,)


def test_storage_quota_counts_the_database(pg: PgPlatform) -> None:
    pg.tenant("pg-q")
    run(pg, "pg-q", "mk", "def main(context):\n"
        "    return context.db.execute('CREATE TABLE IF NOT EXISTS fill (v TEXT)')\n")
    with pg.owner("pg-q") as owner:  # a database in use already weighs something
        empty = owner.get("/v1/quotas").json()["quotas"]["storage"]["use"]
        limit = empty + 150_000
        assert owner.put("/v1/quotas", json={"values": {"storage": limit}}).status_code == 200
    with pg.admin() as admin:
        real = admin.execute("SELECT pg_database_size(%s) - pg_database_size('template0')",
                             (pg.names().database("pg-q"),)).fetchone()
    assert real is not None and 0 < empty <= real[0] + 100_000 and empty < 1_000_000
    fill = '''
from hyac_context import HostCallError
def main(context):
    try:
        for i in range(50):
            context.db.execute("INSERT INTO fill SELECT md5(g::text) || md5((g + 1)::text) "
                               "FROM generate_series(1, 200) g")
    except HostCallError as exc:
        left = context.db.fetchall("SELECT count(*) AS n FROM fill")[0]["n"]
        context.db.execute("DELETE FROM fill")  # write-free: allowed when full
        return {"stopped_at": i, "code": exc.code, "message": exc.message, "rows": left}
    return {"stopped_at": None}
'''
    result = run(pg, "pg-q", "fill", fill)
    assert isinstance(result, dict)
    assert result["code"] == "quota_exceeded" and "storage" in result["message"], result
    assert 3 <= result["stopped_at"] <= 20 and result["rows"] == 200 * result["stopped_at"]
    with pg.owner("pg-q") as owner:
        shown = owner.get("/v1/quotas").json()["quotas"]["storage"]
    assert shown["limit"] == limit and empty + 50_000 < shown["use"]


def test_state_survives_a_restart_and_tenant_removal_drops_database_and_role(
        pg: PgPlatform) -> None:
    pg.tenant("pg-r")
    run(pg, "pg-r", "put", "def main(context):\n"
        "    context.db.execute('CREATE TABLE IF NOT EXISTS kept (v TEXT)')\n"
        "    context.db.execute('INSERT INTO kept VALUES (%s)', ['before'])\n"
        "    context.kv.set('k', 'kv-before')\n    return 1\n")
    with pg.owner("pg-r") as client:
        assert client.put("/v1/secrets/R_SECRET", json={"value": "r-secret"}).status_code == 204
        assert client.put("/v1/quotas", json={"values": {"storage": "10Mi"}}).status_code == 200
    pg.restart()
    with pg.owner("pg-r") as client:  # before any function runs: the database is counted
        assert client.get("/v1/quotas").json()["quotas"]["storage"]["use"] > 8000
    after = run(pg, "pg-r", "get", "def main(context):\n    return [\n"
                "        context.db.fetchall('SELECT v FROM kept'), context.kv.get('k'),\n"
                "        context.secrets['R_SECRET'],\n"
                "        context.db.fetchall(\"SELECT current_schema() AS s\")[0]['s']]\n")
    assert after == [[{"v": "before"}], "kv-before", "r-secret", "public"]

    name = pg.names().database("pg-r")  # the role's name too
    with pg.admin() as admin:
        assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    pg.restart()  # a fresh process that has not used pg-r yet removes it
    with pg.owner() as owner:
        assert owner.delete("/v1/tenants/pg-r").status_code in (200, 204)
    with pg.admin() as admin:
        database = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        left = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    assert database is None and left is None
