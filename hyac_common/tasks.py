"""The statuses of a background task, and the sets of them the agent and the CLI reason with.

``TaskStatus`` is a str enum: each member is its own word, so the store's column, the
API's JSON and comparisons with a plain string hold exactly what they held before.

    queued ──claimed──▶ running ──returned──▶ succeeded
      ▲                   │ raised, crashed, timed out: retries left ──▶ failed ──▶ (claimed again)
      │                   │ no retries left, or expired before it ran ──▶ dead
      │                 cancel (queued, failed or running) ──▶ cancelled
      └── retry (dead or cancelled)
"""

from __future__ import annotations

from enum import Enum
from typing import Literal


class TaskStatus(str, Enum):
    QUEUED = "queued"
    """Waits for its ``run_at`` and a runner."""
    RUNNING = "running"
    """A runner holds its lease (claimable again once the lease runs out)."""
    SUCCEEDED = "succeeded"
    """Its function returned; the task holds the response."""
    FAILED = "failed"
    """A run failed and retries are left: waits for its backoff, then runs again."""
    DEAD = "dead"
    """Failed with no retries left, lost too often, or expired before it ran."""
    CANCELLED = "cancelled"
    """Cancelled through the API; its run, if any, was stopped."""

    def __str__(self) -> str:
        return self.value


#: the wire models' field type: the same words, an inline list of strings in the OpenAPI
#: document (a test holds it to the enum)
TaskStatusName = Literal[
    TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED, TaskStatus.FAILED,
    TaskStatus.DEAD, TaskStatus.CANCELLED,
]

#: statuses a task never leaves on its own (``retry`` revives dead and cancelled ones)
TERMINAL: tuple[TaskStatus, ...] = (TaskStatus.SUCCEEDED, TaskStatus.DEAD, TaskStatus.CANCELLED)
#: waiting for their ``run_at``, then claimable
WAITING: tuple[TaskStatus, ...] = (TaskStatus.QUEUED, TaskStatus.FAILED)
#: not ended: what a runner may claim (a running one once its lease ran out) and cancel stops
UNFINISHED: tuple[TaskStatus, ...] = (*WAITING, TaskStatus.RUNNING)
#: what ``retry`` revives
RETRYABLE: tuple[TaskStatus, ...] = (TaskStatus.DEAD, TaskStatus.CANCELLED)

#: the codes of a task's error that are the queue's own; the others are those of the run
#: that failed (hyac_common/errors.py: function_error, timeout, worker_crashed, …)
TASK_EXPIRED = "expired"
"""It waited past its ``task_max_age`` and was not run."""
TASK_LOST = "lost"
"""The processes running it vanished too many times."""
