"""The triggers' tables, in the main store's database and in their own ``MetaData``
(made on start when missing)."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, MetaData, String, Table, Text

metadata = MetaData()

#: cron schedules. ``next_run_at`` is the tick to run next: an agent runs it only if its
#: guarded UPDATE moves it on (``WHERE next_run_at = <the tick it saw>``), so one agent
#: of those sharing the store runs each tick.
schedules = Table(
    "trigger_schedules",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("function", String(63), nullable=False),
    Column("cron", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("catch_up", String(8), nullable=False),
    Column("paused", Boolean, nullable=False, default=False),
    Column("origin", String(16), nullable=False),  # "manifest" (hyac.toml) or "api"
    Column("next_run_at", Float, nullable=False),
    Column("last_tick", Float),
    Column("last_task_id", String(40)),
    Column("created_at", Float, nullable=False),
    Index("ix_trigger_schedules_due", "paused", "next_run_at"),
    Index("ix_trigger_schedules_function", "tenant", "function"),
)

#: event subscriptions: storage events of the tenant, or task outcomes of a function
subscriptions = Table(
    "trigger_subscriptions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("function", String(63), nullable=False),
    Column("source", String(16), nullable=False),  # "storage" or "task"
    Column("events", String(64), nullable=False),  # comma-separated
    Column("prefix", Text, nullable=False, default=""),
    Column("watched", String(63)),  # task: the function whose outcomes it takes
    Column("origin", String(16), nullable=False),
    Column("last_task_id", String(40)),
    Column("created_at", Float, nullable=False),
    Index("ix_trigger_subscriptions_source", "tenant", "source"),
)

#: inbound webhooks; the id is the URL's secret-less handle, the secret signs requests
webhooks = Table(
    "trigger_webhooks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("function", String(63), nullable=False),
    Column("scheme", String(16), nullable=False),
    Column("secret", Text, nullable=False),  # Fernet-encrypted with the tenant secrets' key
    Column("last_task_id", String(40)),
    Column("created_at", Float, nullable=False),
    Index("ix_trigger_webhooks_function", "tenant", "function"),
)
