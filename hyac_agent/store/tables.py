"""SQLAlchemy table definitions."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

functions = Table(
    "functions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(63), nullable=False),
    Column("name", String(63), nullable=False),
    Column("active_version", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # the project (hyac.toml's name) whose deploy made it; NULL: deployed by plain API
    Column("project", String(128)),
    UniqueConstraint("tenant", "name", name="uq_function_tenant_name"),
)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "function_id", Integer, ForeignKey("functions.id", ondelete="CASCADE"), nullable=False
    ),
    Column("number", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("entry", Text, nullable=False),
    Column("config", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    # the request to try it with (hyac.toml's sample), JSON; NULL: none (and versions
    # stored before samples were kept)
    Column("sample", Text),
    UniqueConstraint("function_id", "number", name="uq_version_number"),
    Index("ix_version_sha", "function_id", "sha256"),
)

# Function bundles, kept where every agent and worker reaches them: one row per bundle
# (by the bundle's sha256, as versions name it) and its bytes in chunks. ``digest`` is
# the sha256 of the stored bytes, checked by whoever fetches them; ``used_at`` is the
# last deploy that pointed at it (garbage collection spares recently used blobs, so a
# deploy racing a collection keeps its bundle).
blobs = Table(
    "blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("used_at", Float, nullable=False),
)

blob_chunks = Table(
    "blob_chunks",
    metadata,
    Column("sha256", String(64), ForeignKey("blobs.sha256", ondelete="CASCADE"),
           primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

# What changed, written by the database itself (triggers: hyac_agent/cluster/), so every
# agent sharing it can drop what it cached: one row per change of a function's active
# version, a tenant's env, secrets, quotas or edge settings.
changes = Table(
    "changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("tenant", String(63), nullable=False),
    Column("name", String(255), nullable=False),
    Column("at", Float, nullable=False),
)

kv = Table(
    "kv",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("key", String(512), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

logs = Table(
    "logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("tenant", String(63), nullable=False),
    Column("function", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("request_id", String(64)),
    Column("stream", String(16), nullable=False),
    Column("level", String(16)),
    Column("message", Text, nullable=False),
    Index("ix_logs_tenant_function_ts", "tenant", "function", "ts"),
)
# Each tenant's lines newest first (trimming one tenant), and all by age (expiry); made
# on stores from before they existed too.
logs_by_tenant = Index("ix_logs_tenant_id", logs.c.tenant, logs.c.id)
logs_by_time = Index("ix_logs_ts", logs.c.ts)

# The template registry (hyac_agent/templates): one row per published version; its files
# are stored by content hash under the data dir.
template_versions = Table(
    "template_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(48), nullable=False),
    Column("version", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("manifest", Text, nullable=False),
    # who published it: a user id (usr_…) or "owner"; "builtin" for those Hyac ships
    Column("publisher", String(64), nullable=False),
    Column("publisher_name", String(128), nullable=False),
    # pending (seen by its publisher and the owner), approved (all tenants), rejected
    Column("status", String(16), nullable=False),
    Column("scan", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("name", "version", name="uq_template_version"),
)

# Who installed a template, once each: a template's install count is its users, which
# no one can inflate by installing again.
template_installs = Table(
    "template_installs",
    metadata,
    Column("name", String(48), primary_key=True),
    Column("installer", String(64), primary_key=True),
    Column("installed_at", Float, nullable=False),
)

template_ratings = Table(
    "template_ratings",
    metadata,
    Column("name", String(48), primary_key=True),
    Column("rater", String(64), primary_key=True),
    Column("stars", Integer, nullable=False),
    Column("rated_at", Float, nullable=False),
)

template_sources = Table(
    "template_sources",
    metadata,
    Column("url", String(512), primary_key=True),
    Column("added_at", Float, nullable=False),
)

# Each template name's first publisher, by the name's skeleton (how it reads: see
# hyac_agent/templates/service.py): the key makes claiming a name atomic, so two
# publishers cannot both take one name, or two names that read the same, at once.
template_names = Table(
    "template_names",
    metadata,
    Column("skeleton", String(48), primary_key=True),
    Column("name", String(48), nullable=False),
    Column("publisher", String(64), nullable=False),
)
