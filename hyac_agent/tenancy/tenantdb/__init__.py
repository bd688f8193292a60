"""Each tenant's own SQL database, reached by functions through ``db.*`` host calls.

One interface (:class:`TenantDatabases`, in ``base``) and one module per dialect: SQLite
files by default (``sqlite``), a database and role per tenant with a PostgreSQL store
(``postgres``). ``TenantDatabases(data_dir, store_url)`` is the dialect of the store.

A transaction (``db.begin``) holds one connection for the request that opened it until
``db.commit``/``db.rollback``, or until that request ends (then it is rolled back). The
storage quota is enforced by the database itself, around each statement (``room``: the
bytes the quota leaves the database once the tenant's kv and objects are counted); each
dialect says how.
"""

from hyac_agent.tenancy.tenantdb.base import (
    DEFAULT_CONNECTIONS,
    DEFAULT_STATEMENT_TIMEOUT,
    MAX_ROWS,
    MAX_SQL,
    DatabaseFull,
    TenantDatabases,
    is_write_free,
)

__all__ = [
    "DEFAULT_CONNECTIONS",
    "DEFAULT_STATEMENT_TIMEOUT",
    "MAX_ROWS",
    "MAX_SQL",
    "DatabaseFull",
    "TenantDatabases",
    "is_write_free",
]
