"""The store on SQLAlchemy 2: SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    Engine,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from hyac_agent.store import tables as t
from hyac_agent.store.base import (
    LOG_LINE_OVERHEAD,
    FunctionRecord,
    LogRetention,
    Store,
    VersionRecord,
    owned_elsewhere,
)
from hyac_agent.store.bulk import insert_rows
from hyac_agent.store.tasks_sql import SqlTaskStore
from hyac_common.errors import NotFound
from hyac_common.wire import FunctionConfig, LogRecord, SampleRequest

#: the columns of a log line, in the order append_logs gives them
_LOG_COLUMNS = ("ts", "tenant", "function", "version", "request_id", "stream", "level", "message")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable against a crash of the agent process (not of the machine's power).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class SqlStore(SqlTaskStore, Store):
    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def create_schema(self) -> None:
        from hyac_agent.edge.store import EdgeStore

        t.metadata.create_all(self.engine)
        EdgeStore(self.engine).create_schema()  # delete_function removes a function's rows
        for index in (t.logs_by_tenant, t.logs_by_time):  # stores made before they existed
            index.create(self.engine, checkfirst=True)
        _add_missing_columns(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # functions and versions ------------------------------------------------------------

    @staticmethod
    def _version(row: Any, tenant: str, name: str) -> VersionRecord:
        return VersionRecord(
            tenant=tenant,
            function=name,
            number=row.number,
            sha256=row.sha256,
            entry=row.entry,
            config=FunctionConfig.model_validate_json(row.config),
            created_at=row.created_at,
            sample=SampleRequest.model_validate_json(row.sample) if row.sample else None,
        )

    def _function_row(self, conn: Connection, tenant: str, name: str) -> Any:
        return conn.execute(
            select(t.functions).where(t.functions.c.tenant == tenant, t.functions.c.name == name)
        ).first()

    def _locked_function_row(
        self, conn: Connection, tenant: str, name: str, project: str | None, now: float
    ) -> Any:
        """The function's row, made if new, locked until ``conn``'s transaction ends, so
        concurrent deploys of one function take their version numbers one at a time.

        The insert comes first and writes even when the row exists (ON CONFLICT DO
        NOTHING): on SQLite the transaction holds the database's write lock from here on,
        so what it reads next is the latest; on PostgreSQL the row is locked (FOR UPDATE)
        and each statement after it sees what the deploy before it committed."""
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(t.functions).values(
                tenant=tenant, name=name, active_version=0, created_at=now, updated_at=now,
                project=project,
            ).on_conflict_do_nothing(index_elements=["tenant", "name"])
        )
        return conn.execute(
            select(t.functions)
            .where(t.functions.c.tenant == tenant, t.functions.c.name == name)
            .with_for_update()
        ).one()

    def record_deploy(
        self, tenant: str, name: str, sha256: str, entry: str, config: FunctionConfig,
        *, project: str | None = None, take_over: bool = False, bundle: bytes | None = None,
        sample: SampleRequest | None = None,
    ) -> tuple[VersionRecord, bool]:
        now = time.time()
        with self.engine.begin() as conn:
            if bundle is not None:
                _keep_blob(conn, sha256, bundle, now)
            row = self._locked_function_row(conn, tenant, name, project, now)
            function_id = row.id
            if project is not None and row.project != project:
                if row.project is not None and not take_over:
                    raise owned_elsewhere(name, row.project, project)
                conn.execute(update(t.functions).where(t.functions.c.id == function_id)
                             .values(project=project))
            existing = conn.execute(
                select(t.versions).where(
                    t.versions.c.function_id == function_id, t.versions.c.sha256 == sha256
                )
            ).first()
            if existing is not None:
                if row.active_version != existing.number:
                    conn.execute(
                        update(t.functions)
                        .where(t.functions.c.id == function_id)
                        .values(active_version=existing.number, updated_at=now)
                    )
                return self._version(existing, tenant, name), False
            last = conn.execute(
                select(func.max(t.versions.c.number)).where(t.versions.c.function_id == function_id)
            ).scalar()
            number = (last or 0) + 1
            conn.execute(
                insert(t.versions).values(
                    function_id=function_id,
                    number=number,
                    sha256=sha256,
                    entry=entry,
                    config=config.model_dump_json(),
                    created_at=now,
                    sample=sample.model_dump_json() if sample is not None else None,
                )
            )
            conn.execute(
                update(t.functions)
                .where(t.functions.c.id == function_id)
                .values(active_version=number, updated_at=now)
            )
        record = VersionRecord(tenant, name, number, sha256, entry, config, now, sample)
        return record, True

    def _function_record(self, conn: Connection, row: Any) -> FunctionRecord:
        count = conn.execute(
            select(func.count()).select_from(t.versions).where(t.versions.c.function_id == row.id)
        ).scalar_one()
        return FunctionRecord(
            tenant=row.tenant,
            name=row.name,
            active_version=row.active_version,
            versions=count,
            created_at=row.created_at,
            updated_at=row.updated_at,
            project=row.project,
        )

    def get_function(self, tenant: str, name: str) -> FunctionRecord | None:
        with self.engine.connect() as conn:
            row = self._function_row(conn, tenant, name)
            return None if row is None else self._function_record(conn, row)

    def list_functions(self, tenant: str) -> list[FunctionRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.functions).where(t.functions.c.tenant == tenant).order_by(t.functions.c.name)
            ).all()
            return [self._function_record(conn, row) for row in rows]

    def delete_function(self, tenant: str, name: str) -> list[str] | None:
        from hyac_agent.edge.store import forget

        with self.engine.begin() as conn:
            row = self._function_row(conn, tenant, name)
            if row is None:
                return None
            conn.execute(delete(t.versions).where(t.versions.c.function_id == row.id))
            conn.execute(delete(t.functions).where(t.functions.c.id == row.id))
            # its edge settings go with it: a new function of the name must not inherit
            # the old one's access mode, keys or domains
            return forget(conn, tenant, name)

    def function_tenants(self) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.functions.c.tenant).distinct()).all()
        return sorted(row[0] for row in rows)

    def list_versions(self, tenant: str, name: str) -> list[VersionRecord]:
        with self.engine.connect() as conn:
            row = self._function_row(conn, tenant, name)
            if row is None:
                return []
            rows = conn.execute(
                select(t.versions)
                .where(t.versions.c.function_id == row.id)
                .order_by(t.versions.c.number)
            ).all()
            return [self._version(v, tenant, name) for v in rows]

    def version_with(self, tenant: str, name: str, sha256: str) -> VersionRecord | None:
        with self.engine.connect() as conn:
            version = conn.execute(
                select(t.versions)
                .join(t.functions, t.functions.c.id == t.versions.c.function_id)
                .where(t.functions.c.tenant == tenant, t.functions.c.name == name,
                       t.versions.c.sha256 == sha256)
                .order_by(t.versions.c.number)
            ).first()
            return None if version is None else self._version(version, tenant, name)

    def get_version(self, tenant: str, name: str, number: int | None = None) -> VersionRecord | None:
        with self.engine.connect() as conn:
            row = self._function_row(conn, tenant, name)
            if row is None:
                return None
            wanted = row.active_version if number is None else number
            version = conn.execute(
                select(t.versions).where(
                    t.versions.c.function_id == row.id, t.versions.c.number == wanted
                )
            ).first()
            return None if version is None else self._version(version, tenant, name)

    def set_active_version(self, tenant: str, name: str, number: int) -> VersionRecord:
        with self.engine.begin() as conn:
            row = self._function_row(conn, tenant, name)
            if row is None:
                raise NotFound(f"function {name!r} not found")
            version = conn.execute(
                select(t.versions).where(
                    t.versions.c.function_id == row.id, t.versions.c.number == number
                )
            ).first()
            if version is None:
                raise NotFound(f"function {name!r} has no version {number}")
            conn.execute(
                update(t.functions)
                .where(t.functions.c.id == row.id)
                .values(active_version=number, updated_at=time.time())
            )
            return self._version(version, tenant, name)

    # bundles ----------------------------------------------------------------------------

    def get_blob(self, sha256: str) -> tuple[bytes, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.blobs).where(t.blobs.c.sha256 == sha256)).first()
            if row is None:
                return None
            parts = conn.execute(
                select(t.blob_chunks.c.data).where(t.blob_chunks.c.sha256 == sha256)
                .order_by(t.blob_chunks.c.seq)
            ).scalars().all()
        return b"".join(parts), row.digest

    def put_blob(self, sha256: str, data: bytes) -> None:
        with self.engine.begin() as conn:
            _keep_blob(conn, sha256, data, time.time())

    def blob_names(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(t.blobs.c.sha256)).scalars())

    def collect_blobs(self, older_than: float) -> int:
        unused = ~exists().where(t.versions.c.sha256 == t.blobs.c.sha256)
        with self.engine.begin() as conn:
            # A deploy that touched a blob since (used_at, under its row lock on
            # PostgreSQL) keeps it; its chunks go with it (ON DELETE CASCADE).
            return int(conn.execute(
                delete(t.blobs).where(unused, t.blobs.c.used_at < older_than)
            ).rowcount)

    # tenant key-value -------------------------------------------------------------------

    def kv_get(self, tenant: str, key: str) -> Any:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(t.kv.c.value).where(t.kv.c.tenant == tenant, t.kv.c.key == key)
            ).scalar()
        return None if value is None else json.loads(value)

    def kv_set(self, tenant: str, key: str, value: Any) -> None:
        encoded = json.dumps(value)
        now = time.time()
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(t.kv)
                .where(t.kv.c.tenant == tenant, t.kv.c.key == key)
                .values(value=encoded, updated_at=now)
            ).rowcount
            if not changed:
                conn.execute(insert(t.kv).values(tenant=tenant, key=key, value=encoded, updated_at=now))

    def kv_delete(self, tenant: str, key: str) -> bool:
        with self.engine.begin() as conn:
            deleted = conn.execute(
                delete(t.kv).where(t.kv.c.tenant == tenant, t.kv.c.key == key)
            ).rowcount
        return bool(deleted)

    def kv_list(self, tenant: str, prefix: str, limit: int) -> list[str]:
        query = select(t.kv.c.key).where(t.kv.c.tenant == tenant)
        if prefix:
            # Range scan rather than LIKE, so '%' and '_' in a prefix mean themselves.
            query = query.where(t.kv.c.key >= prefix, t.kv.c.key < prefix + "\U0010ffff")
        with self.engine.connect() as conn:
            return list(conn.execute(query.order_by(t.kv.c.key).limit(limit)).scalars())

    # logs -------------------------------------------------------------------------------

    def append_logs(self, records: Iterable[LogRecord]) -> None:
        # Tuples, not model_dump() (a dict per line, on a thread holding the GIL)
        rows = [(r.ts, r.tenant, r.function, r.version, r.request_id, r.stream, r.level,
                 r.message) for r in records]
        if rows:
            with self.engine.begin() as conn:
                insert_rows(conn, t.logs, _LOG_COLUMNS, rows)

    def query_logs(
        self, tenant: str, function: str | None, since: float | None, limit: int
    ) -> list[LogRecord]:
        query = select(t.logs).where(t.logs.c.tenant == tenant)
        if function:
            query = query.where(t.logs.c.function == function)
        if since is not None:
            query = query.where(t.logs.c.ts >= since)
        query = query.order_by(t.logs.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            LogRecord(
                ts=r.ts, tenant=r.tenant, function=r.function, version=r.version,
                request_id=r.request_id, stream=r.stream, level=r.level, message=r.message,
            )
            for r in reversed(rows)
        ]

    def trim_logs(self, tenant: str, retention: LogRetention) -> int:
        # Running totals from the tenant's newest line back: the newest line past either
        # limit, and every line older than it, goes.
        newest_first = t.logs.c.id.desc()
        ranked = (
            select(
                t.logs.c.id,
                func.sum(func.length(t.logs.c.message) + LOG_LINE_OVERHEAD)
                .over(order_by=newest_first).label("kept_bytes"),
                func.row_number().over(order_by=newest_first).label("kept_lines"),
            )
            .where(t.logs.c.tenant == tenant)
            .subquery()
        )
        with self.engine.begin() as conn:
            cutoff = conn.execute(
                select(func.max(ranked.c.id)).where(or_(
                    ranked.c.kept_bytes > retention.bytes, ranked.c.kept_lines > retention.lines
                ))
            ).scalar()
            if cutoff is None:
                return 0
            return int(conn.execute(
                delete(t.logs).where(t.logs.c.tenant == tenant, t.logs.c.id <= cutoff)
            ).rowcount)

    def expire_logs(self, before: float) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(delete(t.logs).where(t.logs.c.ts < before)).rowcount)


#: bundles are stored in pieces of at most this many bytes (one row each)
BLOB_CHUNK = 1024 * 1024


def _keep_blob(conn: Connection, sha256: str, data: bytes, now: float) -> None:
    """Store bundle ``sha256`` if it is not there; mark it used ``now`` either way (the
    update takes the row's lock, so a garbage collection in flight cannot delete it)."""
    touched = conn.execute(
        update(t.blobs).where(t.blobs.c.sha256 == sha256).values(used_at=now)
    ).rowcount
    if touched:
        return
    chunks = [data[i:i + BLOB_CHUNK] for i in range(0, len(data), BLOB_CHUNK)] or [b""]
    try:
        with conn.begin_nested():  # a deploy of the same bundle on another agent may win
            conn.execute(insert(t.blobs).values(
                sha256=sha256, digest=hashlib.sha256(data).hexdigest(), size=len(data),
                chunks=len(chunks), created_at=now, used_at=now,
            ))
            for seq, chunk in enumerate(chunks):
                conn.execute(insert(t.blob_chunks).values(sha256=sha256, seq=seq, data=chunk))
    except IntegrityError:
        conn.execute(update(t.blobs).where(t.blobs.c.sha256 == sha256).values(used_at=now))


def _add_missing_columns(engine: Engine) -> None:
    """Add the nullable columns a newer Hyac declares to tables an older one created
    (``create_all`` only creates missing tables), so an existing data dir keeps working."""
    from sqlalchemy import inspect
    from sqlalchemy.schema import CreateColumn

    inspector = inspect(engine)
    with engine.begin() as conn:
        for table in t.metadata.sorted_tables:
            if not inspector.has_table(table.name):
                continue
            present = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in present and column.nullable:
                    ddl = CreateColumn(column).compile(dialect=engine.dialect)
                    conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN {ddl}')
