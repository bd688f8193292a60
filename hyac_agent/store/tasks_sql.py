"""The task half of the SQL store (SQLite and PostgreSQL alike).

Every transition is a single UPDATE whose WHERE clause states the status it expects
(and, for a run, the run's request id), so the database decides races between
processes: whoever's UPDATE matched a row owns the transition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import Engine, and_, bindparam, case, insert, or_, select, update

from hyac_agent.store.task_base import TaskRecord, TaskStore
from hyac_agent.store.task_tables import tasks
from hyac_common.tasks import RETRYABLE, UNFINISHED, WAITING, TaskStatus


def _record(row: Any) -> TaskRecord:
    return TaskRecord(**row._mapping)  # the table's columns are the record's fields


def _claimable(now: Any) -> Any:  # a time, or the bound parameter that will hold one
    """Waiting and due, or running under a lease that has run out."""
    return or_(
        and_(tasks.c.status.in_(WAITING), tasks.c.run_at <= now),
        and_(tasks.c.status == TaskStatus.RUNNING, tasks.c.lease_expires < now),
    )


# The statements every task runs are built once, with named parameters: building one
# per call (a bound parameter and a cache key per value) cost more than running it.
_INSERT = insert(tasks)
_BY_ID = select(tasks).where(tasks.c.id == bindparam("b_id"))
_CLAIM = update(tasks).where(tasks.c.id == bindparam("b_id"), _claimable(bindparam("b_now"))).values(
    status=TaskStatus.RUNNING, attempt=tasks.c.attempt + 1,
    # a run that was still "running" when claimed was lost by its runner
    lost=tasks.c.lost + case((tasks.c.status == TaskStatus.RUNNING, 1), else_=0),
    lease_owner=bindparam("b_owner"), lease_expires=bindparam("b_lease_expires"),
    run_request_id=bindparam("b_request"), started_at=bindparam("b_now"),
    updated_at=bindparam("b_now"), progress=None, progress_message="",
).returning(*tasks.c)
_DUE_ROWS = (
    select(tasks)
    .where(_claimable(bindparam("b_now")), tasks.c.id.not_in(bindparam("b_skip", expanding=True)))
    .order_by(tasks.c.run_at)
    .limit(bindparam("b_limit"))
)
_DUE = _DUE_ROWS.with_only_columns(tasks.c.id)
#: a run's own UPDATE: the SET clause comes from the keys of the parameters given
_OF_RUN = update(tasks).where(
    tasks.c.id == bindparam("b_id"), tasks.c.status == TaskStatus.RUNNING,
    tasks.c.run_request_id == bindparam("b_request"),
)


class SqlTaskStore(TaskStore):
    engine: Engine

    def create_task(self, record: TaskRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(_INSERT, asdict(record))

    def create_tasks(self, records: Sequence[TaskRecord]) -> None:
        with self.engine.begin() as conn:
            conn.execute(_INSERT, [asdict(record) for record in records])

    def get_task(self, task_id: str) -> TaskRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(_BY_ID, {"b_id": task_id}).first()
        return None if row is None else _record(row)

    def list_tasks(
        self, tenant: str, function: str | None, status: str | None, limit: int
    ) -> list[TaskRecord]:
        query = select(tasks).where(tasks.c.tenant == tenant)
        if function:
            query = query.where(tasks.c.function == function)
        if status:
            query = query.where(tasks.c.status == status)
        query = query.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query).all()]

    def due_tasks(self, now: float, limit: int, exclude: Iterable[str] = ()) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(
                _DUE, {"b_now": now, "b_limit": limit, "b_skip": list(exclude)}
            ).scalars())

    def claim_task(
        self, task_id: str, owner: str, request_id: str, now: float, lease: float
    ) -> TaskRecord | None:
        # One guarded UPDATE that hands back the row (SQLite 3.35+, PostgreSQL): the
        # claim costs one statement, not a read, a write and a read again.
        with self.engine.begin() as conn:
            row = conn.execute(_CLAIM, {
                "b_id": task_id, "b_now": now, "b_owner": owner,
                "b_lease_expires": now + lease, "b_request": request_id,
            }).first()
        return None if row is None else _record(row)

    def claim_found(
        self, task_id: str, owner: str, request_id: str, now: float, lease: float
    ) -> tuple[TaskRecord, TaskRecord] | None:
        # One transaction (one commit) for the read and the guarded UPDATE: the run of a
        # task sent through a broker pays one trip to the store before it starts, not two.
        with self.engine.begin() as conn:
            found = conn.execute(_BY_ID, {"b_id": task_id}).first()
            if found is None:
                return None
            row = conn.execute(_CLAIM, {
                "b_id": task_id, "b_now": now, "b_owner": owner,
                "b_lease_expires": now + lease, "b_request": request_id,
            }).first()
        return None if row is None else (_record(found), _record(row))

    def claim_due(
        self, now: float, limit: int, exclude: Iterable[str], owner: str, lease: float,
        new_request_id: Callable[[], str],
    ) -> list[tuple[TaskRecord, TaskRecord]]:
        with self.engine.connect() as conn:
            found = [_record(row) for row in conn.execute(
                _DUE_ROWS, {"b_now": now, "b_limit": limit, "b_skip": list(exclude)}
            )]
        if not found:
            return []
        claimed = []
        # Each claim is the guarded UPDATE of claim_task: a task another runner claimed
        # since it was found is not matched. One transaction: one commit for them all;
        # rows locked in the order of their ids, as every agent does, so two agents
        # claiming at once wait for each other rather than deadlock (PostgreSQL).
        with self.engine.begin() as conn:
            for before in sorted(found, key=lambda record: record.id):
                row = conn.execute(_CLAIM, {
                    "b_id": before.id, "b_now": now, "b_owner": owner,
                    "b_lease_expires": now + lease, "b_request": new_request_id(),
                }).first()
                if row is not None:
                    claimed.append((before, _record(row)))
        return claimed

    def renew_lease(self, task_id: str, request_id: str, until: float) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(
                _OF_RUN, {"b_id": task_id, "b_request": request_id, "lease_expires": until}
            ).rowcount == 1

    def finish_run(self, task_id: str, request_id: str, values: dict[str, Any]) -> bool:
        return self.finish_runs([(task_id, request_id, values)])[0]

    def finish_runs(self, runs: Sequence[tuple[str, str, dict[str, Any]]]) -> list[bool]:
        with self.engine.begin() as conn:
            return [conn.execute(_OF_RUN, {
                "b_id": task_id, "b_request": request_id, "lease_expires": None, **values,
            }).rowcount == 1 for task_id, request_id, values in runs]

    def release_task(self, task_id: str, request_id: str, now: float) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.status == TaskStatus.RUNNING,
                       tasks.c.run_request_id == request_id)
                .values(status=TaskStatus.QUEUED, attempt=tasks.c.attempt - 1, run_at=now,
                        dispatched_at=now, updated_at=now, lease_owner=None,
                        lease_expires=None, progress=None, progress_message="")
            ).rowcount == 1

    def cancel_task(self, task_id: str, now: float) -> str | None:
        with self.engine.begin() as conn:
            for status in UNFINISHED:
                done = conn.execute(
                    update(tasks)
                    .where(tasks.c.id == task_id, tasks.c.status == status)
                    .values(status=TaskStatus.CANCELLED, finished_at=now, updated_at=now,
                            lease_expires=None,
                            callback_status=_callback_pending(), callback_next_at=now)
                ).rowcount
                if done:
                    return status
        return None

    def revive_task(self, task_id: str, now: float) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.status.in_(RETRYABLE))
                # A new round of attempts: the runs so far are kept apart from it (the
                # attempt number goes on counting), created_at is kept.
                .values(status=TaskStatus.QUEUED, failures=0, lost=0, run_at=now,
                        earlier_attempts=tasks.c.attempt, updated_at=now, queued_at=now,
                        finished_at=None, error=None, result=None, dispatched_at=None,
                        progress=None, progress_message="",
                        callback_status=None, callback_attempts=0, callback_next_at=None)
            ).rowcount == 1

    def set_task_progress(self, request_id: str, fraction: float, message: str) -> str | None:
        with self.engine.begin() as conn:
            row = conn.execute(
                select(tasks.c.id).where(
                    tasks.c.run_request_id == request_id, tasks.c.status == TaskStatus.RUNNING
                )
            ).first()
            if row is None:
                return None
            conn.execute(
                update(tasks)
                .where(tasks.c.id == row.id, tasks.c.run_request_id == request_id,
                       tasks.c.status == TaskStatus.RUNNING)
                .values(progress=fraction, progress_message=message)
            )
            return str(row.id)

    def task_of_request(self, request_id: str) -> TaskRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tasks).where(tasks.c.run_request_id == request_id)).first()
        return None if row is None else _record(row)

    def mark_dispatched(self, now: float, waiting_after: float, limit: int) -> list[str]:
        needs = or_(
            and_(
                tasks.c.status.in_(WAITING), tasks.c.run_at <= now,
                or_(tasks.c.dispatched_at.is_(None), tasks.c.dispatched_at < now - waiting_after),
            ),
            and_(
                tasks.c.status == TaskStatus.RUNNING, tasks.c.lease_expires < now,
                or_(tasks.c.dispatched_at.is_(None),
                    tasks.c.dispatched_at < tasks.c.lease_expires),
            ),
        )
        with self.engine.begin() as conn:
            ids = list(conn.execute(select(tasks.c.id).where(needs).limit(limit)).scalars())
            marked = []
            for task_id in ids:
                if conn.execute(
                    update(tasks).where(tasks.c.id == task_id, needs).values(dispatched_at=now)
                ).rowcount:
                    marked.append(task_id)
        return marked

    def due_callbacks(self, now: float, limit: int) -> list[str]:
        query = (
            select(tasks.c.id)
            .where(tasks.c.callback_status == "pending", tasks.c.callback_next_at <= now)
            .order_by(tasks.c.callback_next_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def claim_callback(self, task_id: str, now: float, hold: float) -> TaskRecord | None:
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.callback_status == "pending",
                       tasks.c.callback_next_at <= now)
                .values(callback_next_at=now + hold)
            ).rowcount
            if not taken:
                return None
            row = conn.execute(select(tasks).where(tasks.c.id == task_id)).first()
        return _record(row)

    def record_callback(
        self, task_id: str, status: str, attempts: int, next_at: float | None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.callback_status == "pending")
                .values(callback_status=status, callback_attempts=attempts,
                        callback_next_at=next_at)
            )


def _callback_pending() -> Any:
    """'pending' where the task has a callback URL, else NULL (in the same UPDATE)."""
    return case((tasks.c.callback_url.is_not(None), "pending"), else_=None)
