"""The numbers behind the console's charts, computed from invocation records.

Buckets are aligned to multiples of ``step`` (unix time), so a chart refreshed a few
seconds later shows the same buckets; the last one holds ``now``. The totals cover the
same span as the buckets. Percentiles are nearest-rank over the durations in range, or
over a uniform sample of them where a bucket holds more (``SAMPLE_SIZE``)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

from hyac_agent.metrics.store import InvocationRecord
from hyac_common.errors import InvalidInput

MAX_WINDOW = 7 * 86400
MAX_BUCKETS = 500
#: durations kept for the totals' percentiles; the buckets share ten times as many (at
#: least a tenth of it each), so memory stays bounded whatever the window holds
SAMPLE_SIZE = 20_000


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


class _Sample:
    """Durations for percentiles: all of them up to ``size``, then a uniform
    reservoir of that many (seeded, so the same records give the same answer)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: list[float] = []
        self.seen = 0
        self._random = random.Random(0)

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(value)
            return
        slot = self._random.randrange(self.seen)
        if slot < self.size:
            self.values[slot] = value


class _Group:
    def __init__(self, sample_size: int) -> None:
        self.requests = self.errors = self.cold_starts = 0
        self.durations = _Sample(sample_size)

    def add(self, record: InvocationRecord) -> None:
        self.requests += 1
        self.errors += record.failed
        self.cold_starts += record.cold
        self.durations.add(record.duration_ms)

    def stats(self) -> dict[str, Any]:
        durations = sorted(self.durations.values)
        return {
            "requests": self.requests, "errors": self.errors,
            "p50_ms": percentile(durations, 0.50), "p99_ms": percentile(durations, 0.99),
            "cold_starts": self.cold_starts,
        }


def summarize(
    records: Iterable[InvocationRecord], last_invoked: dict[tuple[str, str], float],
    *, now: float, window: float, step: float,
) -> dict[str, Any]:
    """The ``/v1/metrics/summary`` body for ``records`` (those after the first bucket's
    start), read once, in constant memory per bucket."""
    count = check_range(window, step)
    start = first_bucket(now, window, step)
    per_bucket = max(SAMPLE_SIZE * 10 // count, SAMPLE_SIZE // 10)
    buckets = [_Group(per_bucket) for _ in range(count)]
    total = _Group(SAMPLE_SIZE)
    per_function: dict[tuple[str, str], list[int]] = {key: [0, 0] for key in last_invoked}
    for record in records:
        if not start <= record.ts <= now:
            continue
        buckets[min(int((record.ts - start) // step), count - 1)].add(record)
        total.add(record)
        counts = per_function.setdefault((record.tenant, record.function), [0, 0])
        counts[0] += 1
        counts[1] += record.failed
    totals = total.stats()
    totals["error_rate"] = _rate(total.errors, total.requests)
    totals["requests_per_s"] = round(total.requests / max(now - start, 1e-9), 6)
    functions = [
        {"tenant": tenant, "function": function, "requests": requests, "errors": errors,
         "error_rate": _rate(errors, requests), "last_invoked": last_invoked.get((tenant, function))}
        for (tenant, function), (requests, errors) in sorted(per_function.items())
    ]
    return {
        "window": window, "step": step, "totals": totals, "functions": functions,
        "buckets": [{"t": int(start + i * step), **group.stats()} for i, group in enumerate(buckets)],
    }


def _rate(errors: int, requests: int) -> float:
    return round(errors / requests, 6) if requests else 0.0
