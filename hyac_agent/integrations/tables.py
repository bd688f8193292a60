"""The integrations' table, in the main store's database in its own ``MetaData`` (made
on start when missing)."""

from __future__ import annotations

from sqlalchemy import Column, Float, MetaData, String, Table, Text

metadata = MetaData()

#: one row per configured kind: its plain values as JSON, its secret values as one Fernet
#: token of a JSON object (encrypted with the key of the tenants' secrets)
integrations = Table(
    "integrations",
    metadata,
    Column("kind", String(64), primary_key=True),
    Column("plain", Text, nullable=False, default="{}"),
    Column("secret", Text, nullable=False, default=""),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(63), nullable=False, default=""),
)
