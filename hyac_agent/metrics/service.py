"""The agent's metrics: the recorder invocations report to, the scrape and its guard,
and the summary the console charts."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import time
from collections.abc import Callable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from hyac_agent.metrics.exposition import PlatformCollector, exposition
from hyac_agent.metrics.recorder import InvocationMetrics
from hyac_agent.metrics.store import MetricsStore
from hyac_agent.metrics.summary import first_bucket, summarize

if TYPE_CHECKING:
    from hyac_agent.execution.pool import WorkerPool
    from hyac_agent.tenancy import TenancyService

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class MetricsSettings:
    #: days invocation records are kept (HYAC_METRICS_RETENTION_DAYS)
    retention_days: float = 7.0
    #: a bearer token that may read /metrics and nothing else (HYAC_METRICS_TOKEN)
    scrape_token: str = ""
    #: client addresses that may read /metrics with no token (HYAC_METRICS_ALLOW)
    allow: list[str] = field(default_factory=list)

    def networks(self) -> list[Network]:
        """The allow-list parsed (the agent's settings checked every entry at start)."""
        return [ipaddress.ip_network(entry, strict=False) for entry in self.allow]


class Metrics:
    """Reports ``pool``'s workers and, per tenant, tasks, logs and quotas at each scrape."""

    def __init__(
        self,
        engine: Engine,
        settings: MetricsSettings,
        pool: WorkerPool,
        tenancy: TenancyService,
        functions_of: Callable[[str], Sized],
    ) -> None:
        self.settings = settings
        self.allowed = settings.networks()
        self.store = MetricsStore(engine)
        self.store.create_schema()
        self.registry = CollectorRegistry(auto_describe=True)
        self.invocations = InvocationMetrics(self.store, self.registry, settings.retention_days)

        def quota_reports() -> Iterator[tuple[str, dict[str, Any]]]:
            for tenant in tenancy.store.list_tenants():
                name = tenant["name"]
                yield name, tenancy.quotas.report(name, len(functions_of(name)))

        self._pool = pool
        self._platform = PlatformCollector(self.store, quota_reports)
        self.registry.register(self._platform)

    def start(self) -> None:
        self.invocations.start()

    async def stop(self) -> None:
        await self.invocations.stop()

    # the scrape -----------------------------------------------------------------------

    def scrape_token_matches(self, token: str) -> bool:
        wanted = self.settings.scrape_token
        return bool(wanted) and hmac.compare_digest(token.encode(), wanted.encode())

    def address_allowed(self, host: str | None) -> bool:
        try:
            address = ipaddress.ip_address(host or "")
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allowed)

    async def scrape(self) -> bytes:
        self._platform.pool_stats = self._pool.stats()  # on the loop: the pool's own thread
        return await asyncio.to_thread(exposition, self.registry)

    # the console's charts ---------------------------------------------------------------

    async def summary(
        self, tenants: Sequence[str] | None, function: str | None, window: int, step: int,
    ) -> dict[str, Any]:
        """``/v1/metrics/summary`` over ``tenants`` (None: all); records still waiting
        for the store are written first, so an invocation that just ended counts."""
        now = time.time()
        since = first_bucket(now, window, step)  # checks the range before any work
        await self.invocations.flush()
        return await asyncio.to_thread(self._summarize, tenants, function, window, step, now, since)

    def _summarize(
        self, tenants: Sequence[str] | None, function: str | None, window: int, step: int,
        now: float, since: float,
    ) -> dict[str, Any]:
        last = self.store.last_invoked(tenants, function)
        records = self.store.stream(tenants, function, since)
        return summarize(records, last, now=now, window=window, step=step)
