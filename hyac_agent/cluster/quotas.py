"""Execution quotas counted in the shared store, so N agents do not allow N times the limit.

With PostgreSQL (several agents and workers), each invocation is admitted in one short
transaction: the per-minute and per-day counters of the tenant are raised only while
below their limits (``usage_counters``, one conditional upsert each), and a running
invocation holds a lease in ``quota_leases`` that counts against the concurrency limit.
Leases are renewed while their invocations run and expire soon after a node dies, so a
crashed agent cannot hold a tenant's concurrency for long.
"""

from __future__ import annotations

import secrets
import threading
import time

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Index,
    MetaData,
    String,
    Table,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from hyac_agent.tenancy import tables as tenancy_tables

metadata = MetaData()

quota_leases = Table(
    "quota_leases",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_quota_leases_tenant", "tenant"),
)

#: the quotas counted in the store; a tenant with none of them set is counted by each
#: node (and added to the store every second), with no round trip per invocation
SHARED = ("executions_per_minute", "executions_per_day", "concurrency")

#: a lease lives this long unless renewed; its node renews it every RENEW_EVERY seconds
LEASE_SECONDS = 30.0
RENEW_EVERY = 10.0

class _Refused(Exception):
    def __init__(self, quota: str, limit: float, use: float) -> None:
        self.found = (quota, limit, use)


class SharedCounters:
    """Admission of one invocation against counters every node shares (PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._renewed = time.monotonic()

    def admit(self, tenant: str, windows: list[tuple[str, str, float | None]],
              concurrency: float | None) -> tuple[str | None, tuple[str, float, float] | None]:
        """Count one invocation of ``tenant`` in each (quota, window, limit) and, if
        ``concurrency`` is limited, take a lease. Blocking. Returns (lease id or None,
        None) when admitted; (None, (quota, limit, use)) when a limit is reached, with
        nothing counted."""
        try:
            lease = self._admit(tenant, windows, concurrency)
        except _Refused as refused:  # the transaction was rolled back: nothing counted
            return None, refused.found
        if lease is not None:
            with self._lock:
                self._held.add(lease)
        return lease, None

    def _admit(self, tenant: str, windows: list[tuple[str, str, float | None]],
               concurrency: float | None) -> str | None:
        with self.engine.begin() as conn:
            lease = None
            if concurrency is not None:
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                             {"key": "hyac-concurrency:" + tenant})
                now = time.time()
                conn.execute(delete(quota_leases).where(
                    quota_leases.c.tenant == tenant, quota_leases.c.expires_at < now))
                running = conn.execute(select(func.count()).select_from(quota_leases)
                                       .where(quota_leases.c.tenant == tenant)).scalar_one()
                if running >= concurrency:
                    raise _Refused("concurrency", concurrency, float(running))
                lease = secrets.token_hex(16)
                conn.execute(quota_leases.insert().values(
                    id=lease, tenant=tenant, expires_at=now + LEASE_SECONDS))
            for quota, window, limit in windows:
                use = _count(conn, tenant, window, limit)
                if use is not None:
                    raise _Refused(quota, limit or 0.0, use)
        return lease

    def release(self, lease: str) -> None:
        with self._lock:
            self._held.discard(lease)
        with self.engine.begin() as conn:
            conn.execute(delete(quota_leases).where(quota_leases.c.id == lease))

    def renew(self) -> None:
        """Keep this node's leases alive (called about every second; renews every
        RENEW_EVERY seconds). Blocking."""
        if time.monotonic() - self._renewed < RENEW_EVERY:
            return
        self._renewed = time.monotonic()
        with self._lock:
            held = list(self._held)
        if held:
            with self.engine.begin() as conn:
                conn.execute(update(quota_leases).where(quota_leases.c.id.in_(held))
                             .values(expires_at=time.time() + LEASE_SECONDS))

    def running(self, tenant: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(quota_leases).where(
                quota_leases.c.tenant == tenant, quota_leases.c.expires_at >= time.time(),
            )).scalar_one())


def _count(conn: Connection, tenant: str, window: str, limit: float | None) -> float | None:
    """Raise ``tenant``'s counter of ``window`` by one if below ``limit``; else the use."""
    usage = tenancy_tables.usage
    if limit is not None and limit < 1:
        return 0.0
    statement = pg_insert(usage).values(tenant=tenant, window=window, count=1)
    statement = statement.on_conflict_do_update(
        index_elements=[usage.c.tenant, usage.c.window], set_={"count": usage.c.count + 1},
        where=(usage.c.count < limit) if limit is not None else None,
    )
    if conn.execute(statement.returning(usage.c.count)).first() is not None:
        return None
    return float(conn.execute(select(usage.c.count).where(
        usage.c.tenant == tenant, usage.c.window == window)).scalar_one())
