"""A tenant's object storage (``context.storage``, ``/v1/storage``): bytes under keys.

Every object has a row in the main store's database (key, size, type, sha256), so every
agent sharing that database sees the same objects, and listing, paging, ``head`` and the
storage quota read those rows whichever backend holds the bytes: the row itself
(built-in: a BLOB on SQLite, a BYTEA on PostgreSQL) or a bucket of an S3-compatible
service (the ``storage`` integration; hyac_agent/integrations/s3.py). New objects go to
the backend in effect; each row says where its bytes are, so objects written before a
switch stay readable until :meth:`ObjectStore.migrate` moves them. Each access names its
tenant: host calls take it from the calling worker, the API from the caller's role. An
object's key and bytes count towards the tenant's ``storage`` quota.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from hyac_agent.tenancy import tables as t
from hyac_common.errors import InvalidInput, PayloadTooLarge, StorageUnavailable
from hyac_common.names import validate_object_key
from hyac_common.wire import ObjectInfo

if TYPE_CHECKING:
    from hyac_agent.integrations.s3 import S3Bucket
    from hyac_agent.integrations.storage import StorageTarget
    from hyac_agent.tenancy.quotas import QuotaService

log = logging.getLogger("hyac.storage")
S3 = "s3"
BUILTIN = "builtin"
MIGRATE_BATCH = 100
T = TypeVar("T")

#: the largest object: one fits in a single API request under the default body limit
MAX_OBJECT_BYTES = 8 * 1024 * 1024
MAX_LIST = 1000
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_CONTENT_TYPE = 255

_INFO = (t.objects.c.key, t.objects.c.size, t.objects.c.content_type, t.objects.c.sha256,
         t.objects.c.updated_at)


def _info(row: Any) -> ObjectInfo:
    return ObjectInfo(key=row.key, size=row.size, content_type=row.content_type,
                      sha256=row.sha256, updated_at=row.updated_at)


def check_content_type(value: object) -> str:
    """A content type as given, or the default for None and ""; InvalidInput if malformed."""
    if value is None or value == "":
        return DEFAULT_CONTENT_TYPE
    if not isinstance(value, str) or len(value) > MAX_CONTENT_TYPE or "/" not in value \
            or not all(32 <= ord(c) < 127 for c in value):
        raise InvalidInput(f"invalid content type {str(value)[:60]!r}: expected type/subtype, "
                           f"printable ASCII, at most {MAX_CONTENT_TYPE} characters")
    return value.strip()


def check_size(size: int) -> None:
    if size > MAX_OBJECT_BYTES:
        raise PayloadTooLarge(f"object of {size} bytes is larger than the {MAX_OBJECT_BYTES} "
                              "bytes an object may hold", limit=MAX_OBJECT_BYTES)


def check_limit(limit: object) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidInput("storage list limit must be a positive integer")
    return min(limit, MAX_LIST)


def builtin_only() -> StorageTarget:
    """Every object in the store's database (no S3 configured)."""
    from hyac_agent.integrations.storage import StorageTarget

    return StorageTarget(BUILTIN, None)


@dataclass
class MigrationProgress:
    """How far a move of objects between backends is: ``done`` of ``total`` objects
    (``bytes`` of them), ``failed`` left where they were (``last_error`` says why)."""

    total: int
    done: int = 0
    bytes: int = 0
    failed: int = 0
    last_error: str = ""


class ObjectStore:
    """Rows of ``tenant_objects`` and the bytes wherever they are; no validation."""

    def __init__(self, engine: Engine, target: Callable[[], StorageTarget] = builtin_only) -> None:
        self.engine = engine
        #: where new objects go, and the bucket (read at each access: it changes live)
        self.target = target

    def _bucket(self) -> S3Bucket:
        bucket = self.target().bucket
        if bucket is None:
            raise StorageUnavailable("this object is kept in S3, and no S3 storage is configured "
                                     "(hyac system integrations show storage)")
        return bucket

    def _place(self, tenant: str, key: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(t.objects.c.location, t.objects.c.sha256).where(
                t.objects.c.tenant == tenant, t.objects.c.key == key)).first()

    def _discard(self, tenant: str, key: str, sha256: str) -> None:
        """Remove bytes no row points at any more; a failure leaves them (logged)."""
        try:
            self._bucket().delete(tenant, key, sha256)
        except StorageUnavailable as exc:
            log.warning("could not remove replaced object bytes of tenant %s: %s", tenant, exc.message)

    def held_in_s3(self, tenant: str) -> list[tuple[str, str]]:
        """(key, sha256) of each of ``tenant``'s objects whose bytes are in S3."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.objects.c.key, t.objects.c.sha256).where(
                t.objects.c.tenant == tenant, t.objects.c.location == S3)).all()
        return [(row.key, row.sha256) for row in rows]

    def discard_all(self, tenant: str, held: list[tuple[str, str]]) -> None:
        """Remove these bytes from S3 (their rows are gone); failures are logged."""
        for key, sha256 in held:
            self._discard(tenant, key, sha256)

    def put(self, tenant: str, key: str, data: bytes, content_type: str) -> ObjectInfo:
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.target()
        values: dict[str, Any] = {"data": data, "size": len(data), "content_type": content_type,
                                  "sha256": sha256, "updated_at": time.time(), "location": None}
        if target.backend == S3 and target.bucket is not None:
            target.bucket.put(tenant, key, data, content_type, sha256)  # before the row
            values.update(data=b"", location=S3)
        old = self._place(tenant, key)
        where = (t.objects.c.tenant == tenant, t.objects.c.key == key)
        try:
            with self.engine.begin() as conn:
                if not conn.execute(update(t.objects).where(*where).values(**values)).rowcount:
                    conn.execute(insert(t.objects).values(tenant=tenant, key=key, **values))
        except IntegrityError:  # another agent inserted the same key first: ours replaces it
            with self.engine.begin() as conn:
                conn.execute(update(t.objects).where(*where).values(**values))
        if old is not None and old.location == S3 and (old.sha256 != sha256 or values["location"] != S3):
            self._discard(tenant, key, old.sha256)
        return ObjectInfo(key=key, **{k: v for k, v in values.items() if k not in ("data", "location")})

    def read(self, tenant: str, key: str) -> tuple[ObjectInfo, bytes] | None:
        for _ in range(3):
            with self.engine.connect() as conn:
                row = conn.execute(select(*_INFO, t.objects.c.data, t.objects.c.location).where(
                    t.objects.c.tenant == tenant, t.objects.c.key == key)).first()
            if row is None:
                return None
            if row.location != S3:
                return _info(row), bytes(row.data)
            data = self._bucket().get(tenant, key, row.sha256)
            if data is not None:
                _check(data, row.sha256, key, "in S3")
                return _info(row), data
            # replaced (by a put or a move) between reading the row and the bytes: again
        raise StorageUnavailable(f"object {key!r} is listed but its bytes are missing from S3")

    def stat(self, tenant: str, key: str) -> ObjectInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_INFO).where(
                t.objects.c.tenant == tenant, t.objects.c.key == key)).first()
        return None if row is None else _info(row)

    def delete(self, tenant: str, key: str) -> bool:
        old = self._place(tenant, key)
        if old is None:
            return False
        with self.engine.begin() as conn:
            removed = bool(conn.execute(delete(t.objects).where(
                t.objects.c.tenant == tenant, t.objects.c.key == key,
                t.objects.c.sha256 == old.sha256)).rowcount)
        if not removed:  # replaced meanwhile: delete what is there now
            return self.delete(tenant, key)
        if old.location == S3:
            self._discard(tenant, key, old.sha256)
        return True

    def list(self, tenant: str, prefix: str, limit: int, start_after: str = "") -> list[ObjectInfo]:
        query = select(*_INFO).where(t.objects.c.tenant == tenant)
        if start_after:
            query = query.where(t.objects.c.key > start_after)
        if prefix:
            # An exact comparison, not LIKE ('%' and '_' are plain characters in a key,
            # and SQLite's LIKE ignores case) nor a range (it depends on the collation).
            query = query.where(func.substr(t.objects.c.key, 1, len(prefix)) == prefix)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.objects.c.key).limit(limit)).all()
        return [_info(r) for r in rows]

    # moving objects between backends ---------------------------------------------------

    @staticmethod
    def _pending(to: str, tenant: str | None) -> Any:
        at_s3 = t.objects.c.location == S3
        condition = at_s3 if to == BUILTIN else or_(t.objects.c.location.is_(None), ~at_s3)
        return condition if tenant is None else condition & (t.objects.c.tenant == tenant)

    def migrate(self, to: str, tenant: str | None,
                progress: Callable[[MigrationProgress], None]) -> MigrationProgress:
        """Move the bytes of every object (of ``tenant``, or of all) not yet in backend
        ``to`` there, one object at a time: read, check the sha256 its row records, write,
        read back and check again, then point the row at the new copy and drop the old
        one. Objects written or removed meanwhile are left as they are; run it again to
        resume after a failure or an interruption (what was moved is not moved again)."""
        if to not in (S3, BUILTIN):
            raise InvalidInput("objects move --to s3 or --to builtin")
        bucket = self._bucket()  # either way: S3 is the source or the destination
        pending = self._pending(to, tenant)
        with self.engine.connect() as conn:
            total = int(conn.execute(select(func.count()).select_from(t.objects).where(pending))
                        .scalar() or 0)
        state = MigrationProgress(total=total)
        progress(state)
        after: tuple[str, str] = ("", "")
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(t.objects.c.tenant, t.objects.c.key, t.objects.c.sha256,
                           t.objects.c.content_type)
                    .where(pending, tuple_(t.objects.c.tenant, t.objects.c.key) > tuple_(*after))
                    .order_by(t.objects.c.tenant, t.objects.c.key).limit(MIGRATE_BATCH)).all()
            if not rows:
                return state
            for row in rows:
                try:
                    state.bytes += self._move(bucket, to, row.tenant, row.key, row.sha256,
                                              row.content_type)
                    state.done += 1
                except StorageUnavailable as exc:
                    state.failed += 1
                    state.last_error = f"{row.tenant}/{row.key}: {exc.message}"
                progress(state)
            after = (rows[-1].tenant, rows[-1].key)

    def _move(self, bucket: S3Bucket, to: str, tenant: str, key: str, sha256: str,
              content_type: str) -> int:
        """Move one object's bytes to ``to``; the bytes moved (0: it changed meanwhile)."""
        where = (t.objects.c.tenant == tenant, t.objects.c.key == key,
                 t.objects.c.sha256 == sha256)
        if to == S3:
            with self.engine.connect() as conn:
                stored = conn.execute(select(t.objects.c.data).where(*where)).scalar()
            if stored is None:
                return 0  # replaced or removed meanwhile
            data = bytes(stored)
            _check(data, sha256, key, "in the store")
            bucket.put(tenant, key, data, content_type, sha256)
            _check(bucket.get(tenant, key, sha256) or b"", sha256, key, "read back from S3")
            with self.engine.begin() as conn:
                moved = conn.execute(update(t.objects).where(
                    *where, self._pending(S3, None)).values(data=b"", location=S3)).rowcount
        else:
            found = bucket.get(tenant, key, sha256)
            if found is None:
                raise StorageUnavailable("its bytes are missing from S3")
            data = found
            _check(data, sha256, key, "in S3")
            with self.engine.begin() as conn:
                moved = conn.execute(update(t.objects).where(*where, t.objects.c.location == S3)
                                     .values(data=data, location=None)).rowcount
                if moved:
                    written = conn.execute(select(t.objects.c.data).where(*where)).scalar()
                    _check(bytes(written or b""), sha256, key, "written to the store")
        now = self._place(tenant, key)
        if not (now is not None and now.location == S3 and now.sha256 == sha256):
            self._discard(tenant, key, sha256)  # the S3 copy serves no row (any more)
        return len(data) if moved else 0

    def footprint(self, tenant: str, key: str | None = None) -> int:
        """Bytes counted against the quota: key plus size, of one object or of all."""
        query = select(func.coalesce(func.sum(func.length(t.objects.c.key) + t.objects.c.size), 0))
        query = query.where(t.objects.c.tenant == tenant)
        if key is not None:
            query = query.where(t.objects.c.key == key)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)


#: told of each put and delete, on the thread that made it: (tenant, "put" or "delete",
#: key, the object written or None); event triggers subscribe
ChangeListener = Callable[[str, str, str, "ObjectInfo | None"], None]


class ObjectService:
    """Validation, the size cap and the storage quota, over an ObjectStore."""

    def __init__(self, engine: Engine, quotas: QuotaService,
                 target: Callable[[], StorageTarget] = builtin_only) -> None:
        self.store = ObjectStore(engine, target)
        self.quotas = quotas
        self._listeners: list[ChangeListener] = []
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def tenant_lock(self, tenant: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(tenant, threading.Lock())

    def subscribe(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def _changed(self, tenant: str, event: str, key: str, info: ObjectInfo | None) -> None:
        for listener in self._listeners:
            listener(tenant, event, key, info)

    def put(self, tenant: str, key: str, data: bytes, content_type: str | None) -> ObjectInfo:
        info = _from_tenant(tenant, lambda: self._put(tenant, key, data, content_type))
        self._changed(tenant, "put", info.key, info)
        return info

    def _put(self, tenant: str, key: str, data: bytes, content_type: str | None) -> ObjectInfo:
        key = validate_object_key(key)
        content_type = check_content_type(content_type)
        check_size(len(data))
        if self.quotas.limit(tenant, "storage") is None:
            return self.store.put(tenant, key, data, content_type)
        # One quota-checked put of a tenant at a time: puts checked together would each
        # see the room only one of them fits in.
        with self.tenant_lock(tenant):
            growth = len(key) + len(data) - self.store.footprint(tenant, key)
            self.quotas.check_storage(tenant, growth)
            return self.store.put(tenant, key, data, content_type)

    def read(self, tenant: str, key: str) -> tuple[ObjectInfo, bytes] | None:
        key = validate_object_key(key)
        return _from_tenant(tenant, lambda: self.store.read(tenant, key))

    def stat(self, tenant: str, key: str) -> ObjectInfo | None:
        return self.store.stat(tenant, validate_object_key(key))

    def delete(self, tenant: str, key: str) -> bool:
        key = validate_object_key(key)
        deleted = _from_tenant(tenant, lambda: self.store.delete(tenant, key))
        if deleted:
            self._changed(tenant, "delete", key, None)
        return deleted

    def list(self, tenant: str, prefix: str = "", limit: int = MAX_LIST,
             start_after: str = "") -> list[ObjectInfo]:
        """Up to ``limit`` objects under ``prefix`` in key order, from the first key after
        ``start_after`` (the last key of the previous page; "" from the start)."""
        if not isinstance(prefix, str):
            raise InvalidInput("storage list prefix must be a string")
        if not isinstance(start_after, str):
            raise InvalidInput("storage list start_after must be a string (a key)")
        return self.store.list(tenant, prefix, check_limit(limit), start_after)

    def bytes_of(self, tenant: str) -> int:
        return self.store.footprint(tenant)

    async def host_call(self, tenant: str, op: str, args: dict[str, Any]) -> Any:
        """``storage.*`` for ``tenant``, the calling worker's own (docs/protocol.md)."""
        if op not in ("storage.put", "storage.get", "storage.stat", "storage.delete",
                      "storage.list"):
            raise InvalidInput(f"unknown host call {op!r}")
        if op == "storage.list":
            prefix, limit = args.get("prefix") or "", args.get("limit", MAX_LIST)
            start_after = args.get("start_after") or ""
            listed = await asyncio.to_thread(self.list, tenant, prefix, limit, start_after)
            return [info.model_dump() for info in listed]
        key = validate_object_key(args.get("key"))
        if op == "storage.put":
            data = _decode(args.get("data_b64"))
            content_type = check_content_type(args.get("content_type"))
            return (await asyncio.to_thread(self.put, tenant, key, data, content_type)).model_dump()
        if op == "storage.get":
            found = await asyncio.to_thread(self.read, tenant, key)
            if found is None:
                return None
            return {**found[0].model_dump(), "data_b64": base64.b64encode(found[1]).decode("ascii")}
        if op == "storage.stat":
            info = await asyncio.to_thread(self.stat, tenant, key)
            return None if info is None else info.model_dump()
        return await asyncio.to_thread(self.delete, tenant, key)


def _from_tenant(tenant: str, work: Callable[[], T]) -> T:
    """``work()`` for a tenant: what went wrong with S3 goes to the agent's log, and the
    tenant is told only that the storage is unavailable (not where it is, nor why)."""
    try:
        return work()
    except StorageUnavailable as exc:
        log.warning("object storage of tenant %s: %s", tenant, exc.message)
        raise StorageUnavailable("the platform's object storage is unavailable; try again later "
                                 "(the agent's log says why)") from None


def _check(data: bytes, sha256: str, key: str, where: str) -> None:
    if hashlib.sha256(data).hexdigest() != sha256:
        raise StorageUnavailable(f"the bytes of {key!r} {where} do not match their sha256")


def _decode(data_b64: object) -> bytes:
    if not isinstance(data_b64, str):
        raise InvalidInput("storage.put needs data_b64 (the object's bytes, base64)")
    check_size(len(data_b64) * 3 // 4 - data_b64[-2:].count("="))  # before decoding it
    try:
        return base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("storage.put: data_b64 is not valid base64") from None
