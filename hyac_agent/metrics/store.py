"""Reading and writing invocation records (blocking: call from a thread)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, select

from hyac_agent.metrics.tables import invocations
from hyac_agent.store import tables as store_tables
from hyac_agent.store.bulk import insert_rows


@dataclass(frozen=True)
class InvocationRecord:
    ts: float
    tenant: str
    function: str
    version: int
    duration_ms: float
    cold: bool
    outcome: str
    status: int
    request_bytes: int
    response_bytes: int

    @property
    def failed(self) -> bool:
        return self.outcome != "ok"


class MetricsStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        invocations.create(self.engine, checkfirst=True)

    def append(self, records: Iterable[InvocationRecord]) -> None:
        # Plain tuples: dataclasses.asdict deep-copies every field, which under gateway
        # load cost the event loop a tenth of its time (this thread holds the GIL).
        rows = [tuple(vars(record).values()) for record in records]
        if rows:
            with self.engine.begin() as conn:
                insert_rows(conn, invocations, _FIELDS, rows)

    def expire(self, before: float) -> int:
        """Delete the records that ended before ``before``; how many went."""
        with self.engine.begin() as conn:
            return int(conn.execute(delete(invocations).where(invocations.c.ts < before)).rowcount)

    def query(
        self, tenants: Sequence[str] | None, function: str | None, since: float
    ) -> list[InvocationRecord]:
        """Records since ``since`` of ``tenants`` (None: all), oldest first."""
        return list(self.stream(tenants, function, since))

    def stream(
        self, tenants: Sequence[str] | None, function: str | None, since: float
    ) -> Iterator[InvocationRecord]:
        """The same, read in chunks: a week of records never sits in memory at once."""
        query = select(*(invocations.c[name] for name in _FIELDS)).where(invocations.c.ts >= since)
        if tenants is not None:
            query = query.where(invocations.c.tenant.in_(list(tenants)))
        if function:
            query = query.where(invocations.c.function == function)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=5000).execute(query.order_by(invocations.c.ts))
            for row in result:
                yield InvocationRecord(*row)

    def last_invoked(
        self, tenants: Sequence[str] | None, function: str | None
    ) -> dict[tuple[str, str], float]:
        """(tenant, function) -> when it last ended, over every record kept."""
        query = select(
            invocations.c.tenant, invocations.c.function, func.max(invocations.c.ts)
        ).group_by(invocations.c.tenant, invocations.c.function)
        if tenants is not None:
            query = query.where(invocations.c.tenant.in_(list(tenants)))
        if function:
            query = query.where(invocations.c.function == function)
        with self.engine.connect() as conn:
            return {(row[0], row[1]): float(row[2]) for row in conn.execute(query)}

    # for the scrape: state of the platform as the store holds it ------------------

    def tasks_by_status(self) -> list[tuple[str, str, int]]:
        from hyac_agent.store.task_tables import tasks

        query = select(tasks.c.tenant, tasks.c.status, func.count()).group_by(
            tasks.c.tenant, tasks.c.status
        )
        with self.engine.connect() as conn:
            return [(row[0], row[1], int(row[2])) for row in conn.execute(query)]

    def log_bytes(self, line_overhead: int) -> list[tuple[str, int]]:
        """Per tenant: the bytes its stored log lines count against its retention."""
        logs = store_tables.logs
        query = select(
            logs.c.tenant, func.sum(func.length(logs.c.message) + line_overhead)
        ).group_by(logs.c.tenant)
        with self.engine.connect() as conn:
            return [(row[0], int(row[1] or 0)) for row in conn.execute(query)]


_FIELDS = [name for name in InvocationRecord.__dataclass_fields__]
