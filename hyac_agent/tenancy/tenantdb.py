"""Each tenant's own SQL database, reached by functions through ``db.*`` host calls.

Embedded default: one SQLite file per tenant, ``DATA_DIR/tenants/NAME/db.sqlite3``. An
authorizer refuses ``ATTACH``/``DETACH`` (and so ``VACUUM INTO``), and every ``PRAGMA``
but a few read-only ones, so SQL from a function cannot open another file. Extensions
cannot be loaded (the agent never enables them).

With a PostgreSQL store: one schema per tenant, owned by a role of its own
(``hyac_t_NAME``, no other privileges); the tenant's SQL runs on a connection logged in
as that role with ``search_path`` set to its schema, so it can neither read another
schema nor the agent's tables. The agent's database user needs CREATEROLE.

A transaction (``db.begin``) holds one connection for the request that opened it until
``db.commit``/``db.rollback``, or until that request ends (then it is rolled back).
"""

from __future__ import annotations

import base64
import re
import shutil
import sqlite3
import threading
import time
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
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    return value


class _Txn:
    def __init__(self, conn: Any, tenant: str, deadline: float) -> None:
        self.conn = conn
        self.tenant = tenant
        self.deadline = deadline
        self.lock = threading.Lock()


class TenantDatabases:
    def __init__(self, data_dir: Path, store_url: str) -> None:
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
        return "hyac_t_" + tenant.replace("-", "_")

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

        name = self.schema(tenant)
        with psycopg.connect(self._pg_admin_url(), autocommit=True) as admin:
            exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            if not exists:
                admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOINHERIT").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                sql.Identifier(name), sql.Identifier(name)))
        self._prepared.add(tenant)

    def _pg_connect(self, tenant: str) -> Any:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        self._pg_prepare(tenant)
        name = self.schema(tenant)
        info = conninfo_to_dict(self._pg_admin_url())
        info.update(user=name, options=f"-c search_path={name}")
        info.pop("password", None)
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
            if tenant not in self._prepared:
                return 0
            import psycopg

            with psycopg.connect(self._pg_admin_url()) as admin:
                row = admin.execute(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
                    "AND c.relkind = 'r'", (self.schema(tenant),),
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
        if self.postgres and tenant in self._prepared:
            import psycopg
            from psycopg import sql

            name = self.schema(tenant)
            with psycopg.connect(self._pg_admin_url(), autocommit=True) as admin:
                admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
            self._prepared.discard(tenant)
        shutil.rmtree(self.tenant_dir(tenant), ignore_errors=True)
