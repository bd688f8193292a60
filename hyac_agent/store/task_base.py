"""The store's task interface: the durable record of background tasks."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class TaskRecord:
    """One background task as the store keeps it (see ``store/task_tables.py``)."""

    id: str
    tenant: str
    function: str
    version: int
    status: str
    request: str
    client_ip: str
    attempt: int
    failures: int
    lost: int
    max_attempts: int
    created_at: float
    run_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    lease_owner: str | None
    lease_expires: float | None
    run_request_id: str | None
    dispatched_at: float | None
    progress: float | None
    progress_message: str
    result: str | None
    error: str | None
    callback_url: str | None
    callback_status: str | None
    callback_attempts: int
    callback_next_at: float | None
    #: when a retry queued it again (the max age counts from here); None: created_at
    queued_at: float | None = None
    #: runs made before the last retry (a retry starts a new round of attempts)
    earlier_attempts: int | None = None
    #: the trigger that made the task, as JSON (``TaskInfo.trigger``); None: a call
    started_by: str | None = None


class TaskStore(Protocol):
    """The task half of the store. Every change of a task's status is one guarded
    UPDATE (``WHERE status IN …``, and for a run, ``AND run_request_id = …``), so two
    processes sharing one database can never both claim or both finish one run."""

    @abc.abstractmethod
    def create_task(self, record: TaskRecord) -> None: ...

    @abc.abstractmethod
    def create_tasks(self, records: Sequence[TaskRecord]) -> None:
        """Store every one of ``records`` in one transaction, or none of them."""

    @abc.abstractmethod
    def finish_runs(self, runs: Sequence[tuple[str, str, dict[str, Any]]]) -> list[bool]:
        """``finish_run`` of each (task id, request id, values), in one transaction; for
        each, whether it applied."""

    @abc.abstractmethod
    def get_task(self, task_id: str) -> TaskRecord | None: ...

    @abc.abstractmethod
    def list_tasks(
        self, tenant: str, function: str | None, status: str | None, limit: int
    ) -> list[TaskRecord]:
        """Newest first."""

    @abc.abstractmethod
    def due_tasks(self, now: float, limit: int, exclude: Iterable[str] = ()) -> list[str]:
        """Ids of tasks ready to be claimed: waiting and due, or running on a lost lease."""

    @abc.abstractmethod
    def claim_task(
        self, task_id: str, owner: str, request_id: str, now: float, lease: float
    ) -> TaskRecord | None:
        """Start a run of a due task (attempt + 1) and lease it to ``owner``; None if it
        is not claimable (already running elsewhere, finished, not yet due)."""

    @abc.abstractmethod
    def claim_found(
        self, task_id: str, owner: str, request_id: str, now: float, lease: float
    ) -> tuple[TaskRecord, TaskRecord] | None:
        """``claim_task`` that also hands back the task as it was found, read in the same
        transaction: (found, claimed), or None if it is not claimable."""

    @abc.abstractmethod
    def claim_due(
        self, now: float, limit: int, exclude: Iterable[str], owner: str, lease: float,
        new_request_id: Callable[[], str],
    ) -> list[tuple[TaskRecord, TaskRecord]]:
        """Claim up to ``limit`` due tasks (``due_tasks``) for ``owner``, each under a
        request id of its own: (the task as found, the task as claimed) of each claim
        that held; one call instead of a look and a read and a claim per task."""

    @abc.abstractmethod
    def renew_lease(self, task_id: str, request_id: str, until: float) -> bool:
        """Extend the lease of run ``request_id``; False once the run is no longer the
        task's current one (cancelled, or taken over after the lease expired)."""

    @abc.abstractmethod
    def finish_run(self, task_id: str, request_id: str, values: dict[str, Any]) -> bool:
        """Record the outcome of run ``request_id`` if it is still the current one."""

    @abc.abstractmethod
    def release_task(self, task_id: str, request_id: str, now: float) -> bool:
        """Put run ``request_id`` back in the queue, due at ``now``, its attempt not
        counted (its runner is stopping; nothing failed); False if it is not current."""

    @abc.abstractmethod
    def cancel_task(self, task_id: str, now: float) -> str | None:
        """Cancel a task that has not ended; the status it had, or None if it had ended."""

    @abc.abstractmethod
    def revive_task(self, task_id: str, now: float) -> bool:
        """Queue a dead or cancelled task again with a fresh retry budget."""

    @abc.abstractmethod
    def set_task_progress(self, request_id: str, fraction: float, message: str) -> str | None:
        """Record progress of the running task whose current run is ``request_id``;
        the task id, or None if no running task has that run."""

    @abc.abstractmethod
    def task_of_request(self, request_id: str) -> TaskRecord | None: ...

    @abc.abstractmethod
    def mark_dispatched(self, now: float, waiting_after: float, limit: int) -> list[str]:
        """Ids of tasks that need a (new) broker message: running on a lease that expired
        since their last dispatch, or due and waiting ``waiting_after`` seconds since it.
        Each is marked dispatched now, so concurrent sweepers send each only once."""

    @abc.abstractmethod
    def due_callbacks(self, now: float, limit: int) -> list[str]: ...

    @abc.abstractmethod
    def claim_callback(self, task_id: str, now: float, hold: float) -> TaskRecord | None:
        """Take one delivery attempt of a pending callback (held for ``hold`` seconds)."""

    @abc.abstractmethod
    def record_callback(
        self, task_id: str, status: str, attempts: int, next_at: float | None
    ) -> None: ...
