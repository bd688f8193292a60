"""Agents and workers sharing one store: what one node changes is in force on all.

The database writes down each change itself: triggers (``install_triggers``) add a row
to ``changes`` in the same transaction as a function's active version, a tenant's env,
secrets, quotas or network, whichever node or tool made it. Every node follows that
table (``ChangeFeed``): on PostgreSQL it is woken by LISTEN/NOTIFY at once, and polls
as a fallback; on SQLite (one host, several processes) it polls. Each change drops what
the node cached and retires the warm workers that no longer match.

The same loop keeps the shared bundles tidy: it collects the blobs no version
references (``Store.collect_blobs``), evicts them from this node's cache, and shares any
bundle this node holds that the store lacks (deployed before bundles were shared).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Engine, delete, func, inspect, or_, select, text

from hyac_agent.bundles import BundleStore, pack
from hyac_agent.store import Store
from hyac_agent.store import tables as t
from hyac_agent.waiting import wake_or_timeout

if TYPE_CHECKING:
    from hyac_agent.execution.pool import WorkerPool
    from hyac_agent.services.functions import FunctionService
    from hyac_agent.tenancy import TenancyService

log = logging.getLogger("hyac.cluster")

#: how long a change id skipped is looked for (a transaction that took it commits late)
GAP_WAIT = 30.0
#: the NOTIFY channel the triggers signal on (PostgreSQL)
CHANNEL = "hyac_changes"

#: (table, kind, tenant column, name column) of every change the nodes must see
WATCHED: tuple[tuple[str, str, str, str], ...] = (
    ("functions", "function", "tenant", "name"),
    ("tenants", "tenant", "name", "name"),
    ("tenant_env", "tenant", "tenant", "key"),
    ("tenant_secrets", "tenant", "tenant", "name"),
    ("quotas", "tenant", "tenant", "name"),
)

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION hyac_note_change() RETURNS trigger AS $$
DECLARE changed jsonb;
BEGIN
  IF TG_OP = 'DELETE' THEN changed := to_jsonb(OLD); ELSE changed := to_jsonb(NEW); END IF;
  INSERT INTO changes (kind, tenant, name, at) VALUES (
    TG_ARGV[0], coalesce(changed ->> TG_ARGV[1], ''), coalesce(changed ->> TG_ARGV[2], ''),
    extract(epoch FROM clock_timestamp()));
  PERFORM pg_notify('{CHANNEL}', '');
  RETURN NULL;
END $$ LANGUAGE plpgsql
"""

_SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


def install_triggers(engine: Engine) -> None:
    """Make the database note every watched change in ``changes`` (idempotent; a
    watched table not made yet is left out)."""
    present = set(inspect(engine).get_table_names())
    watched = [entry for entry in WATCHED if entry[0] in present]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Several nodes starting at once must not replace the function together.
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('hyac_triggers'))"))
            conn.execute(text(_PG_FUNCTION))
            for table, kind, tenant, name in watched:
                conn.execute(text(
                    f"CREATE OR REPLACE TRIGGER hyac_changes_{table} AFTER INSERT OR UPDATE "
                    f"OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION "
                    f"hyac_note_change('{kind}', '{tenant}', '{name}')"
                ))
            return
        for table, kind, tenant, name in watched:
            for op, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
                conn.execute(text(
                    f"CREATE TRIGGER IF NOT EXISTS hyac_changes_{table}_{op.lower()} "
                    f"AFTER {op} ON {table} BEGIN INSERT INTO changes (kind, tenant, name, at) "
                    f"VALUES ('{kind}', {row}.{tenant}, {row}.{name}, {_SQLITE_NOW}); END"
                ))


def hold_boot_lock(engine: Engine) -> Callable[[], None]:
    """Make the nodes that start at once on an empty PostgreSQL create the tables one at
    a time (concurrent CREATE TABLEs of one name fail); returns the release. A session
    lock on a connection of its own, so a node that dies mid-start releases it too."""
    if engine.dialect.name != "postgresql":
        return lambda: None
    conn = engine.connect()
    conn.execute(text("SELECT pg_advisory_lock(hashtext('hyac_boot'))"))
    conn.commit()

    def release() -> None:
        try:
            conn.execute(text("SELECT pg_advisory_unlock(hashtext('hyac_boot'))"))
            conn.commit()
        finally:
            conn.close()

    return release


@dataclass(frozen=True)
class FeedSettings:
    #: how often to look for changes without being woken (NOTIFY wakes at once)
    poll: float = 0.5
    #: changes older than this are deleted (every node has long seen them)
    keep_changes: float = 3600.0
    #: how often to collect unreferenced bundles and tidy this node's cache
    collect_every: float = 600.0
    #: a bundle a deploy used this recently is never collected (deploys in flight)
    collect_grace: float = 600.0


class Caches(Protocol):
    """What a change tells the node."""

    async def function_changed(self, tenant: str, name: str) -> None: ...

    async def tenant_changed(self, tenant: str) -> None: ...


class NodeCaches:
    """What this node holds that a change elsewhere makes stale."""

    def __init__(self, functions: FunctionService, pool: WorkerPool, tenancy: TenancyService
                 ) -> None:
        self.functions = functions
        self.pool = pool
        self.tenancy = tenancy

    async def function_changed(self, tenant: str, name: str) -> None:
        """Deployed, rolled back or removed: the active version is read again, and the
        warm workers of any other version take no new requests."""
        self.functions.forget(tenant, name)
        version = await asyncio.to_thread(self.functions.store.get_version, tenant, name)
        await self.pool.retire(tenant, name, keep_sha=version.sha256 if version else None)

    async def tenant_changed(self, tenant: str) -> None:
        """Env, secrets, quotas or network: read again; its workers that started with
        something else restart to see them. Workers started since (the change was made
        here, or seen through an earlier batch) are left alone. A tenant removed (on any
        node) has its workers stopped at once, requests in flight included."""
        seen = time.monotonic()

        def reload() -> str | None:
            self.tenancy.reload(tenant)
            if not self.tenancy.exists(tenant):
                return None
            return self.tenancy.worker_state(tenant)

        state = await asyncio.to_thread(reload)
        if state is None:
            await self.pool.stop_tenant(tenant, "its tenant was removed", started_before=seen)
        else:
            await self.pool.retire_tenant(tenant, state)


class ChangeFeed:
    """Follows ``changes``: tells ``caches`` of each function and tenant any node
    changed (this one too), once each per batch."""

    def __init__(self, engine: Engine, store: Store, bundles: BundleStore, caches: Caches,
                 settings: FeedSettings | None = None) -> None:
        self.engine = engine
        self.store = store
        self.bundles = bundles
        self.caches = caches
        self.settings = settings or FeedSettings()
        install_triggers(engine)
        self._seen = 0
        #: ids below ``_seen`` not seen yet, and since when (time.monotonic())
        self._gaps: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._stopping = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: threading.Thread | None = None

    async def start(self) -> None:
        self._seen = await asyncio.to_thread(self._last_id)
        self._task = asyncio.create_task(self._run())
        if self.engine.dialect.name == "postgresql":
            loop = asyncio.get_running_loop()
            self._listener = threading.Thread(
                target=self._listen, args=(loop,), name="hyac-listen", daemon=True
            )
            self._listener.start()

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener is not None:
            await asyncio.to_thread(self._listener.join, 5)

    def _last_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(t.changes.c.id))).scalar() or 0)

    def _read(self) -> list[tuple[int, str, str, str]]:
        # Ids are taken when a change is written but seen when it commits, so a smaller
        # id can appear after a larger one: ids skipped are looked for again a while.
        now = time.monotonic()
        self._gaps = {gap: since for gap, since in self._gaps.items() if now - since < GAP_WAIT}
        wanted = t.changes.c.id > self._seen
        if self._gaps:
            wanted = or_(wanted, t.changes.c.id.in_(list(self._gaps)))
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.changes.c.id, t.changes.c.kind, t.changes.c.tenant, t.changes.c.name)
                .where(wanted).order_by(t.changes.c.id).limit(10_000)
            ).all()
        found = [(row.id, row.kind, row.tenant, row.name) for row in rows]
        for number, *_ in found:
            self._gaps.pop(number, None)
            if number > self._seen:
                self._gaps.update(dict.fromkeys(range(max(self._seen + 1, number - 1000), number), now))
                self._seen = number
        return found

    async def catch_up(self) -> int:
        """Apply every change not seen yet; how many there were."""
        rows = await asyncio.to_thread(self._read)
        if not rows:
            return 0
        functions = dict.fromkeys((tenant, name) for _, kind, tenant, name in rows
                                  if kind == "function")
        tenants = dict.fromkeys(tenant for _, kind, tenant, _ in rows if kind == "tenant")
        for tenant, name in functions:
            await self._safely(self.caches.function_changed(tenant, name))
        for tenant in tenants:
            await self._safely(self.caches.tenant_changed(tenant))
        return len(rows)

    @staticmethod
    async def _safely(call: Awaitable[None]) -> None:
        try:
            await call
        except Exception:
            log.exception("could not apply a change made on another node")

    async def _run(self) -> None:
        next_tidy = time.monotonic()
        while True:
            await wake_or_timeout(self._wake, self.settings.poll)
            self._wake.clear()
            try:
                await self.catch_up()
                if time.monotonic() >= next_tidy:
                    next_tidy = time.monotonic() + self.settings.collect_every
                    await asyncio.to_thread(self.tidy)
            except Exception:  # the store is away for a moment: try again next round
                log.warning("could not read changes from the store", exc_info=True)

    def tidy(self) -> None:
        """Share cached bundles the store lacks, collect unreferenced blobs, evict them
        here, and delete old change rows. Blocking."""
        now = time.time()
        stored = self.store.blob_names()
        referenced = self.referenced()
        for sha in self.bundles.cached():
            if sha not in stored and sha in referenced:
                self.store.put_blob(sha, pack(self.bundles.files_of(sha)))
        collected = self.store.collect_blobs(now - self.settings.collect_grace)
        if collected:
            log.info("collected %d bundle(s) no version uses", collected)
        stored = self.store.blob_names()
        for sha in self.bundles.cached():
            if sha not in stored and sha not in referenced:
                self.bundles.evict(sha)
        with self.engine.begin() as conn:
            conn.execute(delete(t.changes).where(t.changes.c.at < now - self.settings.keep_changes))

    def referenced(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(t.versions.c.sha256).distinct()).scalars())

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """LISTEN on its own connection; each NOTIFY wakes the feed at once."""
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stopping.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    loop.call_soon_threadsafe(self._wake.set)  # missed while away
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            loop.call_soon_threadsafe(self._wake.set)
            except Exception:
                if self._stopping.is_set():
                    return
                log.warning("LISTEN connection lost; polling until it is back", exc_info=True)
                self._stopping.wait(2.0)
