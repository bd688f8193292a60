"""A tenant's object storage (``context.storage``, ``/v1/storage``): bytes under keys.

Objects live in the main store's database (a BLOB on SQLite, a BYTEA on PostgreSQL),
so every agent sharing that database sees the same objects. Each access names its
tenant: host calls take it from the calling worker, the API from the caller's role. An
object's key and bytes count towards the tenant's ``storage`` quota.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from hyac_agent.tenancy import tables as t
from hyac_common.errors import InvalidInput, PayloadTooLarge
from hyac_common.names import validate_object_key
from hyac_common.wire import ObjectInfo

if TYPE_CHECKING:
    from hyac_agent.tenancy.quotas import QuotaService

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


class ObjectStore:
    """The SQL half: rows of ``tenant_objects``, no validation."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, tenant: str, key: str, data: bytes, content_type: str) -> ObjectInfo:
        values = {"data": data, "size": len(data), "content_type": content_type,
                  "sha256": hashlib.sha256(data).hexdigest(), "updated_at": time.time()}
        where = (t.objects.c.tenant == tenant, t.objects.c.key == key)
        try:
            with self.engine.begin() as conn:
                if not conn.execute(update(t.objects).where(*where).values(**values)).rowcount:
                    conn.execute(insert(t.objects).values(tenant=tenant, key=key, **values))
        except IntegrityError:  # another agent inserted the same key first: ours replaces it
            with self.engine.begin() as conn:
                conn.execute(update(t.objects).where(*where).values(**values))
        return ObjectInfo(key=key, **{k: v for k, v in values.items() if k != "data"})

    def read(self, tenant: str, key: str) -> tuple[ObjectInfo, bytes] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_INFO, t.objects.c.data).where(
                t.objects.c.tenant == tenant, t.objects.c.key == key)).first()
        return None if row is None else (_info(row), bytes(row.data))

    def stat(self, tenant: str, key: str) -> ObjectInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_INFO).where(
                t.objects.c.tenant == tenant, t.objects.c.key == key)).first()
        return None if row is None else _info(row)

    def delete(self, tenant: str, key: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(t.objects).where(
                t.objects.c.tenant == tenant, t.objects.c.key == key)).rowcount)

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

    def __init__(self, engine: Engine, quotas: QuotaService) -> None:
        self.store = ObjectStore(engine)
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
        info = self._put(tenant, key, data, content_type)
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
        return self.store.read(tenant, validate_object_key(key))

    def stat(self, tenant: str, key: str) -> ObjectInfo | None:
        return self.store.stat(tenant, validate_object_key(key))

    def delete(self, tenant: str, key: str) -> bool:
        key = validate_object_key(key)
        deleted = self.store.delete(tenant, key)
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


def _decode(data_b64: object) -> bytes:
    if not isinstance(data_b64, str):
        raise InvalidInput("storage.put needs data_b64 (the object's bytes, base64)")
    check_size(len(data_b64) * 3 // 4 - data_b64[-2:].count("="))  # before decoding it
    try:
        return base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("storage.put: data_b64 is not valid base64") from None
