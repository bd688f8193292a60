"""The numbers behind the console's charts, computed from invocation records.

Buckets are aligned to multiples of ``step`` (unix time), so a chart refreshed a few
seconds later shows the same buckets; the last one holds ``now``. The totals cover the
same span as the buckets. Percentiles are nearest-rank over the durations in range."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from hyac_agent.metrics.store import InvocationRecord
from hyac_common.errors import InvalidInput

MAX_WINDOW = 7 * 86400
MAX_BUCKETS = 500


def check_range(window: float, step: float) -> int:
    """How many buckets ``window`` and ``step`` make; InvalidInput if out of bounds."""
    if not (math.isfinite(window) and math.isfinite(step)) or window <= 0 or step <= 0:
        raise InvalidInput("window and step must be positive numbers of seconds")
    if window > MAX_WINDOW:
        raise InvalidInput(f"window may be at most {MAX_WINDOW} seconds (7 days)")
    if step > window:
        raise InvalidInput("step may be at most the window")
    buckets = math.ceil(window / step)
    if buckets > MAX_BUCKETS:
        raise InvalidInput(
            f"window / step makes {buckets} buckets; at most {MAX_BUCKETS} "
            f"(use a step of at least {math.ceil(window / MAX_BUCKETS)} seconds)"
        )
    return buckets


def first_bucket(now: float, window: float, step: float) -> float:
    return (math.floor(now / step) - check_range(window, step) + 1) * step


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(math.ceil(fraction * len(sorted_values)), 1)
    return round(sorted_values[rank - 1], 3)


def _stats(records: Sequence[InvocationRecord]) -> dict[str, Any]:
    durations = sorted(r.duration_ms for r in records)
    return {
        "requests": len(records),
        "errors": sum(1 for r in records if r.failed),
        "p50_ms": percentile(durations, 0.50),
        "p99_ms": percentile(durations, 0.99),
        "cold_starts": sum(1 for r in records if r.cold),
    }


def summarize(
    records: Sequence[InvocationRecord], last_invoked: dict[tuple[str, str], float],
    *, now: float, window: float, step: float,
) -> dict[str, Any]:
    """The ``/v1/metrics/summary`` body for ``records`` (those after the first bucket's start)."""
    count = check_range(window, step)
    start = first_bucket(now, window, step)
    in_range = [r for r in records if start <= r.ts <= now]
    by_bucket: list[list[InvocationRecord]] = [[] for _ in range(count)]
    for record in in_range:
        by_bucket[min(int((record.ts - start) // step), count - 1)].append(record)
    buckets = [{"t": int(start + i * step), **_stats(group)} for i, group in enumerate(by_bucket)]
    totals = _stats(in_range)
    totals["error_rate"] = _rate(totals["errors"], totals["requests"])
    totals["requests_per_s"] = round(totals["requests"] / max(now - start, 1e-9), 6)
    per_function: dict[tuple[str, str], list[int]] = {key: [0, 0] for key in last_invoked}
    for record in in_range:
        counts = per_function.setdefault((record.tenant, record.function), [0, 0])
        counts[0] += 1
        counts[1] += record.failed
    functions = [
        {"tenant": tenant, "function": function, "requests": requests, "errors": errors,
         "error_rate": _rate(errors, requests), "last_invoked": last_invoked.get((tenant, function))}
        for (tenant, function), (requests, errors) in sorted(per_function.items())
    ]
    return {"window": window, "step": step, "buckets": buckets, "totals": totals,
            "functions": functions}


def _rate(errors: int, requests: int) -> float:
    return round(errors / requests, 6) if requests else 0.0
