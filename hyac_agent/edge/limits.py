"""Per-client rate limits and the memory of signatures already used, kept in memory.

Both are per agent: behind a load balancer with N agents, a client gets up to N times
a function's limit, and a replayed signature is caught by the agent that saw it first.
Both are bounded: the oldest entries go first when they hold too many.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

#: keys each structure holds at most (a client cannot grow the agent's memory at will)
MAX_ENTRIES = 100_000


class RateLimiter:
    """Token buckets: ``requests`` per ``per`` seconds, bursts up to ``requests``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self._buckets: OrderedDict[tuple[str, ...], tuple[float, float]] = OrderedDict()

    def take(self, key: tuple[str, ...], requests: int, per: float) -> float:
        """0 if a request may go now (and count it), else the seconds until one may."""
        now = self.clock()
        rate = requests / per
        tokens, stamp = self._buckets.pop(key, (float(requests), now))
        tokens = min(float(requests), tokens + (now - stamp) * rate)
        if tokens >= 1:
            self._remember(key, (tokens - 1, now))
            return 0.0
        self._remember(key, (tokens, now))
        return (1 - tokens) / rate

    def forget(self, prefix: tuple[str, ...]) -> None:
        """Drop the buckets whose keys start with ``prefix`` (a removed function's)."""
        for key in [k for k in self._buckets if k[:len(prefix)] == prefix]:
            del self._buckets[key]

    def _remember(self, key: tuple[str, ...], value: tuple[float, float]) -> None:
        self._buckets[key] = value
        while len(self._buckets) > self.max_entries:
            self._buckets.popitem(last=False)


def retry_after(seconds: float) -> str:
    """``Retry-After``'s whole seconds, never 0 (0 reads as "now")."""
    return str(max(1, math.ceil(seconds)))


class ReplayGuard:
    """Signatures seen within the replay window: a second use is a replay."""

    def __init__(self, clock: Callable[[], float] = time.time, max_entries: int = MAX_ENTRIES) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_use(self, signature: str, window: float) -> bool:
        """True the first time ``signature`` is seen within ``window`` seconds."""
        now = self.clock()
        while self._seen:
            oldest, until = next(iter(self._seen.items()))
            if until > now and len(self._seen) < self.max_entries:
                break
            self._seen.popitem(last=False)
        if signature in self._seen:
            return False
        # Kept for twice the window: a timestamp up to `window` in the future stays
        # acceptable that long.
        self._seen[signature] = now + 2 * window
        return True
