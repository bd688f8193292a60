"""Tenant secrets: encrypted at rest with Fernet, and redacted from function logs.

The key is ``DATA_DIR/secrets.key`` (mode 0600, made on first use), readable by the
agent alone; the store holds only ciphertext. Decrypted values are cached per tenant
for log redaction and ``secrets.get`` host calls; every change goes through here.
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from hyac_agent.tenancy.store import TenancyStore
from hyac_common.errors import InvalidInput, NotFound

KEY_FILE = "secrets.key"
#: reads of a tenant's secrets a refresh makes while changes here overtake it
_REFRESH_TRIES = 5
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
    """Secret values of every tenant, and the redaction of them from what it logs.

    Redaction has no window after a change. A worker keeps what ``secrets.get`` gave
    it, so a value that is replaced or deleted stays redacted for as long as a worker
    that may hold it lives, and a new value is redacted before any worker can read it.
    Each worker holds the tenant's *generation* from when it was made (``hold``); a
    change retires the old value at the next generation, and a retired value is dropped
    only once no worker of an earlier generation is left. (Recycling the workers
    instead would still leave a window: a draining worker runs its requests on, old
    value in hand.) A value a function has passed on as data (to the key-value store,
    to another function's result) is its own data, and is not followed.
    """

    def __init__(self, store: TenancyStore, data_dir: Path) -> None:
        from cryptography.fernet import Fernet

        self.store = store
        self._box = Fernet(load_or_create_key(data_dir))
        self._cache: dict[str, dict[str, str]] = {}
        # Every change of the state below and every rebuild of a pattern is made under
        # this lock, never a store query (hold and release come from the event loop);
        # redact() reads a pattern without it (one lookup, then an immutable object).
        self._lock = threading.Lock()
        self._patterns: dict[str, re.Pattern[str] | None] = {}
        self._generation: dict[str, int] = {}
        self._holders: dict[str, Counter[int]] = {}
        #: tenant -> retired value -> the generation that retired it
        self._retired: dict[str, dict[str, int]] = {}

    def values(self, tenant: str) -> dict[str, str]:
        """Decrypted secrets of ``tenant`` (blocking the first time)."""
        cached = self._cache.get(tenant)
        if cached is not None:
            return cached
        loaded = self._load(tenant)
        with self._lock:
            cached = self._cache.get(tenant)
            if cached is None:  # else a change came first, and holds the newer values
                self._cache[tenant] = cached = loaded
                self._rebuild(tenant)
        return cached

    def _load(self, tenant: str) -> dict[str, str]:
        """``tenant``'s values as the store holds them, decrypted. Blocking."""
        return {name: self._box.decrypt(token.encode()).decode()
                for name, token in self.store.secrets_of(tenant).items()}

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
        token = self._box.encrypt(value.encode()).decode()
        self._change(tenant, name, value, lambda: self.store.set_secret(tenant, name, token))

    def delete(self, tenant: str, name: str) -> None:
        def remove() -> None:
            if not self.store.delete_secret(tenant, name):
                raise NotFound(f"no secret {name!r} in tenant {tenant!r}")

        self._change(tenant, name, None, remove)

    def _change(self, tenant: str, name: str, value: str | None, write: Callable[[], None]) -> None:
        self.values(tenant)  # loaded, so that workers read the change from the cache
        if value is not None:  # redacted from now on, before any worker can read it
            with self._lock:
                pending = self._generation.get(tenant, 0) + 1
                self._retired.setdefault(tenant, {})[value] = pending
                self._rebuild(tenant)
        write()
        with self._lock:
            current = self._cache.get(tenant, {})
            updated = {k: v for k, v in current.items() if k != name}
            if value is not None:
                updated[name] = value
            generation = self._generation.get(tenant, 0) + 1
            old = current.get(name)
            if old is not None and old != value:
                self._retired.setdefault(tenant, {})[old] = generation
            self._cache[tenant] = updated
            # Workers made from here on can only read the new values.
            self._generation[tenant] = generation
            self._rebuild(tenant)

    def refresh(self, tenant: str) -> None:
        """Read ``tenant``'s values again (another agent changed them). A value that
        changed or went stays redacted while a worker that may hold it lives, as with a
        change made here; there is no moment without redaction."""
        for attempt in range(_REFRESH_TRIES):
            with self._lock:
                if tenant not in self._cache:
                    return  # never loaded here: the first values() reads the store
                seen = self._generation.get(tenant, 0)
            loaded = self._load(tenant)
            with self._lock:
                if self._generation.get(tenant, 0) != seen and attempt < _REFRESH_TRIES - 1:
                    # A change made here while the store was read (its write may have
                    # come after the read) put newer values in the cache already: read
                    # again rather than put older ones back over them.
                    continue
                current = self._cache.get(tenant, {})
                generation = self._generation.get(tenant, 0) + 1
                retired = self._retired.setdefault(tenant, {})
                for name, old in current.items():
                    if loaded.get(name) != old:
                        retired[old] = generation
                self._cache[tenant] = loaded
                self._generation[tenant] = generation
                self._rebuild(tenant)
                return

    def forget(self, tenant: str) -> None:
        """Drop ``tenant``'s values (it is gone); its workers' values stay redacted."""
        with self._lock:
            generation = self._generation.get(tenant, 0) + 1
            retired = self._retired.setdefault(tenant, {})
            for value in self._cache.pop(tenant, {}).values():
                retired[value] = generation
            self._generation[tenant] = generation
            self._rebuild(tenant)

    def preload(self, tenant: str) -> None:
        self.values(tenant)

    def hold(self, tenant: str) -> Callable[[], None]:
        """Count a new worker of ``tenant`` until the returned release is called (once
        it is gone): the values it may read stay redacted while it lives."""
        with self._lock:
            generation = self._generation.get(tenant, 0)
            self._holders.setdefault(tenant, Counter())[generation] += 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                holders = self._holders[tenant]
                holders[generation] -= 1
                if holders[generation] <= 0:
                    del holders[generation]
                self._rebuild(tenant)

        return release

    def redact(self, tenant: str, message: str) -> str:
        """``message`` with every secret value of ``tenant`` a worker may hold replaced
        by ``***``.

        Only tenants already loaded are redacted here (the log bus must never block on
        the store); a worker's tenant is loaded before the worker starts."""
        pattern = self._patterns.get(tenant)
        return pattern.sub(REDACTED, message) if pattern is not None else message

    def _rebuild(self, tenant: str) -> None:
        """Drop the retired values no worker may hold; compile the tenant's pattern."""
        holders = self._holders.get(tenant)
        oldest = min(holders) if holders else None
        retired = self._retired.setdefault(tenant, {})
        for value, generation in list(retired.items()):
            if oldest is None or oldest >= generation:
                del retired[value]
        values = set(self._cache.get(tenant, {}).values()) | set(retired)
        secrets = sorted((v for v in values if len(v) >= MIN_REDACTED), key=len, reverse=True)
        self._patterns[tenant] = (
            re.compile("|".join(re.escape(v) for v in secrets)) if secrets else None
        )
