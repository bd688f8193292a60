"""Counting invocations as they end: Prometheus counters at once, store records in batches.

An invocation's end only appends to a list and bumps counters on the event loop; a
background loop writes the list to the store once a second, in one transaction from a
thread, so no request waits for the database. If the store is down the records wait,
up to ``MAX_PENDING`` of them; beyond that the oldest are dropped (and counted).

How an invocation is measured: ``InvokeService.invoke`` is wrapped by ``metered``, which
times it and records its outcome however it ends. Inside, ``note_version`` and
``note_worker`` tell the measurement which version runs and which worker serves it; a
request is *cold* when it is the first a newly started worker serves (it paid for the
start). A request that never reached a version (no such function) is not recorded, so
callers cannot mint label values or rows by guessing names."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram

from hyac_agent.batching import BatchWriter
from hyac_agent.metrics.store import InvocationRecord, MetricsStore
from hyac_common.errors import HyacError
from hyac_common.wire import InvokeRequest, InvokeResult

if TYPE_CHECKING:
    from hyac_agent.execution.worker import Worker
    from hyac_agent.store import VersionRecord

log = logging.getLogger("hyac.metrics")

#: expired records are deleted every this many flushes (and once at start)
EXPIRE_EVERY = 300
MAX_PENDING = 100_000
#: seconds; Prometheus' defaults stop at 10 s, functions may run for minutes
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


@dataclass
class _Meter:
    metrics: InvocationMetrics
    version: VersionRecord | None = None
    cold: bool = False


_current: ContextVar[_Meter | None] = ContextVar("hyac_invocation_meter", default=None)


class InvocationMetrics(BatchWriter):
    def __init__(self, store: MetricsStore, registry: CollectorRegistry, retention_days: float) -> None:
        self.store = store
        self.retention_days = retention_days
        self._pending: list[InvocationRecord] = []
        self.dropped = 0
        self._flushes = 0
        self._flush_lock = asyncio.Lock()
        # Workers that have served a request already: the next one is warm.
        self._served: weakref.WeakSet[Worker] = weakref.WeakSet()
        self._series: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}
        labels = ("tenant", "function")
        self.invocations = Counter(
            "hyac_invocations", "Invocations that ended, by outcome (ok, function_error or "
            "the error code)", (*labels, "outcome"), registry=registry,
        )
        self.duration = Histogram(
            "hyac_invocation_duration_seconds", "How long invocations took, start to answer",
            labels, buckets=DURATION_BUCKETS, registry=registry,
        )
        self.cold_starts = Counter(
            "hyac_cold_starts", "Invocations that were the first a newly started worker served",
            labels,
            registry=registry,
        )
        self.task_runs = Counter(
            "hyac_task_attempts", "Runs of background tasks, by the task's status after the "
            "run (succeeded, failed: to be retried, dead, queued: waits for a quota; "
            "abandoned: taken over or cancelled)", (*labels, "outcome"), registry=registry,
        )

    # recording ------------------------------------------------------------------------

    def record(self, record: InvocationRecord) -> None:
        key = (record.tenant, record.function, record.outcome)
        series = self._series.get(key)
        if series is None:  # labels() costs more than the counting: look them up once
            series = self._series[key] = (
                self.invocations.labels(*key), self.duration.labels(*key[:2]),
                self.cold_starts.labels(*key[:2]),
            )
        invocations, duration, cold_starts = series
        invocations.inc()
        duration.observe(record.duration_ms / 1000)
        if record.cold:
            cold_starts.inc()
        self._pending.append(record)
        if len(self._pending) > MAX_PENDING:
            excess = len(self._pending) - MAX_PENDING
            del self._pending[:excess]
            self.dropped += excess

    def task_run_ended(self, tenant: str, function: str, status: str | None) -> None:
        self.task_runs.labels(tenant, function, status or "abandoned").inc()

    def _first_use(self, worker: Worker) -> bool:
        if worker in self._served:
            return False
        self._served.add(worker)
        return True

    # storing --------------------------------------------------------------------------

    async def flush(self) -> None:
        """Store every record so far; on return they are all queryable."""
        async with self._flush_lock:
            batch, self._pending = self._pending, []
            if batch:
                try:
                    await asyncio.to_thread(self.store.append, batch)
                except Exception:
                    log.exception("could not store %d invocation records; retrying", len(batch))
                    self._pending[:0] = batch
                    return
            if self._flushes % EXPIRE_EVERY == 0:
                await self.expire()
            self._flushes += 1

    async def expire(self) -> int:
        try:
            return await asyncio.to_thread(
                self.store.expire, time.time() - self.retention_days * 86400
            )
        except Exception:
            log.exception("could not delete expired invocation records")
            return 0


class _Metered(Protocol):
    metrics: InvocationMetrics


S = TypeVar("S", bound=_Metered)
P = ParamSpec("P")
Invoke = Callable[Concatenate[S, str, str, InvokeRequest, P], Coroutine[Any, Any, InvokeResult]]


def metered(invoke: Invoke[S, P]) -> Invoke[S, P]:
    """Record each call of ``invoke`` once it ends, however it ends."""

    @functools.wraps(invoke)
    async def measured(
        self: S, tenant: str, name: str, request: InvokeRequest, *args: P.args, **kwargs: P.kwargs
    ) -> InvokeResult:
        meter = _Meter(self.metrics)
        token = _current.set(meter)
        started = time.perf_counter()
        outcome, status, response_bytes = "internal", 500, 0
        try:
            result = await invoke(self, tenant, name, request, *args, **kwargs)
            outcome = "ok" if result.ok else "function_error"
            status = result.status
            response_bytes = _decoded_size(result.body_b64)
            return result
        except HyacError as exc:
            outcome, status = exc.code, exc.status
            raise
        except asyncio.CancelledError:
            outcome, status = "cancelled", 409
            raise
        finally:
            _current.reset(token)
            if meter.version is not None:
                meter.metrics.record(InvocationRecord(
                    ts=time.time(), tenant=tenant, function=name, version=meter.version.number,
                    duration_ms=(time.perf_counter() - started) * 1000, cold=meter.cold,
                    outcome=outcome[:32], status=status,
                    request_bytes=_decoded_size(request.body_b64),
                    response_bytes=response_bytes,
                ))

    return measured


def _decoded_size(body_b64: str | None) -> int:
    """Bytes that base64 text decodes to, without decoding it."""
    if not body_b64:
        return 0
    return len(body_b64) * 3 // 4 - len(body_b64) + len(body_b64.rstrip("="))


def note_version(version: VersionRecord) -> None:
    """The invocation being measured runs ``version``."""
    meter = _current.get()
    if meter is not None:
        meter.version = version


def note_worker(worker: Worker) -> None:
    """The invocation being measured is served by ``worker``."""
    meter = _current.get()
    if meter is not None:
        meter.cold = meter.metrics._first_use(worker)
