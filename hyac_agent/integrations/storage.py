"""The ``storage`` integration: where tenants' objects (``context.storage``,
``/v1/storage``, ``hyac storage``) keep their bytes: ``builtin`` (in the store's
database, as before) or ``s3`` (a bucket of any S3-compatible service; see
:mod:`hyac_agent.integrations.s3`).

Switching the backend applies to objects written from then on; those written before stay
readable where they are (each object's row says where its bytes are) until ``hyac-agent
storage migrate`` moves them. So the S3 settings cannot be changed or removed while
objects live in their bucket: that would strand them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Engine, func, select

from hyac_agent.integrations.kinds import IntegrationKind, Setting
from hyac_agent.integrations.s3 import S3Bucket, S3Settings
from hyac_agent.tenancy import tables as t
from hyac_common.errors import Conflict, InvalidInput

S3 = "s3"
BUILTIN = "builtin"
#: what, in the settings, says where objects already written are
_PLACE = ("endpoint", "region", "bucket", "prefix")


def _endpoint(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise InvalidInput("setting 'endpoint' is an http:// or https:// URL")
    return value.rstrip("/")


def _prefix(value: str) -> str:
    if value.startswith("/") or ".." in value.split("/") or "\\" in value:
        raise InvalidInput("setting 'prefix' must be relative, without '..' or '\\'")
    return value if value.endswith("/") else value + "/"


class StorageIntegration(IntegrationKind):
    name = "storage"
    title = "Object storage"
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("backend", "where new objects go: builtin (the store's database) or s3",
                default=BUILTIN, env="HYAC_STORAGE_BACKEND", choices=(BUILTIN, S3)),
        Setting("endpoint", "the S3-compatible service's URL (empty: AWS)", env="HYAC_S3_ENDPOINT",
                accept=_endpoint),
        Setting("region", "its region (empty: us-east-1)", env="HYAC_S3_REGION"),
        Setting("bucket", "the bucket tenants' objects go to (made beforehand)",
                env="HYAC_S3_BUCKET"),
        Setting("access_key", "the access key id", env="HYAC_S3_ACCESS_KEY"),
        Setting("secret_key", "the secret access key", secret=True, env="HYAC_S3_SECRET_KEY"),
        Setting("path_style", "host/bucket/key addresses (MinIO and most services but AWS)",
                type="bool", default=False, env="HYAC_S3_PATH_STYLE"),
        Setting("prefix", "prepended to every object name in the bucket", env="HYAC_S3_PREFIX",
                accept=_prefix),
    )

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def configured(self, values: Mapping[str, Any]) -> bool:
        return values.get("backend") == S3 or bool(values.get("bucket"))

    #: tried in :meth:`check`, and only when new objects are to go to S3: switching back
    #: to the built-in store must work while S3 is down
    probe_on_set = False

    def check(self, values: Mapping[str, Any], old: Mapping[str, Any]) -> None:
        if values.get("backend") == S3 and not values.get("bucket"):
            raise InvalidInput("the s3 backend needs a bucket")
        if any((values.get(k) or "") != (old.get(k) or "") for k in _PLACE):
            stored = self.objects_in_s3()
            if stored:
                raise Conflict(
                    f"{stored} object(s) live in the {S3Settings.of(old).where}; move them first "
                    "(hyac-agent storage migrate --to builtin), then change where S3 is")
        if values.get("backend") == S3:
            S3Bucket(S3Settings.of(values)).check()

    def probe(self, values: Mapping[str, Any], args: Mapping[str, Any]) -> str:
        if args:
            raise InvalidInput("the storage test takes no arguments")
        if not values.get("bucket"):
            return "objects are kept in the built-in store"
        return S3Bucket(S3Settings.of(values)).check()

    def objects_in_s3(self, tenant: str | None = None) -> int:
        query = select(func.count()).select_from(t.objects).where(t.objects.c.location == S3)
        if tenant is not None:
            query = query.where(t.objects.c.tenant == tenant)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)


@dataclass(frozen=True)
class StorageTarget:
    """Where objects go now (``backend``), and the bucket (None: no S3 configured)."""

    backend: str
    bucket: S3Bucket | None


def storage_target(values: Callable[[], Mapping[str, Any]]) -> Callable[[], StorageTarget]:
    """What the object store reads at each access: the backend in effect, with one boto3
    client per change of the settings (made once, shared by every thread)."""
    lock = threading.Lock()
    seen: dict[S3Settings, S3Bucket] = {}

    def current() -> StorageTarget:
        now = values()
        if not now.get("bucket"):
            return StorageTarget(BUILTIN, None)
        settings = S3Settings.of(now)
        with lock:
            bucket = seen.get(settings)
            if bucket is None:
                seen.clear()
                bucket = seen[settings] = S3Bucket(settings)
        return StorageTarget(S3 if now.get("backend") == S3 else BUILTIN, bucket)

    return current
