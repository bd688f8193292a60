"""The SQL half of triggers: rows of schedules, subscriptions and webhooks, no validation.

Every read and change names its tenant, except the two that serve no tenant's caller:
the scheduler's look for due ticks, and an inbound webhook found by its id.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, Table, delete, insert, select, update

from hyac_agent.triggers import tables as t

Row = Any  # a SQLAlchemy Row of one of the tables


#: how long a tenant's subscriptions are used from memory before they are read again: a
#: subscription made or removed through another agent takes effect within this
SUBSCRIBERS_FRESH = 1.0


class TriggerStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: (tenant, source) -> (time.monotonic() when read, rows): every storage write and
        #: task end looks its tenant's subscriptions up
        self._subscribers: dict[tuple[str, str], tuple[float, list[Row]]] = {}
        #: moved on by every subscription write here: a read that began before a write
        #: does not keep what it read
        self._generation = 0

    def _subscriptions_changed(self) -> None:
        self._generation += 1
        self._subscribers.clear()

    def create_schema(self) -> None:
        t.metadata.create_all(self.engine)

    # any of the three tables -------------------------------------------------------

    def add(self, table: Table, values: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(table).values(**values))
        if table is t.subscriptions:
            self._subscriptions_changed()

    def of_tenant(self, table: Table, tenant: str, function: str | None = None) -> list[Row]:
        query = select(table).where(table.c.tenant == tenant)
        if function is not None:
            query = query.where(table.c.function == function)
        with self.engine.connect() as conn:
            return list(conn.execute(query.order_by(table.c.function, table.c.created_at)).all())

    def get(self, table: Table, tenant: str, trigger_id: str) -> Row | None:
        with self.engine.connect() as conn:
            return conn.execute(select(table).where(
                table.c.id == trigger_id, table.c.tenant == tenant)).first()

    def remove(self, table: Table, tenant: str, trigger_id: str) -> bool:
        with self.engine.begin() as conn:
            removed = bool(conn.execute(delete(table).where(
                table.c.id == trigger_id, table.c.tenant == tenant)).rowcount)
        if table is t.subscriptions:
            self._subscriptions_changed()
        return removed

    def record_task(self, table: Table, trigger_id: str, task_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(table).where(table.c.id == trigger_id)
                         .values(last_task_id=task_id))

    def remove_tenant(self, tenant: str) -> None:
        with self.engine.begin() as conn:
            for table in (t.schedules, t.subscriptions, t.webhooks):
                conn.execute(delete(table).where(table.c.tenant == tenant))
        self._subscriptions_changed()

    def remove_function(self, tenant: str, function: str) -> None:
        """Every trigger of a function that is gone."""
        with self.engine.begin() as conn:
            for table in (t.schedules, t.subscriptions, t.webhooks):
                conn.execute(delete(table).where(
                    table.c.tenant == tenant, table.c.function == function))
        self._subscriptions_changed()

    # schedules ----------------------------------------------------------------------

    def set_paused(self, tenant: str, schedule_id: str, paused: bool,
                   next_run_at: float | None) -> bool:
        values: dict[str, Any] = {"paused": paused}
        if next_run_at is not None:
            values["next_run_at"] = next_run_at
        with self.engine.begin() as conn:
            return bool(conn.execute(update(t.schedules).where(
                t.schedules.c.id == schedule_id, t.schedules.c.tenant == tenant,
            ).values(**values)).rowcount)

    def due_schedules(self, now: float, limit: int) -> list[Row]:
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(t.schedules)
                .where(t.schedules.c.paused.is_(False), t.schedules.c.next_run_at <= now)
                .order_by(t.schedules.c.next_run_at).limit(limit)
            ).all())

    def claim_tick(self, schedule_id: str, seen: float, next_run_at: float,
                   tick: float | None) -> bool:
        """Move the schedule on from the tick this agent saw; False if another agent
        (or a pause, an edit) moved it first. ``tick``: the tick run now, if any."""
        values: dict[str, Any] = {"next_run_at": next_run_at}
        if tick is not None:
            values["last_tick"] = tick
        with self.engine.begin() as conn:
            return bool(conn.execute(update(t.schedules).where(
                t.schedules.c.id == schedule_id, t.schedules.c.next_run_at == seen,
                t.schedules.c.paused.is_(False),
            ).values(**values)).rowcount)

    def sync_manifest_schedule(self, tenant: str, function: str,
                               values: dict[str, Any] | None) -> None:
        """Make the function's hyac.toml schedule ``values`` (None: none). The same
        schedule is kept as it is (its next tick, whether it is paused)."""
        where = (t.schedules.c.tenant == tenant, t.schedules.c.function == function,
                 t.schedules.c.origin == "manifest")
        with self.engine.begin() as conn:
            row = conn.execute(select(t.schedules).where(*where)).first()
            if values is None:
                conn.execute(delete(t.schedules).where(*where))
            elif row is None:
                conn.execute(insert(t.schedules).values(**values))
            elif (row.cron, row.timezone, row.catch_up) != (
                    values["cron"], values["timezone"], values["catch_up"]):
                conn.execute(update(t.schedules).where(t.schedules.c.id == row.id).values(
                    cron=values["cron"], timezone=values["timezone"],
                    catch_up=values["catch_up"], next_run_at=values["next_run_at"]))

    # subscriptions ------------------------------------------------------------------

    def subscribers(self, tenant: str, source: str) -> list[Row]:
        """``tenant``'s subscriptions to ``source`` events, as read at most
        ``SUBSCRIBERS_FRESH`` ago (at once after a change made here)."""
        cached = self._subscribers.get((tenant, source))
        if cached is not None and time.monotonic() - cached[0] < SUBSCRIBERS_FRESH:
            return cached[1]
        generation, read_at = self._generation, time.monotonic()
        with self.engine.connect() as conn:
            rows = list(conn.execute(select(t.subscriptions).where(
                t.subscriptions.c.tenant == tenant, t.subscriptions.c.source == source)).all())
        if generation == self._generation:
            self._subscribers[(tenant, source)] = (read_at, rows)
        return rows

    def replace_manifest_subscriptions(self, tenant: str, function: str,
                                       rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(t.subscriptions).where(
                t.subscriptions.c.tenant == tenant, t.subscriptions.c.function == function,
                t.subscriptions.c.origin == "manifest"))
            for values in rows:
                conn.execute(insert(t.subscriptions).values(**values))
        self._subscriptions_changed()

    # webhooks -----------------------------------------------------------------------

    def webhook(self, webhook_id: str) -> Row | None:
        """The webhook an inbound request names, whatever its tenant."""
        with self.engine.connect() as conn:
            return conn.execute(select(t.webhooks).where(t.webhooks.c.id == webhook_id)).first()
