"""The ``tasks`` table: the durable record of every background task.

The queue engine (embedded or Celery) only carries task ids; status, attempts, the
lease of the run in progress, progress, result and error live here, so that a task
survives the death of any process that carried or ran it.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from hyac_agent.store.tables import metadata

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("function", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("request", Text, nullable=False),  # the InvokeRequest, as JSON
    Column("client_ip", String(64), nullable=False, default=""),
    # runs started / runs that failed (only these count against the retries) / runs lost
    Column("attempt", Integer, nullable=False, default=0),
    Column("failures", Integer, nullable=False, default=0),
    Column("lost", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("run_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("updated_at", Float, nullable=False),
    # the run in progress: who holds it, until when, under which request id
    Column("lease_owner", String(128)),
    Column("lease_expires", Float),
    Column("run_request_id", String(64)),
    # set when a broker message was (re)sent for a waiting task, so sweeps do not flood
    Column("dispatched_at", Float),
    Column("progress", Float),
    Column("progress_message", Text, nullable=False, default=""),
    Column("result", Text),  # TaskResult JSON
    Column("error", Text),  # TaskError JSON
    Column("callback_url", Text),
    Column("callback_status", String(16)),
    Column("callback_attempts", Integer, nullable=False, default=0),
    Column("callback_next_at", Float),
    Column("queued_at", Float),  # set by a retry: the max age counts from it
    Column("earlier_attempts", Integer),  # runs before the last retry; NULL: none
    Column("started_by", Text),  # the trigger that made it (JSON); NULL: a call
    Index("ix_tasks_status_run_at", "status", "run_at"),
    Index("ix_tasks_tenant_created", "tenant", "created_at"),
    Index("ix_tasks_run_request", "run_request_id"),
    Index("ix_tasks_callback", "callback_status", "callback_next_at"),
)
