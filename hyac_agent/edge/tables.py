"""The edge's tables, in the main store's database and in their own ``MetaData``
(made on start when missing)."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

#: allow and deny rules; function and domain NULL: the rule is the tenant's
ip_rules = Table(
    "edge_ip_rules",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("function", String(63)),
    Column("domain", String(253)),
    Column("action", String(8), nullable=False),  # "allow" or "deny"
    Column("cidr", String(64), nullable=False),
    Column("note", String(200), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Index("ix_edge_ip_rules_tenant", "tenant"),
)

#: a function's gateway access; no row: public, no rate limit, no CORS
access = Table(
    "edge_access",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("function", String(63), primary_key=True),
    Column("mode", String(16), nullable=False, default="public"),
    Column("rate_requests", Integer),
    Column("rate_per", Float),
    Column("cors", Text),  # JSON, or NULL: the gateway does not answer for CORS
    Column("signing_secret", Text),  # Fernet token: encrypted at rest
    Column("replay_window", Float),
    Column("updated_at", Float, nullable=False),
)

#: per-function keys, stored as sha256 only
keys = Table(
    "edge_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("function", String(63), nullable=False),
    Column("name", String(128), nullable=False, default=""),
    Column("hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

#: the platform owner's settings (JSON values): trusted proxies, domain suffixes, ...
settings = Table(
    "edge_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

#: custom domains: claims of a host by tenants; one claim per host is active (verified)
domains = Table(
    "edge_domains",
    metadata,
    Column("host", String(253), primary_key=True),
    Column("tenant", String(63), primary_key=True),
    #: the host while the claim is active, else NULL: one active claim per host
    Column("active_host", String(253), unique=True),
    Column("function", String(63)),  # NULL: the tenant's root, /{function}/...
    Column("path_prefix", String(200), nullable=False, default="/"),
    Column("status", String(16), nullable=False),  # "pending" or "active"
    Column("challenge", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("verified_at", Float),
    #: 1: the domain's certificate comes from ACME (the owner's ACME server)
    Column("acme", Integer, nullable=False, default=0),
    Index("ix_edge_domains_tenant", "tenant"),
)

#: TLS certificates of domains, uploaded or obtained by ACME
certificates = Table(
    "edge_certificates",
    metadata,
    Column("host", String(253), primary_key=True),
    Column("tenant", String(63), nullable=False),
    Column("cert_pem", Text, nullable=False),  # the leaf, then its chain
    Column("key_pem", Text, nullable=False),  # Fernet token: encrypted at rest
    Column("not_after", Float, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("source", String(16), nullable=False),  # "upload" or "acme"
    Column("updated_at", Float, nullable=False),
)
