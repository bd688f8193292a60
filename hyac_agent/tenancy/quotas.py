"""Per-tenant quotas, with platform defaults, enforced where the resource is used.

| quota                  | unit            | enforced                                      |
|------------------------|-----------------|-----------------------------------------------|
| cpu                    | CPUs per sandbox| sandbox limits at worker start                |
| memory                 | bytes/sandbox   | deploy (403) and sandbox limits               |
| storage                | bytes           | kv.set, db writes, object puts (413)          |
| executions_per_minute  | count           | every invocation (429)                        |
| executions_per_day     | count           | every invocation (429)                        |
| concurrency            | count           | every invocation (429)                        |
| timeout                | seconds         | deploy (403)                                  |
| functions              | count           | deploy of a new function (403)                |
| mails_per_day          | count           | every context.mail.send (quota_exceeded, 429) |
| notifications_per_day  | count           | every context.notify (quota_exceeded, 429)    |

Tenant ``*`` in the store holds the platform's values: the default of every tenant
without its own, and the ceiling an admin may set. Execution and mail counters are kept in
memory and written to the store every second (and at shutdown), so they survive a
restart. On PostgreSQL (several agents), a tenant with an execution or concurrency limit
has its executions counted in the store itself as they are admitted, and running ones
hold leases there (hyac_agent/cluster/quotas.py), so the limits hold across every agent
and worker; a tenant without one is counted locally (no round trip on its invocations);
mails are still counted by each node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

from hyac_agent.cluster.quotas import SHARED, SharedCounters
from hyac_agent.sandbox.limits import ResourceLimits
from hyac_agent.tenancy.store import TenancyStore
from hyac_common.durations import parse_duration, parse_size
from hyac_common.errors import Forbidden, InvalidInput, QuotaExceeded

log = logging.getLogger("hyac.quotas")

PLATFORM = "*"
QUOTAS: dict[str, str] = {
    "cpu": "CPUs per sandbox",
    "memory": "bytes of memory per sandbox",
    "storage": "bytes of kv + db + objects",
    "executions_per_minute": "invocations per minute",
    "executions_per_day": "invocations per day",
    "concurrency": "invocations running at once",
    "timeout": "seconds a function may run",
    "functions": "functions deployed",
    "mails_per_day": "messages sent per day (context.mail)",
    "notifications_per_day": "notifications sent per day (context.notify)",
}


def exceeded(name: str, limit: float, use: float, status: int) -> QuotaExceeded:
    error = QuotaExceeded(
        f"quota {name} exceeded: limit {_show(limit)}, in use {_show(use)}",
        quota=name, limit=_whole(limit), use=_whole(use),
    )
    error.status = status
    return error


def _whole(value: float) -> float | int:
    """``100`` rather than ``100.0`` in the error's JSON, for counts and bytes."""
    return int(value) if float(value).is_integer() else value


def _show(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def parse_quota(name: str, value: Any) -> float | None:
    """A quota value from the CLI or API: numbers, sizes (512Mi), durations (10m);
    "" / None / "none" / "unlimited" clears it."""
    if name not in QUOTAS:
        raise InvalidInput(f"unknown quota {name!r}; known: {', '.join(QUOTAS)}")
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "unlimited")):
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif name in ("memory", "storage"):
            number = float(parse_size(value, name))
        elif name == "timeout":
            number = float(parse_duration(value, name))
        else:
            number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"invalid value {value!r} for quota {name}") from None
    if number < 0 or (name == "cpu" and number == 0):
        raise InvalidInput(f"quota {name} must be positive")
    if name not in ("cpu", "timeout") and not number.is_integer():
        raise InvalidInput(f"quota {name} must be a whole number")
    return number


def _windows(now: float) -> tuple[str, str]:
    return f"m:{int(now // 60)}", f"d:{int(now // 86400)}"


def _mail_window(now: float) -> str:
    return f"mail:d:{int(now // 86400)}"


def _notify_window(now: float) -> str:
    return f"notify:d:{int(now // 86400)}"


def _daily_windows(now: float) -> list[str]:
    """The day windows of the counted quotas other than executions."""
    return [_mail_window(now), _notify_window(now)]


class QuotaService:
    def __init__(self, store: TenancyStore, storage_use: Callable[[str], int],
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.storage_use = storage_use
        #: several nodes on one PostgreSQL count executions in the store, not each its own
        self.shared = (SharedCounters(store.engine)
                       if store.engine.dialect.name == "postgresql" else None)
        #: the wall clock the minute and day windows are cut by (a test drives it)
        self.clock = clock
        self._limits: dict[str, dict[str, float]] = {}
        self._merged: dict[str, dict[str, float | None]] = {}  # _limits_cached
        self._counts: dict[tuple[str, str], int] = {}
        self._pending: dict[tuple[str, str], int] = {}
        self._loaded_windows: set[str] = set()
        #: held while counts are taken from ``_pending`` and stored, so that the counts of
        #: a removed tenant are never stored after its rows are deleted
        self._flushing = threading.Lock()
        self._running: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    # limits ---------------------------------------------------------------------------

    def forget(self, tenant: str | None = None, usage: bool = False) -> None:
        """Drop cached limits (of ``tenant``, or all); ``usage``: also the tenant's counted
        executions and mails (it is being removed: a tenant made under its name starts at
        0). Blocking with ``usage``: a store of its counts in flight ends first, so the
        caller deletes the stored ones after it."""
        self._merged.clear()
        if tenant is None or tenant == PLATFORM:
            self._limits.clear()
        else:
            self._limits.pop(tenant, None)
        if usage and tenant is not None:
            with self._flushing:
                for counts in (self._counts, self._pending):
                    for key in [k for k in counts if k[0] == tenant]:
                        counts.pop(key, None)

    def _raw(self, tenant: str) -> dict[str, float]:
        cached = self._limits.get(tenant)
        if cached is None:
            cached = self._limits[tenant] = self.store.quotas_of(tenant)
        return cached

    def limits(self, tenant: str) -> dict[str, float | None]:
        """The quota values in force for ``tenant`` (None: unlimited). Blocking at first."""
        platform, own = self._raw(PLATFORM), self._raw(tenant)
        return {name: own.get(name, platform.get(name)) for name in QUOTAS}

    def limit(self, tenant: str, name: str) -> float | None:
        return self.limits(tenant)[name]

    def set(self, tenant: str, values: dict[str, Any], *, owner: bool) -> None:
        parsed = {name: parse_quota(name, value) for name, value in values.items()}
        if not owner:
            platform = self._raw(PLATFORM)
            for name, value in parsed.items():
                ceiling = platform.get(name)
                if ceiling is not None and (value is None or value > ceiling):
                    raise Forbidden(
                        f"quota {name} may be at most the platform's {_show(ceiling)} "
                        f"(only the platform owner can raise it)",
                        quota=name, limit=ceiling,
                    )
        self.store.set_quotas(tenant, parsed)
        self.forget(tenant)

    def report(self, tenant: str, functions: int) -> dict[str, Any]:
        limits = self.limits(tenant)
        own = self._raw(tenant)
        minute, day = _windows(self.clock())
        mail, notify = _daily_windows(self.clock())
        self._load_windows([minute, day, mail, notify])
        if self.shared is not None:  # what every node counted, not this one's view
            fresh = self.store.usage_in([minute, day])
            self._counts.update({key: count for key, count in fresh.items() if key[0] == tenant})
            self._running[tenant] = self.shared.running(tenant)
        use: dict[str, float | None] = {
            "cpu": None, "memory": None, "timeout": None,
            "storage": float(self.storage_use(tenant)),
            "executions_per_minute": float(self._counts.get((tenant, minute), 0)),
            "executions_per_day": float(self._counts.get((tenant, day), 0)),
            "concurrency": float(self._running.get(tenant, 0)),
            "functions": float(functions),
            "mails_per_day": float(self._counts.get((tenant, mail), 0)),
            "notifications_per_day": float(self._counts.get((tenant, notify), 0)),
        }
        return {
            name: {"limit": limits[name], "use": use[name],
                   "source": "tenant" if name in own else ("platform" if limits[name] is not None else None),
                   "unit": QUOTAS[name]}
            for name in QUOTAS
        }

    # at the point of use --------------------------------------------------------------

    def check_deploy(self, tenant: str, is_new: bool, functions: int, timeout: float,
                     memory: int | None) -> None:
        limits = self.limits(tenant)
        if is_new and limits["functions"] is not None and functions >= limits["functions"]:
            raise exceeded("functions", limits["functions"], functions, 403)
        if limits["timeout"] is not None and timeout > limits["timeout"]:
            raise exceeded("timeout", limits["timeout"], timeout, 403)
        if memory is not None and limits["memory"] is not None and memory > limits["memory"]:
            raise exceeded("memory", limits["memory"], memory, 403)

    def sandbox_limits(self, tenant: str, limits: ResourceLimits) -> ResourceLimits:
        quota = self.limits(tenant)
        if quota["memory"] is not None and limits.memory_bytes > quota["memory"]:
            limits = replace(limits, memory_bytes=int(quota["memory"]))
        if quota["cpu"] is not None:
            limits = replace(limits, cpus=float(quota["cpu"]))
        return limits

    def check_storage(self, tenant: str, growth: int) -> None:
        limit = self.limit(tenant, "storage")
        if limit is None:
            return
        use = self.storage_use(tenant)
        if use + max(growth, 0) > limit:
            raise exceeded("storage", limit, use, 413)

    def execution(self, tenant: str) -> AbstractAsyncContextManager[None]:
        """Admit one invocation of ``tenant`` (or 429), and count it while it runs."""
        return _Execution(self, tenant)

    def mail(self, tenant: str) -> AbstractAsyncContextManager[None]:
        """Admit one message of ``tenant`` (or 429); it counts once it has been sent."""
        return self._daily(tenant, "mails_per_day", _mail_window(self.clock()))

    def notification(self, tenant: str) -> AbstractAsyncContextManager[None]:
        """Admit one notification of ``tenant`` (or 429); it counts once it is stored."""
        return self._daily(tenant, "notifications_per_day", _notify_window(self.clock()))

    @contextlib.asynccontextmanager
    async def _daily(self, tenant: str, quota: str, window: str) -> AsyncIterator[None]:
        limits = self._limits_cached(tenant)
        if limits is None:
            limits = await asyncio.to_thread(self.limits, tenant)
        if window not in self._loaded_windows:
            await asyncio.to_thread(self._load_windows, [window])
        key = (tenant, window)
        used, limit = self._counts.get(key, 0), limits[quota]
        if limit is not None and used >= limit:
            raise exceeded(quota, limit, used, 429)
        # Held while it is sent, so sends at the same moment cannot pass the limit together.
        self._counts[key] = used + 1
        try:
            yield
        except BaseException:
            self._counts[key] = max(0, self._counts.get(key, 1) - 1)
            raise
        self._pending[key] = self._pending.get(key, 0) + 1

    @contextlib.asynccontextmanager
    async def _shared_execution(self, tenant: str, limits: dict[str, float | None], minute: str,
                                day: str) -> AsyncIterator[None]:
        """``execution`` against the counters every node shares (cluster/quotas.py)."""
        assert self.shared is not None
        lease, refused = await asyncio.to_thread(
            self.shared.admit, tenant,
            [("executions_per_minute", minute, limits["executions_per_minute"]),
             ("executions_per_day", day, limits["executions_per_day"])],
            limits["concurrency"],
        )
        if refused is not None:
            raise exceeded(*refused, 429)
        try:
            yield
        finally:
            if lease is not None:
                await asyncio.to_thread(self.shared.release, lease)

    def _limits_cached(self, tenant: str) -> dict[str, float | None] | None:
        """The limits in force for ``tenant`` if they are known without the store (kept
        until ``forget``; read-only: every invocation looks them up), else None."""
        merged = self._merged.get(tenant)
        if merged is None and tenant in self._limits and PLATFORM in self._limits:
            merged = self._merged[tenant] = self.limits(tenant)
        return merged

    def _load_windows(self, windows: list[str]) -> None:
        fresh = [w for w in windows if w not in self._loaded_windows]
        if not fresh:
            return
        for key, count in self.store.usage_in(fresh).items():
            self._counts[key] = self._counts.get(key, 0) + count
        self._loaded_windows.update(fresh)

    # persistence ----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._flush_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.flush)

    def flush(self) -> None:
        with self._flushing:
            self._flush()

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            self.store.add_usage(pending)
            minute, day = _windows(self.clock())
            previous_minute = f"m:{int(self.clock() // 60) - 1}"
            self.store.trim_usage([minute, previous_minute, day, *_daily_windows(self.clock())])
        except Exception:
            log.exception("could not store execution counters")
            for key, count in pending.items():
                self._pending[key] = self._pending.get(key, 0) + count
        current = {*_windows(self.clock()), *_daily_windows(self.clock())}
        for key in [k for k in self._counts if k[1] not in current]:
            del self._counts[key]
        self._loaded_windows &= current

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(self.flush)
            if self.shared is not None:
                await asyncio.to_thread(self.shared.renew)


class _Execution:
    """``QuotaService.execution``: a class, not a generator-based context manager (its
    machinery was a cost of every invocation)."""

    __slots__ = ("_quotas", "_tenant", "_shared")

    def __init__(self, quotas: QuotaService, tenant: str) -> None:
        self._quotas = quotas
        self._tenant = tenant
        self._shared: AbstractAsyncContextManager[None] | None = None

    async def __aenter__(self) -> None:
        quotas, tenant = self._quotas, self._tenant
        limits = quotas._limits_cached(tenant)
        if limits is None:
            limits = await asyncio.to_thread(quotas.limits, tenant)
        minute, day = _windows(quotas.clock())
        if minute not in quotas._loaded_windows or day not in quotas._loaded_windows:
            await asyncio.to_thread(quotas._load_windows, [minute, day])
        if quotas.shared is not None and any(limits[name] is not None for name in SHARED):
            shared = quotas._shared_execution(tenant, limits, minute, day)
            await shared.__aenter__()
            self._shared = shared
            return
        running = quotas._running.get(tenant, 0)
        if limits["concurrency"] is not None and running >= limits["concurrency"]:
            raise exceeded("concurrency", limits["concurrency"], running, 429)
        counts = quotas._counts
        for name, window in (("executions_per_minute", minute), ("executions_per_day", day)):
            used = counts.get((tenant, window), 0)
            limit = limits[name]
            if limit is not None and used >= limit:
                raise exceeded(name, limit, used, 429)
        pending = quotas._pending
        for window in (minute, day):
            key = (tenant, window)
            counts[key] = counts.get(key, 0) + 1
            pending[key] = pending.get(key, 0) + 1
        quotas._running[tenant] = running + 1

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        if self._shared is not None:
            return await self._shared.__aexit__(*exc_info)
        running = self._quotas._running
        running[self._tenant] = max(0, running.get(self._tenant, 1) - 1)
        return None
