"""The embedded engine: the agent itself runs its tasks, with nothing to install.

A dispatcher in the agent's event loop takes due tasks from the store (new ones at
once, retries when their backoff is over, runs whose lease expired after a crash) and
runs at most ``concurrency`` of them at a time on the agent's worker pool. The work
runs in sandboxed worker processes, so the API stays responsive while it is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from hyac_agent.services.invoke import new_request_id
from hyac_agent.tasks.base import TaskQueue
from hyac_agent.waiting import wake_or_timeout

if TYPE_CHECKING:
    from hyac_agent.store import TaskRecord, VersionRecord
    from hyac_agent.tasks.execution import ExecutorParts

log = logging.getLogger("hyac.tasks")


class EmbeddedQueue(TaskQueue):
    name = "embedded"

    def __init__(self, parts: ExecutorParts) -> None:
        super().__init__(parts)
        self.concurrency = parts.settings.concurrency
        self._wake = asyncio.Event()
        self._runs: dict[str, asyncio.Task[Any]] = {}
        #: request ids of slots held by ``reserve`` for tasks being stored
        self._reserved: set[str] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._callbacks_due_check = 0.0  # monotonic time of the next look for callbacks

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._dispatch_loop())

    async def hand_back(self) -> list[str]:
        await self._stop_dispatching()  # or the dispatcher would claim them again
        return await super().hand_back()

    async def stop(self) -> None:
        await self._stop_dispatching()
        # Runs in progress are abandoned, not failed: their leases expire and the next
        # start (of this agent or another) runs them again with the next attempt.
        for run in self._runs.values():
            run.cancel()
        await asyncio.gather(*self._runs.values(), return_exceptions=True)
        await self.executor.close()

    async def _stop_dispatching(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task

    async def submit(self, task_id: str, run_at: float) -> None:
        if run_at > time.time():
            return  # found by the dispatcher's next look once it is due
        if self._slot_free() and task_id not in self._runs:
            # A slot is free, so no older task is waiting for it: run this one now
            # rather than after the dispatcher has looked for it in the store. The claim
            # still decides, so the dispatcher finding it too runs it once.
            self._start(task_id)
        else:
            self._wake.set()

    def _slot_free(self) -> bool:
        """The dispatcher runs and fewer than ``concurrency`` runs are here or reserved."""
        dispatching = self._loop_task is not None and not self._loop_task.done()
        return dispatching and len(self._runs) + len(self._reserved) < self.concurrency

    def reserve(self) -> str | None:
        if not self._slot_free():
            return None
        request_id = new_request_id()
        self._reserved.add(request_id)
        return request_id

    def start_reserved(self, record: TaskRecord, version: VersionRecord) -> None:
        assert record.run_request_id is not None
        self._reserved.discard(record.run_request_id)
        self._track(record.id, self.executor.run_reserved(record, version, record.run_request_id))

    def release(self, request_id: str) -> None:
        self._reserved.discard(request_id)
        self._wake.set()

    async def _dispatch_loop(self) -> None:
        while True:
            try:
                await self._dispatch_once()
            except Exception:  # a database hiccup must not stop the dispatcher for good
                log.exception("task dispatch failed")
            await wake_or_timeout(self._wake, self.executor.settings.poll_interval)
            self._wake.clear()

    async def _dispatch_once(self) -> None:
        free = self.concurrency - len(self._runs) - len(self._reserved)
        if free > 0:
            # Found and claimed in one go; a task submit started meanwhile is not claimable.
            for before, claimed in await self.executor.claim_due(free, list(self._runs)):
                self._track(claimed.id, self.executor.run_claimed(before, claimed))
        # A task's callback is sent as the task ends; the store is asked only for the
        # retries that came due, once per poll interval rather than on every wake (a
        # busy queue wakes the dispatcher once per task).
        now = time.monotonic()
        if now >= self._callbacks_due_check:
            self._callbacks_due_check = now + self.executor.settings.poll_interval
            await self.executor.deliver_due_callbacks()

    def _start(self, task_id: str) -> None:
        self._track(task_id, self.executor.run(task_id))

    def _track(self, task_id: str, run: Coroutine[Any, Any, str | None]) -> None:
        """Run ``run`` (a run of ``task_id``) in a slot of this queue."""
        task = asyncio.create_task(run)
        self._runs[task_id] = task
        task.add_done_callback(functools.partial(self._finished, task_id))

    def _finished(self, task_id: str, _run: asyncio.Task[Any]) -> None:
        run = self._runs.pop(task_id, None)
        if run is not None and not run.cancelled() and run.exception() is not None:
            log.error("task %s: the runner failed", task_id, exc_info=run.exception())
        self._wake.set()  # a slot is free

    def stats(self) -> dict[str, object]:
        return {**super().stats(), "concurrency": self.concurrency}
