"""Tenants' object bytes in a bucket of any S3-compatible service, through boto3.

Only the bytes live there: which objects a tenant has, their sizes, types and sha256
stay in the store's ``tenant_objects`` rows, so listing, paging, ``head`` and the storage
quota read the store (counted by the agent, never by listing the bucket) and behave as
on the built-in backend. An object's name in the bucket is made by the agent alone:

    {prefix}{tenant}/{sha256 of the key}/{sha256 of the bytes}

The tenant is the caller's own (never part of what a function says) and the key enters
only as a hash, so no key (``../``, absolute, unicode, 1024 characters) can name another
tenant's object or anything but its own; naming the bytes by their hash means a put
never overwrites bytes another row still points at (a racing put, a migration).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hyac_common.errors import IntegrationFailed, StorageUnavailable

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    region: str
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)
    path_style: bool
    prefix: str

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> S3Settings:
        return cls(endpoint=values["endpoint"] or "", region=values["region"] or "",
                   bucket=values["bucket"] or "", access_key=values["access_key"] or "",
                   secret_key=values["secret_key"] or "", path_style=bool(values["path_style"]),
                   prefix=values["prefix"] or "")

    @property
    def where(self) -> str:
        return f"bucket {self.bucket!r} at {self.endpoint or 'AWS'}"


class S3Bucket:
    """The bucket of ``settings``: put, get and delete a tenant's object bytes."""

    def __init__(self, settings: S3Settings) -> None:
        import boto3
        from botocore.config import Config

        self.settings = settings
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=settings.endpoint or None, region_name=settings.region or "us-east-1",
            aws_access_key_id=settings.access_key or None,
            aws_secret_access_key=settings.secret_key or None,
            config=Config(
                s3={"addressing_style": "path" if settings.path_style else "auto"},
                connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                retries={"max_attempts": 2, "mode": "standard"},
                # The sha256 we checked ourselves; no second checksum header to disagree.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def name(self, tenant: str, key: str, sha256: str) -> str:
        hashed = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self.settings.prefix}{tenant}/{hashed}/{sha256}"

    def put(self, tenant: str, key: str, data: bytes, content_type: str, sha256: str) -> None:
        with self._failures():
            self._client.put_object(Bucket=self.settings.bucket, Key=self.name(tenant, key, sha256),
                                    Body=data, ContentType=content_type)

    def get(self, tenant: str, key: str, sha256: str) -> bytes | None:
        """The bytes, or None if the bucket has no such object."""
        with self._failures(missing_ok=True) as found:
            answer = self._client.get_object(Bucket=self.settings.bucket,
                                             Key=self.name(tenant, key, sha256))
            found.append(answer["Body"].read())
        return found[0] if found else None

    def delete(self, tenant: str, key: str, sha256: str) -> None:
        with self._failures(missing_ok=True):
            self._client.delete_object(Bucket=self.settings.bucket,
                                       Key=self.name(tenant, key, sha256))

    def check(self) -> str:
        """Write, read back and remove a small object (blocking): one line, or
        IntegrationFailed saying what failed."""
        probe = f"{self.settings.prefix}.hyac-check/{secrets.token_hex(8)}"
        body = secrets.token_bytes(32)
        try:
            with self._failures():
                bucket = self.settings.bucket
                self._client.put_object(Bucket=bucket, Key=probe, Body=body)
                read = self._client.get_object(Bucket=bucket, Key=probe)["Body"].read()
                self._client.delete_object(Bucket=bucket, Key=probe)
        except StorageUnavailable as exc:
            raise IntegrationFailed(exc.message) from None
        if read != body:
            raise IntegrationFailed(f"the {self.settings.where} gave back other bytes than written")
        return f"wrote, read back and removed an object in the {self.settings.where}"

    def _failures(self, missing_ok: bool = False) -> _Failures:
        return _Failures(self.settings, missing_ok)


class _Failures:
    """Every boto3 failure as one StorageUnavailable line naming what failed (never the
    credentials); with ``missing_ok``, a missing object is no failure."""

    def __init__(self, settings: S3Settings, missing_ok: bool) -> None:
        self.settings = settings
        self.missing_ok = missing_ok
        self.found: list[bytes] = []

    def __enter__(self) -> list[bytes]:
        return self.found

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            return False
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        where = self.settings.where
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if self.missing_ok and code in ("NoSuchKey", "404", "NotFound"):
                return True
            if code == "NoSuchBucket":
                raise StorageUnavailable(f"there is no {where}") from None
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403",
                        "InvalidToken", "ExpiredToken"):
                raise StorageUnavailable(f"the S3 service refused the credentials for the {where} "
                                         f"({code})") from None
            message = " ".join(str(error.get("Message", "")).split())[:200]
            raise StorageUnavailable(f"the {where} answered {code or 'an error'}"
                                     + (f": {message}" if message else "")) from None
        if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
            raise StorageUnavailable(f"cannot reach the S3 endpoint of the {where}") from None
        if isinstance(exc, ReadTimeoutError):
            raise StorageUnavailable(f"the {where} did not answer within {READ_TIMEOUT:g} s") from None
        if isinstance(exc, NoCredentialsError):
            raise StorageUnavailable(f"no credentials for the {where}: set access_key and "
                                     "secret_key") from None
        if isinstance(exc, BotoCoreError):
            raise StorageUnavailable(f"the {where} failed: {exc}") from None
        return False
