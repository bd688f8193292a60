"""Runs each schedule's ticks as tasks: exactly one agent per tick, however many share
the store.

Guarantees, before the code:
- **One run per tick.** An agent that finds a schedule due moves its ``next_run_at`` on
  with a guarded UPDATE (``WHERE next_run_at = <the tick it read>``); only the agent
  whose UPDATE matched runs the tick, and the task's id is derived from (schedule, tick),
  so not even a retried insert can make a second task. An agent that crashes between its
  claim and the task's insert loses that one tick (at most once, never twice).
- **Missed ticks.** A tick more than ``late_after`` seconds past was missed (no agent
  ran then). ``catch_up = "once"`` runs the latest missed tick once, late; ``"skip"``
  runs none. Either way the schedule goes on from the next tick after now.
- **No pile-up.** A tick whose schedule's previous task is still held back by the
  tenant's execution quota runs nothing, and the function's log says so: a schedule
  faster than its tenant's quota keeps one task waiting, not a growing queue of them.
- **Time.** Ticks are computed in the schedule's timezone by croniter; the clock is
  injectable (``run_due(now)``) so tests need not wait for the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import IntegrityError

from hyac_agent.logbus import LogBus
from hyac_agent.store import Store
from hyac_agent.triggers import tables as t
from hyac_agent.triggers.cron import latest_tick, next_tick
from hyac_agent.triggers.store import Row, TriggerStore
from hyac_common.errors import HyacError, NotFound
from hyac_common.tasks import TaskStatus

log = logging.getLogger("hyac.triggers")

#: schedules looked at per round, and ticks of one schedule run per round (a per-second
#: schedule on an agent that fell behind catches up over a few rounds)
BATCH = 200
TICKS_PER_ROUND = 10

Fire = Callable[..., Awaitable[Any]]


def tick_task_id(schedule_id: str, tick: float) -> str:
    """The one task id a tick can have (the same ``task_`` + 20 hex form as any task)."""
    return "task_" + hashlib.sha256(f"{schedule_id}:{tick!r}".encode()).hexdigest()[:20]


class Scheduler:
    def __init__(self, store: TriggerStore, tasks: Store, logbus: LogBus, fire: Fire,
                 interval: float, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.tasks = tasks
        self.logbus = logbus
        self.fire = fire
        self.interval = interval
        self.clock = clock
        #: a tick this far past is one no agent ran in time
        self.late_after = max(30.0, 10 * interval)
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="hyac-scheduler")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task

    async def _run(self) -> None:
        while True:
            try:
                await self.run_due()
            except Exception:  # the store is away for a moment: try again next round
                log.exception("scheduler round failed")
            await asyncio.sleep(self.interval)

    async def run_due(self, now: float | None = None) -> list[str]:
        """Run every tick due at ``now`` (default: the clock); the ids of tasks made."""
        now = self.clock() if now is None else now
        made: list[str] = []
        for row in await asyncio.to_thread(self.store.due_schedules, now, BATCH):
            try:
                made.extend(await self._run_schedule(row, now))
            except Exception:  # one schedule's trouble (the store) does not stop the others
                log.exception("schedule %s of %s/%s failed this round",
                              row.id, row.tenant, row.function)
        return made

    async def _run_schedule(self, row: Row, now: float) -> list[str]:
        made: list[str] = []
        for _ in range(TICKS_PER_ROUND):
            tick, seen, upcoming = self._next_step(row, now)
            if not await asyncio.to_thread(self.store.claim_tick, row.id, seen, upcoming, tick):
                break  # another agent took it, or it was paused or changed
            if tick is not None:
                task_id = await self._run_tick(row, tick)
                if task_id:
                    made.append(task_id)
            if upcoming > now:
                break
            row = row._replace(next_run_at=upcoming)
        return made

    def _next_step(self, row: Row, now: float) -> tuple[float | None, float, float]:
        """(the tick to run, or None; the next_run_at seen; the next_run_at after it)."""
        seen = row.next_run_at
        if now - seen <= self.late_after:
            return seen, seen, next_tick(row.cron, row.timezone, seen)
        upcoming = next_tick(row.cron, row.timezone, now)
        if row.catch_up == "skip":
            return None, seen, upcoming
        return latest_tick(row.cron, row.timezone, now), seen, upcoming

    async def _run_tick(self, row: Row, tick: float) -> str | None:
        if row.last_task_id:
            previous = await asyncio.to_thread(self.tasks.get_task, row.last_task_id)
            # queued with an error: put back to wait for the quota (TaskExecutor._defer)
            if previous is not None and previous.status == TaskStatus.QUEUED \
                    and previous.error is not None:
                self.logbus.emit(
                    tenant=row.tenant, function=row.function, version=previous.version,
                    stream="system", level="WARNING",
                    message=f"schedule {row.id} skipped a tick: its previous task "
                            f"{previous.id} still waits for the tenant's execution quota")
                return None
        trigger = {"kind": "schedule", "id": row.id, "tick": tick}
        body = json.dumps({"source": "schedule", "schedule": row.id, "tick": tick,
                           "cron": row.cron, "timezone": row.timezone}).encode()
        try:
            record = await self.fire(row.tenant, row.function, body,
                                     {"content-type": "application/json"}, trigger, t.schedules,
                                     task_id=tick_task_id(row.id, tick))
        except IntegrityError:  # this tick's task exists already
            return None
        except NotFound as exc:  # its tenant was removed: the schedule goes too
            log.warning("schedule %s of %s/%s removed: %s", row.id, row.tenant, row.function,
                        exc.message)
            await asyncio.to_thread(self.store.remove_function, row.tenant, row.function)
            return None
        except HyacError as exc:
            log.warning("schedule %s of %s/%s did not run its tick: %s",
                        row.id, row.tenant, row.function, exc.message)
            return None
        return str(record.id)
