"""Tenant databases on SQLite, the embedded default: one file per tenant,
``DATA_DIR/tenants/NAME/db.sqlite3``.

An authorizer refuses ``ATTACH``/``DETACH`` (and so ``VACUUM INTO``), and every ``PRAGMA``
but a few read-only ones, so SQL from a function cannot open another file. Extensions
cannot be loaded (the agent never enables them).

SQLite has no statement timeout of its own: a progress handler interrupts a statement
running past ``HYAC_TENANT_DB_STATEMENT_TIMEOUT``, so a runaway query cannot keep an agent
thread. The storage quota is enforced by SQLite itself: ``PRAGMA max_page_count`` is set
from the room the quota leaves on the statement's connection, so a statement that would
grow the file past it fails with SQLITE_FULL and is undone by SQLite (inside a
``db.begin`` transaction SQLite may undo the whole transaction).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from hyac_agent.tenancy.tenantdb.base import DatabaseFull, TenantDatabases, as_result, read_cursor
from hyac_common.errors import DatabaseError

_SAFE_PRAGMAS = {"table_info", "table_xinfo", "table_list", "index_list", "index_info",
                 "foreign_key_list", "user_version"}
#: no SQLite database reaches this many pages (SQLite's own ceiling)
_MAX_PAGES = 4294967294
_SQLITE_FULL = 13  # (not in the sqlite3 module of every Python)


def _authorizer(action: int, arg1: str | None, arg2: str | None, _db: str | None,
                _trigger: str | None) -> int:
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() not in _SAFE_PRAGMAS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() == "load_extension":
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


@contextlib.contextmanager
def _agent_pragmas(conn: sqlite3.Connection) -> Iterator[None]:
    """The agent's own PRAGMAs on a tenant connection (the authorizer refuses them to
    the tenant's SQL)."""
    conn.set_authorizer(None)
    try:
        yield
    finally:
        conn.set_authorizer(_authorizer)


def _limit(conn: sqlite3.Connection, room: int | None) -> None:
    """Cap the database at ``room`` bytes for the next statements of ``conn``. SQLite
    never lowers the cap below the pages the database already has, so statements that
    free space still run when it is over."""
    with _agent_pragmas(conn):
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = _MAX_PAGES if room is None else max(room // page_size, 1)
        conn.execute(f"PRAGMA max_page_count = {int(pages)}")


def _size(conn: sqlite3.Connection) -> int:
    with _agent_pragmas(conn):
        count, size = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                       for p in ("page_count", "page_size"))
    return int(count) * int(size)


class SQLiteTenantDatabases(TenantDatabases):
    """A SQLite file per tenant, in the tenant's directory."""

    begin_statement = "BEGIN IMMEDIATE"

    def database(self, tenant: str) -> str:
        return str(self.sqlite_path(tenant))

    def _connect(self, tenant: str) -> sqlite3.Connection:
        path = self.sqlite_path(tenant)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(str(path), timeout=10, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.set_authorizer(_authorizer)
        return conn

    def _limited(self, conn: Any, sql: str, params: Any, fetch: bool, room: int | None,
                 in_txn: bool) -> Any:
        if room is not None or in_txn:  # (a transaction's cap may have been set before)
            _limit(conn, room)
        try:
            return self._statement(conn, sql, params, fetch)
        except DatabaseFull:
            raise DatabaseFull(_size(conn)) from None

    def _statement(self, conn: sqlite3.Connection, sql: str, params: Any, fetch: bool) -> Any:
        deadline: float | None = None
        if self.statement_timeout:
            # Without this a runaway query would hold an agent thread for ever, long after
            # the function that sent it timed out.
            end = deadline = time.monotonic() + self.statement_timeout
            conn.set_progress_handler(lambda: time.monotonic() > end, 10_000)
        try:
            read = read_cursor(conn.execute(sql, params), fetch)
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
                raise DatabaseFull(0) from None
            if deadline is not None and time.monotonic() > deadline and "interrupted" in str(exc):
                raise DatabaseError(self._cancelled()) from None
            raise DatabaseError(f"db: {exc}") from None
        finally:
            if deadline is not None:
                conn.set_progress_handler(None, 0)
        return as_result(read)

    def size(self, tenant: str) -> int:
        # Pages, as max_page_count counts them (the WAL file holds copies of pages, and
        # keeps its size after a checkpoint).
        total = 0
        path = self.sqlite_path(tenant)
        if path.exists():
            conn = sqlite3.connect(str(path), timeout=10)
            try:
                total += _size(conn)
            finally:
                conn.close()
        objects = self.tenant_dir(tenant) / "objects"
        if objects.is_dir():
            total += sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())
        return total
