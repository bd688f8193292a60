"""When a cron line's ticks fall, in its timezone (croniter and zoneinfo).

A line of six fields has seconds first. Ticks are Unix times; croniter walks the wall
clock of the timezone, so "0 9 * * *" in Europe/Paris is 09:00 there in winter and in
summer, and a tick in the hour a DST change skips is not invented.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from croniter import croniter


def _walker(cron: str, timezone: str, start: float) -> croniter:
    at = datetime.fromtimestamp(start, ZoneInfo(timezone))
    return croniter(cron, at, second_at_beginning=len(cron.split()) == 6)


def next_tick(cron: str, timezone: str, after: float) -> float:
    """The first tick strictly after ``after``."""
    return float(_walker(cron, timezone, after).get_next(float))


def latest_tick(cron: str, timezone: str, at: float) -> float:
    """The last tick at or before ``at``."""
    following = next_tick(cron, timezone, at - 1e-3)
    if following <= at:
        return following
    return float(_walker(cron, timezone, at).get_prev(float))
