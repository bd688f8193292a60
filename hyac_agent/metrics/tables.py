"""The ``invocations`` table: one row per finished invocation, kept for a few days.

It lives in the main store beside the functions it describes, so charts survive a
restart and every agent of a cluster writes to, and reads from, the same place."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, String, Table

from hyac_agent.store.tables import metadata

invocations = Table(
    "invocations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),  # when it ended (unix seconds)
    Column("tenant", String(63), nullable=False),
    Column("function", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("cold", Boolean, nullable=False),
    # "ok", "function_error", or the error code that ended it (timeout, worker_crashed, ...)
    Column("outcome", String(32), nullable=False),
    Column("status", Integer, nullable=False),
    Column("request_bytes", Integer, nullable=False),
    Column("response_bytes", Integer, nullable=False),
    Index("ix_invocations_ts", "ts"),
    Index("ix_invocations_tenant_ts", "tenant", "ts"),
    Index("ix_invocations_tenant_function_ts", "tenant", "function", "ts"),
)
