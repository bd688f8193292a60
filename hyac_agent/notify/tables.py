"""The notification tables: channels (their settings encrypted), the delivery log (which
is also the durable delivery queue), alert rules and the state of each alert.

They live in the main store's database, so every agent of a cluster sends from, and
reports on, the same log."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    inspect,
)

metadata = MetaData()

#: tenant "*" holds the platform's channels (the owner's)
PLATFORM = "*"

channels = Table(
    "notify_channels",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("type", String(16), nullable=False),
    #: Fernet token of the JSON settings (webhook URL, recipients, signing key)
    Column("secret", Text, nullable=False),
    #: what may be shown of the settings: the URL's host, the recipients' count
    Column("summary", String(255), nullable=False),
    #: platform channels only: tenants' functions may send to it as "platform/NAME"
    Column("shared", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
)

deliveries = Table(
    "notify_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    #: whose channel it goes to ("*": a platform channel)
    Column("tenant", String(63), nullable=False),
    Column("channel", String(63), nullable=False),
    #: who sent it: a tenant (a function or a test) or "*" (a platform alert)
    Column("sender", String(63), nullable=False),
    #: "function", "test" or "alert"
    Column("source", String(16), nullable=False),
    Column("message", Text, nullable=False),  # the Message, as JSON
    #: pending (to be sent, again), delivered, failed (given up)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", Float),
    #: an agent sending it holds it until then; after, another may take it over
    Column("claimed_until", Float),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_notify_deliveries_due", "status", "next_at"),
    Index("ix_notify_deliveries_sender", "sender", "created_at"),
    Index("ix_notify_deliveries_tenant", "tenant", "created_at"),
)

alert_rules = Table(
    "notify_alert_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("channel", String(63), nullable=False),  # a platform channel
    Column("options", Text, nullable=False),  # JSON: threshold, window, min_calls
    Column("created_at", Float, nullable=False),
)

alert_state = Table(
    "notify_alert_state",
    metadata,
    #: "r{rule}:{condition}" for conditions; "cursor:{kind}" for event cursors
    Column("key", String(255), primary_key=True),
    Column("active", Boolean, nullable=False),
    Column("title", String(255), nullable=False, default=""),
    #: when it fired (conditions), or the last event seen (cursors)
    Column("since", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)


def forget(conn: Connection, tenant: str) -> None:
    """Delete, in the caller's transaction, a removed tenant's channels and what it sent,
    so a tenant made again under the name starts with none of them."""
    if not inspect(conn).has_table(channels.name):
        return  # notifications never ran on this store
    conn.execute(delete(channels).where(channels.c.tenant == tenant))
    conn.execute(delete(deliveries).where(
        (deliveries.c.tenant == tenant) | (deliveries.c.sender == tenant)))
