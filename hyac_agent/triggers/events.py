"""Events that run functions: a tenant's storage puts and deletes, and the outcomes of
its functions' tasks. Each matching subscription gets one task with the event as body.

Loops are cut: an event caused by a task that an event started is one deeper than that
task (``trigger.depth``); past ``max_depth`` the event runs nothing and the tenant's log
says so. A function writing under the prefix it watches, or two functions watching each
other's outcomes, stop there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hyac_agent.logbus import LogBus
from hyac_agent.store import Store, TaskRecord
from hyac_agent.tasks import task_info
from hyac_agent.triggers import tables as t
from hyac_agent.triggers.cause import CAUSE
from hyac_agent.triggers.store import Row, TriggerStore
from hyac_common.errors import HyacError
from hyac_common.wire import ObjectInfo

log = logging.getLogger("hyac.triggers")

Fire = Callable[..., Awaitable[Any]]


def depth_of(record: TaskRecord | None) -> int:
    """How many events deep ``record`` is: 0 for a task that no event started."""
    if record is None or not record.started_by:
        return 0
    return int(json.loads(record.started_by).get("depth", 0))


class EventDispatcher:
    def __init__(self, store: TriggerStore, tasks: Store, fire: Fire, logbus: LogBus,
                 max_depth: int) -> None:
        self.store = store
        self.tasks = tasks
        self.fire = fire
        self.logbus = logbus
        self.max_depth = max_depth
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Future[Any]] = set()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    # storage: called on the thread that wrote the object ------------------------------

    def storage_changed(self, tenant: str, event: str, key: str, info: ObjectInfo | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        body: dict[str, Any] = {"source": "storage", "event": event, "key": key, "at": time.time()}
        if info is not None:
            body.update(size=info.size, content_type=info.content_type, sha256=info.sha256)
        cause = CAUSE.get()
        future = asyncio.run_coroutine_threadsafe(self._storage(tenant, body, cause), loop)
        self._pending.add(future)  # type: ignore[arg-type]
        future.add_done_callback(self._pending.discard)  # type: ignore[arg-type]

    async def _storage(self, tenant: str, body: dict[str, Any], cause: str | None) -> None:
        rows = await asyncio.to_thread(self.store.subscribers, tenant, "storage")
        rows = [r for r in rows if body["event"] in r.events.split(",")
                and body["key"].startswith(r.prefix or "")]
        if not rows:
            return
        causing = None if cause is None else await asyncio.to_thread(
            self.tasks.task_of_request, cause)
        await self._deliver(tenant, rows, body, depth_of(causing) + 1)

    # task outcomes: called once per task end --------------------------------------------

    async def task_ended(self, record: TaskRecord, status: str) -> None:
        rows = await asyncio.to_thread(self.store.subscribers, record.tenant, "task")
        rows = [r for r in rows if r.watched == record.function and status in r.events.split(",")]
        if not rows:
            return
        ended = await asyncio.to_thread(self.tasks.get_task, record.id)
        info = task_info(ended or record).model_dump(mode="json")
        body = {"source": "task", "event": status, "function": record.function,
                "task": info, "at": time.time()}
        await self._deliver(record.tenant, rows, body, depth_of(record) + 1)

    async def _deliver(self, tenant: str, rows: list[Row], body: dict[str, Any],
                       depth: int) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        for row in rows:
            if depth > self.max_depth:
                message = (f"{body['source']} event {body['event']} did not start {row.function} "
                           f"(subscription {row.id}): {depth} events deep, over the limit of "
                           f"{self.max_depth} (HYAC_TRIGGER_MAX_DEPTH); a loop?")
                log.warning("tenant %s: %s", tenant, message)
                self.logbus.emit(tenant=tenant, function=row.function, version=0,
                                 stream="system", level="WARNING", message=message)
                continue
            trigger = {"kind": body["source"], "id": row.id, "event": body["event"],
                       "depth": depth}
            try:
                await self.fire(tenant, row.function, data, {"content-type": "application/json"},
                                trigger, t.subscriptions)
            except HyacError as exc:  # the subscriber is gone
                log.info("subscription %s did not run %s/%s: %s", row.id, tenant, row.function,
                         exc.message)
            except Exception:
                log.exception("subscription %s of %s failed", row.id, tenant)
