"""Tenant secrets: encrypted at rest with Fernet, and redacted from function logs.

The key is ``DATA_DIR/secrets.key`` (mode 0600, made on first use), readable by the
agent alone; the store holds only ciphertext. Decrypted values are cached per tenant
for log redaction and ``secrets.get`` host calls; every change goes through here.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from hyac_agent.tenancy.store import TenancyStore
from hyac_common.errors import InvalidInput, NotFound

KEY_FILE = "secrets.key"
MAX_SECRET = 64 * 1024
#: values shorter than this are not redacted (they would mangle ordinary words)
MIN_REDACTED = 4
REDACTED = "***"
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def check_secret_name(name: str, kind: str = "secret") -> str:
    if not isinstance(name, str) or not _SECRET_NAME.match(name):
        raise InvalidInput(
            f"invalid {kind} name {name!r}: use letters, digits and '_', not starting with a digit"
        )
    return name


def load_or_create_key(data_dir: Path) -> bytes:
    from cryptography.fernet import Fernet

    path = data_dir / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    key = Fernet.generate_key()
    tmp = data_dir / f".{KEY_FILE}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    os.replace(tmp, path)
    return key


class SecretService:
    def __init__(self, store: TenancyStore, data_dir: Path) -> None:
        from cryptography.fernet import Fernet

        self.store = store
        self._box = Fernet(load_or_create_key(data_dir))
        self._cache: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._patterns: dict[str, re.Pattern[str] | None] = {}

    def values(self, tenant: str) -> dict[str, str]:
        """Decrypted secrets of ``tenant`` (blocking the first time)."""
        cached = self._cache.get(tenant)
        if cached is not None:
            return cached
        values = {name: self._box.decrypt(token.encode()).decode()
                  for name, token in self.store.secrets_of(tenant).items()}
        with self._lock:
            self._cache[tenant] = values
            self._patterns.pop(tenant, None)
        return values

    def names(self, tenant: str) -> list[str]:
        return sorted(self.values(tenant))

    def get(self, tenant: str, name: str) -> str:
        values = self.values(tenant)
        if name not in values:
            raise NotFound(f"no secret {name!r}")
        return values[name]

    def set(self, tenant: str, name: str, value: str) -> None:
        check_secret_name(name)
        if not isinstance(value, str) or len(value.encode()) > MAX_SECRET:
            raise InvalidInput(f"a secret's value is a string of at most {MAX_SECRET} bytes")
        self.store.set_secret(tenant, name, self._box.encrypt(value.encode()).decode())
        self.forget(tenant)

    def delete(self, tenant: str, name: str) -> None:
        if not self.store.delete_secret(tenant, name):
            raise NotFound(f"no secret {name!r} in tenant {tenant!r}")
        self.forget(tenant)

    def forget(self, tenant: str) -> None:
        with self._lock:
            self._cache.pop(tenant, None)
            self._patterns.pop(tenant, None)

    def preload(self, tenant: str) -> None:
        self.values(tenant)

    def redact(self, tenant: str, message: str) -> str:
        """``message`` with every secret value of ``tenant`` replaced by ``***``.

        Only tenants already loaded are redacted here (the log bus must never block on
        the store); a worker's tenant is loaded before the worker starts."""
        if tenant not in self._patterns:
            values = self._cache.get(tenant)
            if values is None:
                return message
            secrets = sorted((v for v in values.values() if len(v) >= MIN_REDACTED), key=len,
                             reverse=True)
            self._patterns[tenant] = (
                re.compile("|".join(re.escape(v) for v in secrets)) if secrets else None
            )
        pattern = self._patterns[tenant]
        return pattern.sub(REDACTED, message) if pattern is not None else message
