from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from hyac_agent.logbus import LogBus
from hyac_agent.store import LogRetention


class SlowStore:
    """Records appended lines; the first append takes a while, as a busy disk would."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.slowed = False
        self.writing = threading.Event()  # the slow append has begun

    def append_logs(self, records: Any) -> None:
        if not self.slowed:
            self.slowed = True
            self.writing.set()
            time.sleep(0.3)
        with self.lock:
            self.lines.extend(r.message for r in records)

    def trim_logs(self, tenant: str, retention: Any) -> int:
        return 0


def test_flush_waits_for_a_batch_already_being_written() -> None:
    async def scenario() -> list[str]:
        store = SlowStore()
        bus = LogBus(store, LogRetention())  # type: ignore[arg-type]
        bus.emit(tenant="t", function="f", version=1, stream="stdout", message="first")
        background = asyncio.create_task(bus.flush())  # takes "first", writes for 0.3 s
        assert await asyncio.to_thread(store.writing.wait, 30)
        bus.emit(tenant="t", function="f", version=1, stream="system", message="second")
        await bus.flush()  # a reader flushing before it queries
        seen = list(store.lines)
        await background
        return seen

    assert asyncio.run(scenario()) == ["first", "second"]


def test_a_tenant_being_removed_logs_nothing_that_outlives_it() -> None:
    """Lines of a tenant's workers logged while it is removed would be stored after its
    rows are deleted, where a tenant made again under its name would read them."""
    async def scenario() -> list[str]:
        store = SlowStore()
        store.slowed = True  # no slow first write here
        bus = LogBus(store, LogRetention())  # type: ignore[arg-type]
        bus.emit(tenant="gone", function="f", version=1, stream="stdout", message="buffered")
        bus.emit(tenant="kept", function="f", version=1, stream="stdout", message="other")
        await bus.removing("gone")
        bus.emit(tenant="gone", function="f", version=1, stream="system", message="draining")
        await bus.flush()
        bus.removed("gone")
        bus.emit(tenant="gone", function="f", version=1, stream="stdout", message="made again")
        await bus.flush()
        return list(store.lines)

    assert asyncio.run(scenario()) == ["other", "made again"]
