"""What every dialect of tenant databases shares: the checks on a statement, values as
JSON, the limits, and the transactions of requests.

``TenantDatabases(data_dir, store_url)`` gives the dialect of the store: PostgreSQL for a
``postgresql`` URL (:mod:`.postgres`), else SQLite (:mod:`.sqlite`). A dialect says how to
connect, how to run one statement held to a size, how big a tenant's database is and how
to drop it; the rest is here.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import logging
import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from hyac_common.errors import Conflict, DatabaseError, InvalidInput
from hyac_common.wire import DEFAULT_TIMEOUT

log = logging.getLogger("hyac.tenantdb")

MAX_ROWS = 10_000
MAX_SQL = 100_000
#: connections a tenant may hold at once on PostgreSQL, and seconds a statement may run
DEFAULT_CONNECTIONS = 10
DEFAULT_STATEMENT_TIMEOUT = DEFAULT_TIMEOUT
_WRITE_FREE = re.compile(r"^\s*(select|delete|drop|with|explain|pragma)\b", re.I)


def is_write_free(sql: str) -> bool:
    """Whether a statement cannot grow the database (used once storage is full)."""
    return bool(_WRITE_FREE.match(sql))


def check_statement(sql: Any, params: Any) -> tuple[str, Any]:
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidInput("db: sql must be a non-empty string")
    if len(sql) > MAX_SQL:
        raise InvalidInput(f"db: sql is longer than {MAX_SQL} characters")
    if params is None:
        params = []
    if not isinstance(params, (list, dict)):
        raise InvalidInput("db: params must be a list (positional) or an object (named)")
    return sql, params


def json_value(value: Any) -> Any:
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
        return [json_value(v) for v in value]
    return value


def read_cursor(cursor: Any, fetch: bool) -> Any:
    """What a statement gave, read while the dialect still maps its errors: the row count,
    or the columns and at most one row more than MAX_ROWS."""
    if not fetch:
        return cursor.rowcount
    return [d[0] for d in cursor.description or ()], cursor.fetchmany(MAX_ROWS + 1)


def as_result(read: Any) -> Any:
    """What :func:`read_cursor` read, as the host call answers it."""
    if isinstance(read, int):
        return read
    columns, rows = read
    if len(rows) > MAX_ROWS:
        raise DatabaseError(f"db: more than {MAX_ROWS} rows; add a LIMIT")
    return {"columns": columns, "rows": [[json_value(v) for v in row] for row in rows]}


def _setting(value: float | None, env: str, default: float) -> float:
    """A limit given to the constructor, else from the environment, else the default."""
    if value is None:
        raw = os.environ.get(env, "").strip()
        try:
            value = float(raw) if raw else default
        except ValueError:
            raise ValueError(f"{env} must be a number, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"{env} must not be negative (0 means no limit)")
    return value


class DatabaseFull(Exception):
    """A statement would have grown the tenant's database past the room the storage
    quota leaves it; nothing of it was written."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the database would hold {size} bytes")
        self.size = size


class _Txn:
    def __init__(self, conn: Any, tenant: str, deadline: float) -> None:
        self.conn = conn
        self.tenant = tenant
        self.deadline = deadline
        self.lock = threading.Lock()


class TenantDatabases:
    """Each tenant's SQL database; constructed, the dialect the store URL names."""

    #: whether the tenant databases are PostgreSQL databases
    postgres = False
    #: what opens a request's transaction
    begin_statement = "BEGIN"

    def __new__(cls, data_dir: Path, store_url: str, statement_timeout: float | None = None,
                connection_limit: int | None = None) -> TenantDatabases:
        dialect: type[TenantDatabases] = cls
        if cls is TenantDatabases:  # (imported here: each dialect module imports this one)
            if store_url.startswith("postgresql"):
                from hyac_agent.tenancy.tenantdb.postgres import PostgresTenantDatabases

                dialect = PostgresTenantDatabases
            else:
                from hyac_agent.tenancy.tenantdb.sqlite import SQLiteTenantDatabases

                dialect = SQLiteTenantDatabases
        return object.__new__(dialect)

    def __init__(self, data_dir: Path, store_url: str, statement_timeout: float | None = None,
                 connection_limit: int | None = None) -> None:
        self.data_dir = data_dir
        self.root = data_dir / "tenants"
        self.store_url = store_url
        #: seconds a statement may run; connections a tenant may hold (PostgreSQL only)
        #: (0: no limit)
        self.statement_timeout = _setting(statement_timeout, "HYAC_TENANT_DB_STATEMENT_TIMEOUT",
                                          DEFAULT_STATEMENT_TIMEOUT)
        self.connection_limit = int(_setting(connection_limit, "HYAC_TENANT_DB_CONNECTIONS",
                                             DEFAULT_CONNECTIONS))
        self._txns: dict[str, _Txn] = {}
        self._lock = threading.Lock()

    # locations ------------------------------------------------------------------------

    def tenant_dir(self, tenant: str) -> Path:
        """The tenant's directory on this host (removed with the tenant in every dialect)."""
        return self.root / tenant

    def sqlite_path(self, tenant: str) -> Path:
        """Where the SQLite dialect keeps the tenant's database."""
        return self.tenant_dir(tenant) / "db.sqlite3"

    def database(self, tenant: str) -> str:
        """The tenant's database as an operator finds it."""
        raise NotImplementedError

    # what a dialect provides ----------------------------------------------------------

    def _connect(self, tenant: str) -> Any:
        """A new connection to the tenant's database, in autocommit mode."""
        raise NotImplementedError

    def _limited(self, conn: Any, sql: str, params: Any, fetch: bool, room: int | None,
                 in_txn: bool) -> Any:
        """Run one statement on ``conn`` letting the database grow to ``room`` bytes at
        most (None: no limit), else DatabaseFull with nothing of it written."""
        raise NotImplementedError

    def size(self, tenant: str) -> int:
        """The bytes the tenant's database counts towards its storage quota."""
        raise NotImplementedError

    def _drop_database(self, tenant: str) -> None:
        """Remove what the dialect keeps of the tenant outside its directory."""

    # operations -----------------------------------------------------------------------

    def run(self, tenant: str, owner: str | None, sql: Any, params: Any, fetch: bool,
            room: int | None = None) -> Any:
        """Run one statement, in the open transaction of ``owner`` if it has one, letting
        the database grow to ``room`` bytes at most (None: no limit), else DatabaseFull."""
        sql, params = check_statement(sql, params)
        txn = self._txns.get(owner) if owner else None
        if txn is not None and txn.tenant != tenant:  # never: owners are per worker
            raise InvalidInput("db: transaction belongs to another tenant")
        if txn is not None:
            with txn.lock:
                return self._limited(txn.conn, sql, params, fetch, room, in_txn=True)
        conn = self._connect(tenant)
        try:
            return self._limited(conn, sql, params, fetch, room, in_txn=False)
        finally:
            conn.close()

    def _cancelled(self) -> str:
        return (f"db: statement cancelled: it ran longer than {self.statement_timeout:g} s, "
                "the limit of a statement (statement_timeout)")

    def begin(self, tenant: str, owner: str, timeout: float) -> None:
        with self._lock:
            if owner in self._txns:
                raise Conflict("db: a transaction is already open for this request")
        conn = self._connect(tenant)
        try:
            conn.execute(self.begin_statement)
        except Exception as exc:
            conn.close()
            raise DatabaseError(f"db: cannot begin: {exc}") from None
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
                    raise DatabaseError(f"db: commit failed: {exc}") from None
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

    def drop(self, tenant: str) -> None:
        """Remove the tenant's database (also one this process never used)."""
        for owner, txn in list(self._txns.items()):
            if txn.tenant == tenant:
                self.finish(owner, commit=False)
        self._drop_database(tenant)
        shutil.rmtree(self.tenant_dir(tenant), ignore_errors=True)
