"""Completion webhooks: a signed POST to the task's ``callback_url`` when it ends.

Each tenant has its own signing key (made on first use, stored encrypted with the
agent's secrets key, readable by the tenant's developers and admins through
``GET /v1/tasks/callback-key``). The signature covers the tenant and a timestamp as well
as the exact body::

    X-Hyac-Signature: v1=HEX(HMAC-SHA256(key, "v1:{X-Hyac-Timestamp}:{X-Hyac-Tenant}:" + body))

so a body signed for one tenant never verifies under another's key, and a receiver that
refuses old timestamps cannot be sent an old delivery again.

The request goes to the one address ``destinations`` checked, never through a proxy,
and a redirect is an answer (not 2xx), never followed.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import ssl
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Column, Engine, Float, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.exc import IntegrityError

from hyac_agent.tasks.destinations import Destination

SIGNATURE_HEADER = "X-Hyac-Signature"
TIMESTAMP_HEADER = "X-Hyac-Timestamp"
TENANT_HEADER = "X-Hyac-Tenant"
SCHEME = "v1"
#: how old a delivery's timestamp may be before ``verify`` refuses it
TOLERANCE = 300.0

metadata = MetaData()
keys_table = Table(
    "tenant_callback_keys",
    metadata,
    Column("tenant", String(63), primary_key=True),
    #: the tenant's created_at when the key was made: a tenant removed and made again
    #: under the same name gets a new key, never the old tenant's
    Column("tenant_created_at", Float, nullable=False),
    Column("value", Text, nullable=False),  # Fernet token: encrypted at rest
    Column("created_at", Float, nullable=False),
)


def signed_bytes(tenant: str, timestamp: str, body: bytes) -> bytes:
    return f"{SCHEME}:{timestamp}:{tenant}:".encode() + body


def sign(key: str, tenant: str, timestamp: str, body: bytes) -> str:
    """The ``X-Hyac-Signature`` value for ``body`` sent to ``tenant`` at ``timestamp``."""
    digest = hmac.new(key.encode(), signed_bytes(tenant, timestamp, body), hashlib.sha256)
    return f"{SCHEME}={digest.hexdigest()}"


def verify(key: str, headers: Mapping[str, str], body: bytes, *, tenant: str | None = None,
           now: float | None = None, tolerance: float = TOLERANCE) -> bool:
    """Whether a delivery (its headers, lower-case names, and body) was signed with
    ``key``, for ``tenant`` if given, within ``tolerance`` seconds of ``now``."""
    timestamp = headers.get(TIMESTAMP_HEADER.lower(), "")
    sent_for = headers.get(TENANT_HEADER.lower(), "")
    if tenant is not None and sent_for != tenant:
        return False
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    expected = sign(key, sent_for, timestamp, body)
    return age <= tolerance and hmac.compare_digest(expected, headers.get(
        SIGNATURE_HEADER.lower(), "").strip())


class CallbackKeys:
    """Each tenant's signing key, in the main store's database (blocking calls)."""

    def __init__(self, engine: Engine, data_dir: Path) -> None:
        from cryptography.fernet import Fernet

        from hyac_agent.tenancy.secrets import load_or_create_key

        self.engine = engine
        self._box = Fernet(load_or_create_key(data_dir))
        metadata.create_all(engine)

    def key(self, tenant: str) -> str:
        """``tenant``'s key, made now if it has none (or only its namesake's)."""
        born = self._born(tenant)
        with self.engine.connect() as conn:
            row = conn.execute(select(keys_table).where(keys_table.c.tenant == tenant)).first()
        if row is not None and row.tenant_created_at == born:
            return self._box.decrypt(row.value.encode()).decode()
        fresh, values = self._fresh(born)
        try:
            with self.engine.begin() as conn:
                if row is None:
                    conn.execute(insert(keys_table).values(tenant=tenant, **values))
                    return fresh
                # Guarded: if another agent replaced the namesake's key first, its key stays.
                conn.execute(update(keys_table).where(
                    keys_table.c.tenant == tenant,
                    keys_table.c.tenant_created_at == row.tenant_created_at,
                ).values(**values))
        except IntegrityError:  # another agent made it first: that one is used
            pass
        return self.key(tenant)

    def rotate(self, tenant: str) -> str:
        """Give ``tenant`` a new key at once (the old one signs nothing more)."""
        born = self._born(tenant)
        self.key(tenant)  # the row exists, for this tenant
        _fresh, values = self._fresh(born)
        with self.engine.begin() as conn:
            conn.execute(update(keys_table).where(keys_table.c.tenant == tenant).values(**values))
        return self.key(tenant)

    def _fresh(self, born: float) -> tuple[str, dict[str, Any]]:
        key = "hyac_cbk_" + secrets.token_hex(32)
        return key, {"tenant_created_at": born, "created_at": time.time(),
                     "value": self._box.encrypt(key.encode()).decode()}

    def _born(self, tenant: str) -> float:
        from hyac_agent.tenancy.tables import tenants

        with self.engine.connect() as conn:
            born = conn.execute(
                select(tenants.c.created_at).where(tenants.c.name == tenant)
            ).scalar()
        return float(born or 0.0)


class _PinnedBackend:
    """httpcore's network backend, connecting to the checked address whatever host the
    URL names (the URL's host still gives the Host header, SNI and the certificate check)."""

    def __init__(self, address: str) -> None:
        import httpcore

        self._address = address
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Any = None) -> Any:
        return await self._inner.connect_tcp(self._address, port, timeout, local_address,
                                             socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> Any:
        raise OSError("callbacks do not go to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # Made once: loading the CA bundle costs more than the request it secures, and a
    # context is safe to share between connections.
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


async def post(destination: Destination, headers: dict[str, str], body: bytes,
               timeout: float) -> int:
    """POST ``body`` to the resolved ``destination``; the answer's status (the body is
    not read). Raises OSError or httpcore's errors when no answer comes."""
    import httpcore

    parts = urlsplit(destination.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = destination.host.encode("idna") if ":" not in destination.host else destination.host.encode()
    default = 443 if destination.scheme == "https" else 80
    shown = f"[{destination.host}]" if ":" in destination.host else host.decode()
    if destination.port != default:
        shown += f":{destination.port}"
    url = httpcore.URL(scheme=destination.scheme.encode(), host=host, port=destination.port,
                       target=target.encode())
    limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    async with httpcore.AsyncConnectionPool(
        ssl_context=_ssl_context(), retries=0, max_connections=1,
        network_backend=_PinnedBackend(destination.address),  # type: ignore[arg-type]
    ) as pool, pool.stream(
        "POST", url, headers=[("Host", shown), *headers.items()], content=body,
        extensions={"timeout": limits},
    ) as answer:
        return int(answer.status)
