"""``/metrics``: one Prometheus registry per agent (never the process-wide default, so
several agents in one process, as in tests, keep apart).

Counters of invocations and task runs are kept as they happen (``recorder``); the state
of the platform (workers, queue, logs, quotas) is read when Prometheus scrapes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hyac_agent.metrics.store import MetricsStore
from hyac_agent.store import LOG_LINE_OVERHEAD


class PlatformCollector(Collector):
    """Gauges read at scrape time (blocking: the scrape runs in a thread).

    ``pool_stats`` is a snapshot taken on the event loop just before the scrape;
    ``quota_reports`` yields (tenant, QuotaService.report) for every tenant."""

    def __init__(
        self, store: MetricsStore, quota_reports: Callable[[], Iterator[tuple[str, dict[str, Any]]]]
    ) -> None:
        self.store = store
        self.quota_reports = quota_reports
        self.pool_stats: dict[str, int] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        workers = GaugeMetricFamily(
            "hyac_workers", "Sandboxes of this agent: live (specialised, serving), draining, "
            "starting, generic (pre-started, not yet specialised)", labels=["state"],
        )
        for state in ("workers", "draining", "starting", "generic"):
            workers.add_metric(["live" if state == "workers" else state],
                               self.pool_stats.get(state, 0))
        yield workers
        queue = GaugeMetricFamily(
            "hyac_tasks", "Background tasks in the store, by status", labels=["tenant", "status"]
        )
        for tenant, status, count in self.store.tasks_by_status():
            queue.add_metric([tenant, status], count)
        yield queue
        logs = GaugeMetricFamily(
            "hyac_log_bytes", "Bytes of stored log lines per tenant (messages plus "
            f"{LOG_LINE_OVERHEAD} a line, as retention counts them)", labels=["tenant"],
        )
        for tenant, size in self.store.log_bytes(LOG_LINE_OVERHEAD):
            logs.add_metric([tenant], size)
        yield logs
        use = GaugeMetricFamily("hyac_quota_use", "What each tenant uses of each quota",
                                labels=["tenant", "quota", "unit"])
        limit = GaugeMetricFamily("hyac_quota_limit", "Each tenant's quota (absent: unlimited)",
                                  labels=["tenant", "quota", "unit"])
        for tenant, report in self.quota_reports():
            for quota, entry in report.items():
                labels = [tenant, quota, str(entry.get("unit") or "")]
                if entry.get("use") is not None:
                    use.add_metric(labels, float(entry["use"]))
                if entry.get("limit") is not None:
                    limit.add_metric(labels, float(entry["limit"]))
        yield use
        yield limit


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text format (blocking)."""
    return generate_latest(registry)
