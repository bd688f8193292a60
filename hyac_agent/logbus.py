"""The log bus: function output goes to live subscribers at once and to the store in
batches, so that a `print` never waits on a disk write.

Retention is per tenant (LogRetention): a tenant is trimmed to its own allowance once it
has written an eighth of it since its last trim, so it never holds much more than its
allowance, and one tenant's flood never trims another's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import Protocol

from hyac_agent.batching import BatchWriter
from hyac_agent.logframes import MAX_LINE, TRUNCATED
from hyac_agent.store import LOG_LINE_OVERHEAD, LogRetention, Store
from hyac_agent.store.text import storable
from hyac_common.wire import LogRecord

log = logging.getLogger("hyac.logbus")

FLUSH_INTERVAL = 0.2
SUBSCRIBER_BACKLOG = 10_000
#: every this many flushes, every tenant that wrote is trimmed and old lines expire
SWEEP_EVERY = 100


class Redactor(Protocol):
    """Takes a tenant's secret values out of what it logs (the tenancy's secrets)."""

    def redact(self, tenant: str, message: str) -> str: ...

    def hold(self, tenant: str) -> Callable[[], None]:
        """Count a worker of ``tenant`` until the returned release is called."""


class NoSecrets:
    """The redactor of a log bus that serves no tenant secrets (a store-only tool)."""

    def redact(self, tenant: str, message: str) -> str:
        return message

    def hold(self, tenant: str) -> Callable[[], None]:
        return _nothing


NO_SECRETS = NoSecrets()


class LogBus(BatchWriter):
    flush_interval = FLUSH_INTERVAL

    def __init__(self, store: Store, retention: LogRetention, redactor: Redactor = NO_SECRETS
                 ) -> None:
        self.store = store
        self.retention = retention
        #: replaces a tenant's secret values by *** in its lines and error reports
        self.redactor = redactor
        #: tenant -> (bytes, lines) stored since it was last trimmed
        self._untrimmed: dict[str, tuple[int, int]] = {}
        self._pending: list[LogRecord] = []
        self._subscribers: set[tuple[asyncio.Queue[LogRecord], str, str | None]] = set()
        self._flushes = 0
        # One flush at a time: a reader that flushes before querying must also wait for a
        # batch the background loop took a moment earlier and is still writing.
        self._flush_lock = asyncio.Lock()
        #: tenants being removed: what their workers still log is dropped, not stored
        #: after their rows are gone (where a tenant made again would read it)
        self._removing: set[str] = set()

    def publish(self, record: LogRecord) -> None:
        if record.tenant in self._removing:
            return
        if len(record.message) > MAX_LINE:
            record.message = record.message[:MAX_LINE] + TRUNCATED
        record.message = self.redact(record.tenant, storable(record.message))
        self._pending.append(record)
        for queue, tenant, function in list(self._subscribers):
            if record.tenant == tenant and function in (None, record.function):
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(record)

    def redact(self, tenant: str, text: str) -> str:
        """``text`` with every secret value a worker of ``tenant`` may hold as ***."""
        return self.redactor.redact(tenant, text)

    def hold_secrets(self, tenant: str) -> Callable[[], None]:
        """Keep the secret values a new worker of ``tenant`` may read redacted until
        the returned release is called, when the worker is gone."""
        return self.redactor.hold(tenant)

    def emit(
        self,
        *,
        tenant: str,
        function: str,
        version: int,
        stream: str,
        message: str,
        request_id: str | None = None,
        level: str | None = None,
    ) -> None:
        self.publish(
            LogRecord(
                ts=time.time(), tenant=tenant, function=function, version=version,
                request_id=request_id, stream=stream, level=level, message=message,  # type: ignore[arg-type]
            )
        )

    async def subscribe(self, tenant: str, function: str | None) -> AsyncGenerator[LogRecord, None]:
        queue: asyncio.Queue[LogRecord] = asyncio.Queue(maxsize=SUBSCRIBER_BACKLOG)
        entry = (queue, tenant, function)
        self._subscribers.add(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(entry)

    async def removing(self, tenant: str) -> None:
        """From now until ``removed``, drop ``tenant``'s lines; on return none of them is
        buffered or being written (a flush under way has ended)."""
        self._removing.add(tenant)
        async with self._flush_lock:
            self._pending = [record for record in self._pending if record.tenant != tenant]

    def removed(self, tenant: str) -> None:
        """``tenant`` is gone: a tenant made again under its name logs from scratch."""
        self._removing.discard(tenant)

    async def flush(self) -> None:
        """Store every line published so far; on return they are all queryable."""
        async with self._flush_lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                await asyncio.to_thread(self.store.append_logs, batch)
            except Exception:  # a failing disk must not take invocations down with it
                log.exception("could not store %d log lines", len(batch))
                return
            for record in batch:
                size, lines = self._untrimmed.get(record.tenant, (0, 0))
                self._untrimmed[record.tenant] = (
                    size + len(record.message) + LOG_LINE_OVERHEAD, lines + 1
                )
            self._flushes += 1
            await self._trim(sweep=self._flushes % SWEEP_EVERY == 0)

    async def _trim(self, sweep: bool) -> None:
        retention = self.retention
        due = [tenant for tenant, (size, lines) in self._untrimmed.items()
               if sweep or size >= retention.bytes // 8 or lines >= retention.lines // 8]
        try:
            for tenant in due:
                del self._untrimmed[tenant]
                await asyncio.to_thread(self.store.trim_logs, tenant, retention)
            if sweep:
                await asyncio.to_thread(
                    self.store.expire_logs, time.time() - retention.days * 86400
                )
        except Exception:
            log.exception("could not trim the log")


def _nothing() -> None:
    pass
