"""Per-invocation records, Prometheus metrics and the console's summaries."""

from hyac_agent.metrics.recorder import InvocationMetrics, metered, note_version, note_worker
from hyac_agent.metrics.service import Metrics, MetricsSettings
from hyac_agent.metrics.store import InvocationRecord, MetricsStore

__all__ = [
    "InvocationMetrics", "InvocationRecord", "Metrics", "MetricsSettings", "MetricsStore",
    "metered", "note_version", "note_worker",
]
