"""The store keeps functions, versions, tenant data and logs.

``Store`` is the interface; ``SqlStore`` implements it on SQLAlchemy 2 (SQLite with
WAL by default, PostgreSQL by giving a ``postgresql+psycopg://`` URL).
"""

from hyac_agent.store.base import (
    LOG_LINE_OVERHEAD,
    FunctionRecord,
    LogRetention,
    Store,
    TaskRecord,
    VersionRecord,
    owned_elsewhere,
)
from hyac_agent.store.sql import SqlStore

__all__ = [
    "LOG_LINE_OVERHEAD", "FunctionRecord", "LogRetention", "SqlStore", "Store", "TaskRecord",
    "VersionRecord", "owned_elsewhere",
]
