"""Each tenant's own SQL database, reached by functions through ``db.*`` host calls.

Embedded default: one SQLite file per tenant, ``DATA_DIR/tenants/NAME/db.sqlite3``. An
authorizer refuses ``ATTACH``/``DETACH`` (and so ``VACUUM INTO``), and every ``PRAGMA``
but a few read-only ones, so SQL from a function cannot open another file. Extensions
cannot be loaded (the agent never enables them).

With a PostgreSQL store: one *database* per tenant, owned by a role of its own, both named
``hyac_<8 hex of the store's database name>__<20 hex of an HMAC of the tenant name>``
(the key is ``DATA_DIR/secrets.key``, which agents sharing a store share anyway). Roles
and databases are cluster-wide and every role can list them (``pg_roles``,
``pg_database``), so the names say nothing about the tenant, not even to one guessing
names; two agents on two store databases of one server never share one. The agent's own
connection (the store URL's user: CREATEROLE and CREATEDB, or superuser) makes both on
the tenant's first use: the role LOGIN, no other attribute, a member of nothing, with a
CONNECTION LIMIT and a default ``statement_timeout``; the database from ``template0``
with CONNECT and TEMPORARY revoked from PUBLIC, so no other ordinary role may connect to
it. The agent never logs into a tenant's database itself. The tenant's SQL runs on a
connection *logged in* as that role to that database (not ``SET ROLE``, which ``RESET
ROLE`` would undo), in its ``public`` schema, which belongs to the database's owner
(``pg_database_owner`` from PostgreSQL 15: hence INHERIT, though the role is granted
nothing). That database's catalogs (``pg_class``, ``information_schema``, ``pg_stats``)
hold only its own objects, so a tenant sees nothing of another's tables, not even their
names. What every role of the server still sees: the (meaningless) names of the other
tenants' databases and roles, so how many there are, and their activity in
``pg_stat_activity``/``pg_stat_database`` (when and how much, never the query text). The
role's password is an HMAC of the role under the same key, set again whenever an agent
process first uses the tenant (which also repairs a password the tenant changed).

Limits on the shared server: ``HYAC_TENANT_DB_CONNECTIONS`` (default 10) connections at
once per tenant (each statement outside a transaction, and each open transaction, holds
one), and ``HYAC_TENANT_DB_STATEMENT_TIMEOUT`` (seconds, default the default function
timeout, 30) per statement; 0 lifts either. The timeout is sent with each connection (it
beats whatever default the tenant set on its role or database) and, since a tenant may
``SET statement_timeout`` in its session, the agent also cancels a statement still running
a second past it. Storage is ``pg_database_size`` less that of ``template0``, what the
tenant added to an empty database (a database in use also holds PostgreSQL's relation
cache file, some 160 KiB). On SQLite the statement timeout holds too: a progress handler
interrupts a statement past it, so a runaway query cannot keep an agent thread.

The old layout (a schema ``hyac_t_NAME`` in the store's database, owned by a role
``hyac_<8 hex>_NAME``) is left as it is: its tables stay there, unseen from the tenant's
new database and not counted in its storage, and the agent logs where they are on first
use (copy them across with ``pg_dump --schema`` if wanted). Removing the tenant drops
them too.

A transaction (``db.begin``) holds one connection for the request that opened it until
``db.commit``/``db.rollback``, or until that request ends (then it is rolled back).

The storage quota is enforced by the database itself, around each statement (``room``:
the bytes the quota leaves the database once the tenant's kv and objects are counted).
SQLite: ``PRAGMA max_page_count`` is set from it on the statement's connection, so a
statement that would grow the file past it fails with SQLITE_FULL and is undone by SQLite
(inside a ``db.begin`` transaction SQLite may undo the whole transaction). PostgreSQL has
no such limit: the statement runs in a transaction of its own (a savepoint inside the
tenant's), as one statement (the extended protocol, so no ``;``-joined second statement
runs after the check), and if the database grew past the room it is rolled back, and
vacuumed so the space its rows took is given back (inside the tenant's transaction that
is left to autovacuum).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import decimal
import hashlib
import hmac
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hyac_common.errors import Conflict, InvalidInput
from hyac_common.wire import DEFAULT_TIMEOUT

log = logging.getLogger("hyac.tenantdb")

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
#: connections a tenant may hold at once on PostgreSQL, and seconds a statement may run
DEFAULT_CONNECTIONS = 10
DEFAULT_STATEMENT_TIMEOUT = DEFAULT_TIMEOUT
#: how long past the statement timeout the agent itself cancels a statement
WATCHDOG_GRACE = 1.0
#: what a database made from template0 weighs before the tenant adds anything
_BASELINE = "pg_database_size('template0')"


def pg_ident(prefix: str, name: str) -> str:
    """``prefix + name`` as a PostgreSQL identifier of at most 63 bytes, one per name.

    Tenant names are ``[a-z0-9_-]``; a long one is cut and followed by ``~`` and a hash
    (``~`` never occurs in a name), so two tenants never share a schema or a role."""
    ident = prefix + name
    if len(ident) <= _PG_MAX_IDENT:
        return ident
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return prefix + name[: _PG_MAX_IDENT - len(prefix) - 13] + "~" + digest


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


#: no SQLite database reaches this many pages (SQLite's own ceiling)
_SQLITE_MAX_PAGES = 4294967294
_SQLITE_FULL = 13  # (not in the sqlite3 module of every Python)


@contextlib.contextmanager
def _agent_pragmas(conn: sqlite3.Connection) -> Iterator[None]:
    """The agent's own PRAGMAs on a tenant connection (the authorizer refuses them to
    the tenant's SQL)."""
    conn.set_authorizer(None)
    try:
        yield
    finally:
        conn.set_authorizer(_authorizer)


def _sqlite_limit(conn: sqlite3.Connection, room: int | None) -> None:
    """Cap the database at ``room`` bytes for the next statements of ``conn``. SQLite
    never lowers the cap below the pages the database already has, so statements that
    free space still run when it is over."""
    with _agent_pragmas(conn):
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = _SQLITE_MAX_PAGES if room is None else max(room // page_size, 1)
        conn.execute(f"PRAGMA max_page_count = {int(pages)}")


def _sqlite_size(conn: sqlite3.Connection) -> int:
    with _agent_pragmas(conn):
        count, size = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                       for p in ("page_count", "page_size"))
    return int(count) * int(size)


class _Txn:
    def __init__(self, conn: Any, tenant: str, deadline: float) -> None:
        self.conn = conn
        self.tenant = tenant
        self.deadline = deadline
        self.lock = threading.Lock()


class _Watchdog:
    """Cancels the statement of a PostgreSQL connection still running ``after`` seconds
    from now (the server's statement_timeout is a default the tenant may SET away)."""

    def __init__(self, conn: Any, after: float) -> None:
        self.fired = False
        self._done = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(after, self._fire, (conn,))
        self._timer.daemon = True
        self._timer.start()

    def _fire(self, conn: Any) -> None:
        with self._lock:  # never once the statement is over: it would hit the next one
            if self._done:
                return
            self.fired = True
            try:
                conn.cancel_safe(timeout=5)
            except Exception:  # noqa: BLE001 - the statement may be over, the server gone
                log.warning("could not cancel a tenant statement", exc_info=True)

    def stop(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()


class TenantDatabases:
    def __init__(self, data_dir: Path, store_url: str, statement_timeout: float | None = None,
                 connection_limit: int | None = None) -> None:
        self.data_dir = data_dir
        self.root = data_dir / "tenants"
        self.store_url = store_url
        self.postgres = store_url.startswith("postgresql")
        #: PostgreSQL only: seconds a statement may run, connections a tenant may hold
        #: (0: no limit)
        self.statement_timeout = _setting(statement_timeout, "HYAC_TENANT_DB_STATEMENT_TIMEOUT",
                                          DEFAULT_STATEMENT_TIMEOUT)
        self.connection_limit = int(_setting(connection_limit, "HYAC_TENANT_DB_CONNECTIONS",
                                             DEFAULT_CONNECTIONS))
        self._txns: dict[str, _Txn] = {}
        self._lock = threading.Lock()
        self._prepare_lock = threading.Lock()
        self._prepared: set[str] = set()
        self._names: dict[str, str] = {}
        self._prefix: str | None = None
        self._key: bytes | None = None
        self._baseline: int | None = None

    # locations ------------------------------------------------------------------------

    def tenant_dir(self, tenant: str) -> Path:
        return self.root / tenant

    def sqlite_path(self, tenant: str) -> Path:
        return self.tenant_dir(tenant) / "db.sqlite3"

    def _secret_key(self) -> bytes:
        if self._key is None:
            from hyac_agent.tenancy.secrets import load_or_create_key

            self._key = load_or_create_key(self.data_dir)
        return self._key

    def role_prefix(self) -> str:
        """What every tenant role and database of this agent's store starts with."""
        if self._prefix is None:
            from psycopg.conninfo import conninfo_to_dict

            dbname = str(conninfo_to_dict(self._pg_admin_url()).get("dbname") or "")
            self._prefix = "hyac_" + hashlib.sha256(dbname.encode()).hexdigest()[:8] + "_"
        return self._prefix

    def database(self, tenant: str) -> str:
        """The name of the tenant's PostgreSQL database, and of its role.

        The ``__`` after the prefix never follows it in a name of the old layout (tenant
        names start with a letter or digit), so the two never meet."""
        name = self._names.get(tenant)
        if name is None:
            mac = hmac.new(self._secret_key(), b"hyac-tenant-name:" + tenant.encode(),
                           hashlib.sha256)
            name = self._names[tenant] = self.role_prefix() + "_" + mac.hexdigest()[:20]
        return name

    def role(self, tenant: str) -> str:
        return self.database(tenant)

    def schema(self, tenant: str) -> str:
        """Where the tenant's tables are on PostgreSQL, as its description shows it."""
        return f"public of database {self.database(tenant)}"

    @staticmethod
    def legacy_schema(tenant: str) -> str:
        """The tenant's schema in the store's database in the old layout."""
        return pg_ident("hyac_t_", tenant)

    def legacy_role(self, tenant: str) -> str:
        """The role that owned :meth:`legacy_schema`."""
        return pg_ident(self.role_prefix(), tenant)

    def _pg_password(self, role: str) -> str:
        return hmac.new(self._secret_key(), b"hyac-tenant-db:" + role.encode(),
                        hashlib.sha256).hexdigest()

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

    def _pg_admin(self) -> Any:
        import psycopg

        return psycopg.connect(self._pg_admin_url(), autocommit=True, connect_timeout=10)

    def _pg_prepare(self, tenant: str) -> None:
        """Make (or repair) the tenant's role and database, once per process."""
        with self._prepare_lock:
            if tenant not in self._prepared:
                with self._pg_admin() as admin:
                    self._pg_make(admin, tenant)
                self._prepared.add(tenant)

    def _pg_make(self, admin: Any, tenant: str) -> None:
        from psycopg import errors, sql

        name = self.database(tenant)
        ident = sql.Identifier(name)
        # (only a superuser may name the superuser, replication and bypassrls attributes,
        # even to deny them, and only a superuser could have granted them)
        attributes = sql.SQL(" LOGIN INHERIT NOCREATEDB NOCREATEROLE CONNECTION LIMIT {} "
                             "PASSWORD {}").format(sql.Literal(self.connection_limit or -1),
                                                   sql.Literal(self._pg_password(name)))
        made = (errors.DuplicateObject, errors.DuplicateDatabase, errors.UniqueViolation)
        exists = bool(admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone())
        if not exists:
            try:
                admin.execute(sql.SQL("CREATE ROLE {}").format(ident) + attributes + sql.SQL(
                    " NOSUPERUSER NOREPLICATION NOBYPASSRLS"))
            except made:  # another agent process made it at the same moment
                exists = True
        if exists:  # again: a password the tenant changed, a limit changed since
            admin.execute(sql.SQL("ALTER ROLE {}").format(ident) + attributes)
        timeout = sql.Literal(round(self.statement_timeout * 1000))
        admin.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(ident, timeout))
        superuser = admin.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        if not (superuser and superuser[0]):
            # CREATE DATABASE ... OWNER, pg_database_size, DROP DATABASE: a member may
            admin.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(ident))
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            with contextlib.suppress(*made):
                admin.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
                    ident, ident))
        # again each time: the owner may have granted CONNECT or set a limit on it
        admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident))
        admin.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT -1").format(ident))
        legacy = self.legacy_schema(tenant)
        if admin.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (legacy,)).fetchone():
            log.warning("tenant %s: the tables of its old schema %s stay in database %s; "
                        "its functions now use database %s", tenant, legacy, admin.info.dbname,
                        name)

    def _pg_conninfo(self, tenant: str) -> str:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        name = self.database(tenant)
        info = conninfo_to_dict(self._pg_admin_url())
        for key in ("user", "password", "passfile", "options", "service"):
            info.pop(key, None)
        info.update(dbname=name, user=name, password=self._pg_password(name), connect_timeout=10)
        if self.statement_timeout:
            info["options"] = f"-c statement_timeout={round(self.statement_timeout * 1000)}"
        return make_conninfo("", **info)

    def _pg_connect(self, tenant: str) -> Any:
        import psycopg

        known = tenant in self._prepared
        self._pg_prepare(tenant)
        try:
            return psycopg.connect(self._pg_conninfo(tenant), autocommit=True)
        except psycopg.OperationalError as exc:
            if "too many connections for role" in str(exc):
                raise InvalidInput(
                    f"db: the tenant's database already has {self.connection_limit} connections "
                    "open (its limit); try again when some are done", code="db_error") from None
            if not known:
                log.warning("tenant %s: cannot connect to its database: %s", tenant, exc)
                raise InvalidInput("db: the tenant's database is not reachable",
                                   code="db_error") from None
        # made in an earlier use: repair it (a password or limit the tenant changed, a
        # role or database dropped by another agent) and try once more
        with self._prepare_lock:
            self._prepared.discard(tenant)
        return self._pg_connect(tenant)

    # operations -----------------------------------------------------------------------

    def run(self, tenant: str, owner: str | None, sql: Any, params: Any, fetch: bool,
            room: int | None = None) -> Any:
        """Run one statement, in the open transaction of ``owner`` if it has one, letting
        the database grow to ``room`` bytes at most (None: no limit), else DatabaseFull."""
        sql, params = _check(sql, params)
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

    def _limited(self, conn: Any, sql: str, params: Any, fetch: bool, room: int | None,
                 in_txn: bool) -> Any:
        if not self.postgres:
            if room is not None or in_txn:  # (a transaction's cap may have been set before)
                _sqlite_limit(conn, room)
            try:
                return self._statement(conn, sql, params, fetch)
            except DatabaseFull:
                raise DatabaseFull(_sqlite_size(conn)) from None
        if room is None:
            return self._statement(conn, sql, params, fetch)
        return self._pg_limited(conn, sql, params, fetch, room)

    def _pg_limited(self, conn: Any, sql: str, params: Any, fetch: bool, room: int) -> Any:
        """The statement in a transaction (or a savepoint in the tenant's) that is rolled
        back if it grew the database past ``room``. A statement that does not grow it
        (DELETE, UPDATE in place) runs even when the database is already over."""
        from psycopg.pq import TransactionStatus

        inside = conn.info.transaction_status == TransactionStatus.INTRANS
        before = self._pg_size(conn)
        conn.execute("SAVEPOINT hyac_quota" if inside else "BEGIN")
        try:
            result = self._statement(conn, sql, params, fetch, single=True)
        except BaseException:
            self._pg_undo(conn, inside)
            raise
        if conn.info.transaction_status != TransactionStatus.INTRANS:
            return result  # it was a COMMIT or ROLLBACK itself: it wrote nothing
        after = self._pg_size(conn)
        if after > room and after > before:
            self._pg_undo(conn, inside)
            if not inside:
                # The rolled-back rows' pages stay in the files until a vacuum; without
                # one the tenant's next insert would find its database still full.
                with contextlib.suppress(Exception):
                    conn.execute("VACUUM")
                after = self._pg_size(conn)
            raise DatabaseFull(after)
        conn.execute("RELEASE SAVEPOINT hyac_quota" if inside else "COMMIT")
        return result

    @staticmethod
    def _pg_undo(conn: Any, inside: bool) -> None:
        from psycopg.pq import TransactionStatus

        if conn.info.transaction_status == TransactionStatus.IDLE:
            return  # the statement ended the transaction itself
        with contextlib.suppress(Exception):  # a savepoint the statement released
            conn.execute("ROLLBACK TO SAVEPOINT hyac_quota" if inside else "ROLLBACK")

    def _pg_size(self, conn: Any) -> int:
        """What the tenant added to an empty database, as its own connection sees it
        (rows its open transaction wrote included). Qualified: a tenant may shadow
        functions of pg_catalog on its search_path."""
        row = conn.execute("SELECT pg_catalog.pg_database_size(pg_catalog.current_database())"
                           ).fetchone()
        return max(int(row[0]) - self._pg_baseline(), 0)

    def _pg_baseline(self) -> int:
        if self._baseline is None:
            with self._pg_admin() as admin:
                self._baseline = int(admin.execute(f"SELECT {_BASELINE}").fetchone()[0])
        return self._baseline

    def _statement(self, conn: Any, sql: str, params: Any, fetch: bool,
                   single: bool = False) -> Any:
        """Run the statement; ``single`` (PostgreSQL): refuse ``;``-joined statements."""
        watchdog = None
        deadline: list[float] = []
        if self.postgres:
            if not params:
                params = None  # else psycopg reads every "%" as a placeholder ("LIKE 'a%'")
            if self.statement_timeout:
                watchdog = _Watchdog(conn, self.statement_timeout + WATCHDOG_GRACE)
        elif self.statement_timeout:
            # SQLite has no statement timeout: without this a runaway query would hold an
            # agent thread for ever, long after the function that sent it timed out.
            deadline.append(time.monotonic() + self.statement_timeout)
            conn.set_progress_handler(lambda: time.monotonic() > deadline[0], 10_000)
        try:
            # (prepared: the extended protocol, which takes exactly one statement)
            cursor = conn.execute(sql, params, prepare=True) if single else conn.execute(sql, params)
            if not fetch:
                return cursor.rowcount
            columns = [d[0] for d in cursor.description or ()]
            rows = cursor.fetchmany(MAX_ROWS + 1)
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
                raise DatabaseFull(0) from None
            if deadline and time.monotonic() > deadline[0] and "interrupted" in str(exc):
                raise InvalidInput(self._cancelled(), code="db_error") from None
            raise InvalidInput(f"db: {exc}", code="db_error") from None
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise InvalidInput(self._pg_error(exc, watchdog), code="db_error") from None
            raise
        finally:
            if watchdog is not None:
                watchdog.stop()
            if deadline:
                conn.set_progress_handler(None, 0)
        if len(rows) > MAX_ROWS:
            raise InvalidInput(f"db: more than {MAX_ROWS} rows; add a LIMIT", code="db_error")
        return {"columns": columns, "rows": [[_value(v) for v in row] for row in rows]}

    def _cancelled(self) -> str:
        return (f"db: statement cancelled: it ran longer than {self.statement_timeout:g} s, "
                "the limit of a statement (statement_timeout)")

    def _pg_error(self, exc: Exception, watchdog: _Watchdog | None) -> str:
        if watchdog is not None and watchdog.fired:
            return self._cancelled()
        text = f"db: {exc}".strip()
        if "statement timeout" in text and self.statement_timeout:
            return f"{text} (a statement may run {self.statement_timeout:g} s at most)"
        return text

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
            # what the tenant added to an empty database (catalog rows, tables, indexes,
            # TOAST), also for a tenant this process has not used yet
            with self._pg_admin() as admin:
                row = admin.execute(
                    f"SELECT pg_database_size(datname) - {_BASELINE} FROM pg_database "
                    "WHERE datname = %s", (self.database(tenant),)).fetchone()
            return max(int(row[0]), 0) if row else 0
        # Pages, as max_page_count counts them (the WAL file holds copies of pages, and
        # keeps its size after a checkpoint).
        total = 0
        path = self.sqlite_path(tenant)
        if path.exists():
            conn = sqlite3.connect(str(path), timeout=10)
            try:
                total += _sqlite_size(conn)
            finally:
                conn.close()
        objects = self.tenant_dir(tenant) / "objects"
        if objects.is_dir():
            total += sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())
        return total

    def drop(self, tenant: str) -> None:
        for owner, txn in list(self._txns.items()):
            if txn.tenant == tenant:
                self.finish(owner, commit=False)
        if self.postgres:  # also a tenant this process never used (made before a restart)
            with self._prepare_lock:
                self._pg_drop(tenant)
                self._prepared.discard(tenant)
        shutil.rmtree(self.tenant_dir(tenant), ignore_errors=True)

    def _pg_drop(self, tenant: str) -> None:
        """Drop the tenant's database and role, and its schema and role of the old layout."""
        import psycopg
        from psycopg import sql

        name, legacy = self.database(tenant), self.legacy_role(tenant)
        with self._pg_admin() as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s OR usename IN (%s, %s)", (name, name, legacy))
            force = sql.SQL(" WITH (FORCE)" if admin.info.server_version >= 130000 else "")
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)) + force)
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(self.legacy_schema(tenant))))
            for role in (name, legacy):
                if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    continue
                try:  # what it owns or was granted here, then the role
                    admin.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
                    admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
                except psycopg.Error as exc:  # it owns something in another database
                    log.warning("tenant %s: role %s is left: %s", tenant, role, exc)
