"""Each tenant's own SQL database, reached by functions through ``db.*`` host calls.

Embedded default: one SQLite file per tenant, ``DATA_DIR/tenants/NAME/db.sqlite3``. An
authorizer refuses ``ATTACH``/``DETACH`` (and so ``VACUUM INTO``), and every ``PRAGMA``
but a few read-only ones, so SQL from a function cannot open another file. Extensions
cannot be loaded (the agent never enables them).

With a PostgreSQL store: one schema per tenant (``hyac_t_NAME``), owned by a role of its
own (``hyac_<8 hex of the database name>_NAME``: roles are cluster-wide, so two agents
on two databases of one server never share one; no other privileges, NOINHERIT). The
tenant's SQL runs on a connection *logged in* as that role (not ``SET ROLE``, which
``RESET ROLE`` would undo) with ``search_path`` set to its schema, so it can neither read
another tenant's schema nor the agent's tables. The role's password is an HMAC of the
tenant under ``DATA_DIR/secrets.key`` (agents sharing a database share that key anyway),
set again the first time an agent process uses the tenant. The agent's database user
needs CREATEROLE (and to own the database, or be superuser). Names longer than
PostgreSQL's 63 bytes are shortened with a hash, never truncated into another's.

Not hidden on PostgreSQL: the system catalogs are readable by every role, so a tenant
can see other tenants' schema, table and column *names* (``pg_class``, ``pg_tables``,
``oid::regclass``) and role names, never their rows; ``information_schema`` lists only
what the tenant may use.

A transaction (``db.begin``) holds one connection for the request that opened it until
``db.commit``/``db.rollback``, or until that request ends (then it is rolled back).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import hashlib
import hmac
import re
import shutil
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from hyac_common.errors import Conflict, InvalidInput

MAX_ROWS = 10_000
MAX_SQL = 100_000
_SAFE_PRAGMAS = {"table_info", "table_xinfo", "table_list", "index_list", "index_info",
                 "foreign_key_list", "user_version"}
_WRITE_FREE = re.compile(r"^\s*(select|delete|drop|with|explain|pragma)\b", re.I)


def _authorizer(action: int, arg1: str | None, arg2: str | None, _db: str | None,
                _trigger: str | None) -> int:
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() not in _SAFE_PRAGMAS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() == "load_extension":
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def is_write_free(sql: str) -> bool:
    """Whether a statement cannot grow the database (used once storage is full)."""
    return bool(_WRITE_FREE.match(sql))


def _check(sql: Any, params: Any) -> tuple[str, Any]:
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidInput("db: sql must be a non-empty string")
    if len(sql) > MAX_SQL:
        raise InvalidInput(f"db: sql is longer than {MAX_SQL} characters")
    if params is None:
        params = []
    if not isinstance(params, (list, dict)):
        raise InvalidInput("db: params must be a list (positional) or an object (named)")
    return sql, params


def _value(value: Any) -> Any:
    """A column value as JSON can carry it (PostgreSQL returns richer types than SQLite)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_value(v) for v in value]
    return value


_PG_MAX_IDENT = 63


def pg_ident(prefix: str, name: str) -> str:
    """``prefix + name`` as a PostgreSQL identifier of at most 63 bytes, one per name.

    Tenant names are ``[a-z0-9_-]``; a long one is cut and followed by ``~`` and a hash
    (``~`` never occurs in a name), so two tenants never share a schema or a role."""
    ident = prefix + name
    if len(ident) <= _PG_MAX_IDENT:
        return ident
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return prefix + name[: _PG_MAX_IDENT - len(prefix) - 13] + "~" + digest


class _Txn:
    def __init__(self, conn: Any, tenant: str, deadline: float) -> None:
        self.conn = conn
        self.tenant = tenant
        self.deadline = deadline
        self.lock = threading.Lock()


class TenantDatabases:
    def __init__(self, data_dir: Path, store_url: str) -> None:
        self.data_dir = data_dir
        self.root = data_dir / "tenants"
        self.store_url = store_url
        self.postgres = store_url.startswith("postgresql")
        self._txns: dict[str, _Txn] = {}
        self._lock = threading.Lock()
        self._prepared: set[str] = set()

    # locations ------------------------------------------------------------------------

    def tenant_dir(self, tenant: str) -> Path:
        return self.root / tenant

    def sqlite_path(self, tenant: str) -> Path:
        return self.tenant_dir(tenant) / "db.sqlite3"

    @staticmethod
    def schema(tenant: str) -> str:
        return pg_ident("hyac_t_", tenant)

    def role_prefix(self) -> str:
        """What every tenant role of this agent's database starts with."""
        from psycopg.conninfo import conninfo_to_dict

        dbname = str(conninfo_to_dict(self._pg_admin_url()).get("dbname") or "")
        return "hyac_" + hashlib.sha256(dbname.encode()).hexdigest()[:8] + "_"

    def role(self, tenant: str) -> str:
        return pg_ident(self.role_prefix(), tenant)

    def _pg_password(self, role: str) -> str:
        from hyac_agent.tenancy.secrets import load_or_create_key

        key = load_or_create_key(self.data_dir)
        return hmac.new(key, b"hyac-tenant-db:" + role.encode(), hashlib.sha256).hexdigest()

    # connections ----------------------------------------------------------------------

    def _connect(self, tenant: str) -> Any:
        if self.postgres:
            return self._pg_connect(tenant)
        path = self.sqlite_path(tenant)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(str(path), timeout=10, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.set_authorizer(_authorizer)
        return conn

    def _pg_admin_url(self) -> str:
        return self.store_url.replace("postgresql+psycopg://", "postgresql://", 1)

    def _pg_prepare(self, tenant: str) -> None:
        if tenant in self._prepared:
            return
        import psycopg
        from psycopg import sql

        role, schema = self.role(tenant), self.schema(tenant)
        r, n = sql.Identifier(role), sql.Identifier(schema)
        password = sql.Literal(self._pg_password(role))
        with psycopg.connect(self._pg_admin_url(), autocommit=True) as admin:
            exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            if not exists:
                admin.execute(sql.SQL(
                    "CREATE ROLE {} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE "
                    "NOREPLICATION NOBYPASSRLS PASSWORD {}").format(r, password))
            else:
                admin.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(r, password))
            superuser = admin.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
            if not (superuser and superuser[0]):
                # CREATE SCHEMA ... AUTHORIZATION, DROP OWNED: the agent must be a member
                admin.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(r))
            admin.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(n, r))
            admin.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(n, r))
            allowed = admin.execute(
                "SELECT has_database_privilege(%s, current_database(), 'CONNECT'), "
                "has_schema_privilege(%s, 'public', 'CREATE')", (role, role)).fetchone()
            if allowed and not allowed[0]:
                admin.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(admin.info.dbname), r))
            if allowed and allowed[1]:
                # PostgreSQL < 15: PUBLIC may create in "public"; a tenant must not
                # (a table there would be seen by every tenant, a function by the agent)
                admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        self._prepared.add(tenant)

    def _pg_connect(self, tenant: str) -> Any:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        self._pg_prepare(tenant)
        role, schema = self.role(tenant), self.schema(tenant)
        info = conninfo_to_dict(self._pg_admin_url())
        for key in ("user", "password", "passfile", "options", "service"):
            info.pop(key, None)
        quoted = '"' + schema.replace('"', '""') + '"'
        info.update(user=role, password=self._pg_password(role),
                    options="-c search_path=" + quoted.replace("\\", "\\\\").replace(" ", "\\ "))
        return psycopg.connect(make_conninfo("", **info), autocommit=True)

    # operations -----------------------------------------------------------------------

    def run(self, tenant: str, owner: str | None, sql: Any, params: Any, fetch: bool) -> Any:
        """Run one statement, in the open transaction of ``owner`` if it has one."""
        sql, params = _check(sql, params)
        txn = self._txns.get(owner) if owner else None
        if txn is not None and txn.tenant != tenant:  # never: owners are per worker
            raise InvalidInput("db: transaction belongs to another tenant")
        if txn is not None:
            with txn.lock:
                return self._statement(txn.conn, sql, params, fetch)
        conn = self._connect(tenant)
        try:
            return self._statement(conn, sql, params, fetch)
        finally:
            conn.close()

    def _statement(self, conn: Any, sql: str, params: Any, fetch: bool) -> Any:
        if self.postgres and not params:
            params = None  # else psycopg reads every "%" as a placeholder ("LIKE 'a%'")
        try:
            cursor = conn.execute(sql, params)
            if not fetch:
                return cursor.rowcount
            columns = [d[0] for d in cursor.description or ()]
            rows = cursor.fetchmany(MAX_ROWS + 1)
        except sqlite3.DatabaseError as exc:
            raise InvalidInput(f"db: {exc}", code="db_error") from None
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise InvalidInput(f"db: {exc}".strip(), code="db_error") from None
            raise
        if len(rows) > MAX_ROWS:
            raise InvalidInput(f"db: more than {MAX_ROWS} rows; add a LIMIT", code="db_error")
        return {"columns": columns, "rows": [[_value(v) for v in row] for row in rows]}

    def begin(self, tenant: str, owner: str, timeout: float) -> None:
        with self._lock:
            if owner in self._txns:
                raise Conflict("db: a transaction is already open for this request")
        conn = self._connect(tenant)
        try:
            conn.execute("BEGIN IMMEDIATE" if not self.postgres else "BEGIN")
        except Exception as exc:
            conn.close()
            raise InvalidInput(f"db: cannot begin: {exc}", code="db_error") from None
        with self._lock:
            self._txns[owner] = _Txn(conn, tenant, time.monotonic() + timeout)

    def finish(self, owner: str, commit: bool) -> bool:
        with self._lock:
            txn = self._txns.pop(owner, None)
        if txn is None:
            return False
        with txn.lock:
            try:
                txn.conn.execute("COMMIT" if commit else "ROLLBACK")
            except Exception as exc:
                if commit:
                    raise InvalidInput(f"db: commit failed: {exc}", code="db_error") from None
            finally:
                txn.conn.close()
        return True

    def in_transaction(self, owner: str) -> bool:
        return owner in self._txns

    def abandon(self, prefix: str) -> None:
        """Roll back every transaction whose owner starts with ``prefix``."""
        for owner in [o for o in list(self._txns) if o.startswith(prefix)]:
            self.finish(owner, commit=False)

    def expire(self) -> None:
        now = time.monotonic()
        for owner, txn in list(self._txns.items()):
            if txn.deadline < now:
                self.finish(owner, commit=False)

    # size and removal -----------------------------------------------------------------

    def size(self, tenant: str) -> int:
        if self.postgres:
            # not only for tenants this process has used: after a restart the schema is
            # still there (tables and materialized views, with their indexes and TOAST)
            import psycopg

            with psycopg.connect(self._pg_admin_url(), autocommit=True) as admin:
                row = admin.execute(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
                    "AND c.relkind IN ('r', 'm', 'p')", (self.schema(tenant),),
                ).fetchone()
            return int(row[0]) if row else 0
        total = 0
        for suffix in ("", "-wal"):
            path = Path(str(self.sqlite_path(tenant)) + suffix)
            if path.exists():
                total += path.stat().st_size
        objects = self.tenant_dir(tenant) / "objects"
        if objects.is_dir():
            total += sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())
        return total

    def drop(self, tenant: str) -> None:
        for owner, txn in list(self._txns.items()):
            if txn.tenant == tenant:
                self.finish(owner, commit=False)
        if self.postgres:  # also a tenant this process never used (made before a restart)
            import psycopg
            from psycopg import sql

            role = self.role(tenant)
            with psycopg.connect(self._pg_admin_url(), autocommit=True) as admin:
                admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(self.schema(tenant))))
                if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    # what it owns or was granted here (objects outside its schema, CONNECT)
                    admin.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
                    admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            self._prepared.discard(tenant)
        shutil.rmtree(self.tenant_dir(tenant), ignore_errors=True)
