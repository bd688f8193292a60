"""Tables of the tenancy layer: tenants, users, roles, tokens, secrets, env, quotas,
usage counters, the audit log and stored objects. They live in the main store's
database, beside the functions, in their own ``MetaData`` so the tenancy layer creates
and owns them. Columns added since a table was first made are added to it on start
(:data:`ADDED_COLUMNS`)."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, LargeBinary, MetaData, String, Table, Text

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("created_at", Float, nullable=False),
    #: "none", "allow", or a JSON list of CIDRs and host names
    Column("egress", Text, nullable=False, default="none"),
)

users = Table(
    "users",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("owner", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    #: stable and never reused: a user removed and added again under its name is another
    #: principal in the audit log ("usr_" + 16 hex; added to older stores on start)
    Column("id", String(32)),
)

memberships = Table(
    "memberships",
    metadata,
    Column("user", String(63), primary_key=True),
    Column("tenant", String(63), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_memberships_tenant", "tenant"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("user", String(63), nullable=False),
    Column("tenant", String(63)),
    Column("name", String(128), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
    Column("created_by", String(63), nullable=False, default=""),
    #: the token that made this one (None: the agent's token): revoking or the expiry of
    #: a token ends every token it made, transitively
    Column("parent", String(32)),
    Index("ix_tokens_parent", "parent"),
)

secrets = Table(
    "tenant_secrets",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("value", Text, nullable=False),  # Fernet token: encrypted at rest
    Column("updated_at", Float, nullable=False),
)

env = Table(
    "tenant_env",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

#: quota limits: tenant "*" holds the platform's defaults and ceilings
quotas = Table(
    "quotas",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("name", String(32), primary_key=True),
    Column("value", Float, nullable=False),
)

#: executions and mails counted per window ("m:<minute>", "d:<day>", "mail:d:<day>"), so they
#: survive a restart
usage = Table(
    "usage_counters",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("window", String(32), primary_key=True),
    Column("count", Integer, nullable=False),
)

#: context.storage: a tenant's objects, bytes and all, in the main store's database
objects = Table(
    "tenant_objects",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("key", String(1024), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("size", Integer, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("updated_at", Float, nullable=False),
    #: where the bytes are: NULL in the row's ``data`` (built-in), "s3" in the configured
    #: bucket (``data`` empty); see hyac_agent/integrations/s3.py
    Column("location", String(16)),
)

audit = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("actor", String(63), nullable=False),
    #: who acted, as no name can imitate: "owner" (the agent's token) or "user" and the
    #: user's id, and the token used (None in rows written before these columns)
    Column("actor_kind", String(16)),
    Column("actor_id", String(40)),
    Column("actor_token", String(32)),
    Column("tenant", String(63)),
    Column("action", String(32), nullable=False),
    Column("target", String(256)),
    Column("result", Integer, nullable=False),
    Column("client", String(64)),
    Index("ix_audit_tenant_ts", "tenant", "ts"),
)

#: columns added to tables that older stores already have: (table, column)
ADDED_COLUMNS = [(users, "id"), (tokens, "parent"), (audit, "actor_kind"), (audit, "actor_id"),
                 (audit, "actor_token"), (objects, "location")]
