"""Tenant databases on PostgreSQL, with a PostgreSQL store.

One *database* per tenant, owned by a role of its own, both named
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
cache file, some 160 KiB).

PostgreSQL has no limit on a database's size: under the storage quota a statement runs in
a transaction of its own (a savepoint inside the tenant's), as one statement (the
extended protocol, so no ``;``-joined second statement runs after the check), and if the
database grew past the room it is rolled back, and vacuumed so the space its rows took is
given back (inside the tenant's transaction that is left to autovacuum).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import threading
from typing import Any

from hyac_agent.tenancy.tenantdb.base import (
    DatabaseFull,
    TenantDatabases,
    as_result,
    log,
    read_cursor,
)
from hyac_common.errors import DatabaseError

#: how long past the statement timeout the agent itself cancels a statement
WATCHDOG_GRACE = 1.0
#: what a database made from template0 weighs before the tenant adds anything
_BASELINE = "pg_database_size('template0')"


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


class PostgresTenantDatabases(TenantDatabases):
    """A database and a role per tenant, on the store's server."""

    postgres = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepare_lock = threading.Lock()
        self._prepared: set[str] = set()
        self._names: dict[str, str] = {}
        self._prefix: str | None = None
        self._key: bytes | None = None
        self._baseline: int | None = None

    # names ----------------------------------------------------------------------------

    def _secret_key(self) -> bytes:
        if self._key is None:
            from hyac_agent.tenancy.secrets import load_or_create_key

            self._key = load_or_create_key(self.data_dir)
        return self._key

    def role_prefix(self) -> str:
        """What every tenant role and database of this agent's store starts with."""
        if self._prefix is None:
            from psycopg.conninfo import conninfo_to_dict

            dbname = str(conninfo_to_dict(self._admin_url()).get("dbname") or "")
            self._prefix = "hyac_" + hashlib.sha256(dbname.encode()).hexdigest()[:8] + "_"
        return self._prefix

    def database(self, tenant: str) -> str:
        """The name of the tenant's PostgreSQL database, and of its role."""
        name = self._names.get(tenant)
        if name is None:
            mac = hmac.new(self._secret_key(), b"hyac-tenant-name:" + tenant.encode(),
                           hashlib.sha256)
            name = self._names[tenant] = self.role_prefix() + "_" + mac.hexdigest()[:20]
        return name

    def role(self, tenant: str) -> str:
        return self.database(tenant)

    def schema(self, tenant: str) -> str:
        """Where the tenant's tables are, as its description shows it."""
        return f"public of database {self.database(tenant)}"

    def _pg_password(self, role: str) -> str:
        return hmac.new(self._secret_key(), b"hyac-tenant-db:" + role.encode(),
                        hashlib.sha256).hexdigest()

    # connections ----------------------------------------------------------------------

    def _admin_url(self) -> str:
        return self.store_url.replace("postgresql+psycopg://", "postgresql://", 1)

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(self._admin_url(), autocommit=True, connect_timeout=10)

    def _prepare(self, tenant: str) -> None:
        """Make (or repair) the tenant's role and database, once per process."""
        with self._prepare_lock:
            if tenant not in self._prepared:
                with self._admin() as admin:
                    self._make(admin, tenant)
                self._prepared.add(tenant)

    def _make(self, admin: Any, tenant: str) -> None:
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

    def _conninfo(self, tenant: str) -> str:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        name = self.database(tenant)
        info = conninfo_to_dict(self._admin_url())
        for key in ("user", "password", "passfile", "options", "service"):
            info.pop(key, None)
        info.update(dbname=name, user=name, password=self._pg_password(name), connect_timeout=10)
        if self.statement_timeout:
            info["options"] = f"-c statement_timeout={round(self.statement_timeout * 1000)}"
        return make_conninfo("", **info)

    def _connect(self, tenant: str) -> Any:
        import psycopg

        known = tenant in self._prepared
        self._prepare(tenant)
        try:
            return psycopg.connect(self._conninfo(tenant), autocommit=True)
        except psycopg.OperationalError as exc:
            if "too many connections for role" in str(exc):
                raise DatabaseError(
                    f"db: the tenant's database already has {self.connection_limit} connections "
                    "open (its limit); try again when some are done") from None
            if not known:
                log.warning("tenant %s: cannot connect to its database: %s", tenant, exc)
                raise DatabaseError("db: the tenant's database is not reachable") from None
        # made in an earlier use: repair it (a password or limit the tenant changed, a
        # role or database dropped by another agent) and try once more
        with self._prepare_lock:
            self._prepared.discard(tenant)
        return self._connect(tenant)

    # statements -----------------------------------------------------------------------

    def _limited(self, conn: Any, sql: str, params: Any, fetch: bool, room: int | None,
                 in_txn: bool) -> Any:
        """The statement in a transaction (or a savepoint in the tenant's) that is rolled
        back if it grew the database past ``room``. A statement that does not grow it
        (DELETE, UPDATE in place) runs even when the database is already over."""
        if room is None:
            return self._statement(conn, sql, params, fetch)
        from psycopg.pq import TransactionStatus

        inside = conn.info.transaction_status == TransactionStatus.INTRANS
        before = self._size(conn)
        conn.execute("SAVEPOINT hyac_quota" if inside else "BEGIN")
        try:
            result = self._statement(conn, sql, params, fetch, single=True)
        except BaseException:
            self._undo(conn, inside)
            raise
        if conn.info.transaction_status != TransactionStatus.INTRANS:
            return result  # it was a COMMIT or ROLLBACK itself: it wrote nothing
        after = self._size(conn)
        if after > room and after > before:
            self._undo(conn, inside)
            if not inside:
                # The rolled-back rows' pages stay in the files until a vacuum; without
                # one the tenant's next insert would find its database still full.
                with contextlib.suppress(Exception):
                    conn.execute("VACUUM")
                after = self._size(conn)
            raise DatabaseFull(after)
        conn.execute("RELEASE SAVEPOINT hyac_quota" if inside else "COMMIT")
        return result

    @staticmethod
    def _undo(conn: Any, inside: bool) -> None:
        from psycopg.pq import TransactionStatus

        if conn.info.transaction_status == TransactionStatus.IDLE:
            return  # the statement ended the transaction itself
        with contextlib.suppress(Exception):  # a savepoint the statement released
            conn.execute("ROLLBACK TO SAVEPOINT hyac_quota" if inside else "ROLLBACK")

    def _size(self, conn: Any) -> int:
        """What the tenant added to an empty database, as its own connection sees it
        (rows its open transaction wrote included). Qualified: a tenant may shadow
        functions of pg_catalog on its search_path."""
        row = conn.execute("SELECT pg_catalog.pg_database_size(pg_catalog.current_database())"
                           ).fetchone()
        return max(int(row[0]) - self._baseline_size(), 0)

    def _baseline_size(self) -> int:
        if self._baseline is None:
            with self._admin() as admin:
                self._baseline = int(admin.execute(f"SELECT {_BASELINE}").fetchone()[0])
        return self._baseline

    def _statement(self, conn: Any, sql: str, params: Any, fetch: bool,
                   single: bool = False) -> Any:
        """Run the statement; ``single``: refuse ``;``-joined statements."""
        if not params:
            params = None  # else psycopg reads every "%" as a placeholder ("LIKE 'a%'")
        watchdog = None
        if self.statement_timeout:
            watchdog = _Watchdog(conn, self.statement_timeout + WATCHDOG_GRACE)
        try:
            # (prepared: the extended protocol, which takes exactly one statement)
            cursor = conn.execute(sql, params, prepare=True) if single else conn.execute(sql, params)
            read = read_cursor(cursor, fetch)
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise DatabaseError(self._error(exc, watchdog)) from None
            raise
        finally:
            if watchdog is not None:
                watchdog.stop()
        return as_result(read)

    def _error(self, exc: Exception, watchdog: _Watchdog | None) -> str:
        if watchdog is not None and watchdog.fired:
            return self._cancelled()
        text = f"db: {exc}".strip()
        if "statement timeout" in text and self.statement_timeout:
            return f"{text} (a statement may run {self.statement_timeout:g} s at most)"
        return text

    # size and removal -----------------------------------------------------------------

    def size(self, tenant: str) -> int:
        # what the tenant added to an empty database (catalog rows, tables, indexes,
        # TOAST), also for a tenant this process has not used yet
        with self._admin() as admin:
            row = admin.execute(
                f"SELECT pg_database_size(datname) - {_BASELINE} FROM pg_database "
                "WHERE datname = %s", (self.database(tenant),)).fetchone()
        return max(int(row[0]), 0) if row else 0

    def _drop_database(self, tenant: str) -> None:
        """Drop the tenant's database and role, also those of a tenant this process never
        used (made before a restart)."""
        import psycopg
        from psycopg import sql

        name = self.database(tenant)
        with self._prepare_lock:
            with self._admin() as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = %s OR usename = %s", (name, name))
                force = sql.SQL(" WITH (FORCE)" if admin.info.server_version >= 130000 else "")
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
                              + force)
                if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                    try:  # what it owns or was granted here, then the role
                        admin.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(
                            sql.Identifier(name)))
                        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
                    except psycopg.Error as exc:  # it owns something in another database
                        log.warning("tenant %s: role %s is left: %s", tenant, name, exc)
            self._prepared.discard(tenant)
