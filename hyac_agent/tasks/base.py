"""The queue-engine interface: what carries task ids from the API to the runners.

The store holds every task's record; an engine only moves the work. ``EmbeddedQueue``
runs tasks inside the agent's own process; ``CeleryQueue`` hands them to a broker that
feeds ``hyac-agent worker`` processes on any number of hosts. Both run a task through
a ``TaskExecutor`` of their own, which hands retries back to the engine's ``submit``.
"""

from __future__ import annotations

import abc

from hyac_agent.store import TaskRecord, VersionRecord
from hyac_agent.tasks.execution import ExecutorParts, TaskExecutor


class TaskQueue(abc.ABC):
    """A queue engine. ``submit`` must not block on the work itself."""

    name: str = "queue"

    def __init__(self, parts: ExecutorParts) -> None:
        self.executor = TaskExecutor(parts, resubmit=self.submit)

    @abc.abstractmethod
    async def start(self) -> None:
        """Begin carrying work (the API process calls this at start-up)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop taking work; runs in progress on this process end or are left to their lease."""

    @abc.abstractmethod
    async def submit(self, task_id: str, run_at: float) -> None:
        """Carry ``task_id`` to a runner, to start no earlier than ``run_at`` (Unix time)."""

    def reserve(self) -> str | None:
        """A runner of this process is free for a task due now: the request id its run
        will have, and the slot is held for it (``start_reserved`` or ``release``). The
        task is then recorded already claimed by this process, which saves the claim's
        round trip to the store. None: the task goes through the queue as usual."""
        return None

    def start_reserved(self, record: TaskRecord, version: VersionRecord) -> None:
        """Run ``record``, stored already claimed with the request id of ``reserve``."""
        raise NotImplementedError

    def release(self, request_id: str) -> None:
        """Give back a slot of ``reserve`` that was not used."""
        raise NotImplementedError

    async def hand_back(self) -> list[str]:
        """This process is stopping: take no more work, and put the tasks running here
        back in the queue for the next runner at once (``TaskExecutor.hand_back``)."""
        return await self.executor.hand_back()

    async def cancel(self, task_id: str) -> None:
        """The store now says ``task_id`` is cancelled: stop its run at once if it is here.

        Runs elsewhere notice on their next lease renewal (within a second)."""
        await self.executor.abort(task_id, "the task was cancelled")

    def stats(self) -> dict[str, object]:
        return {"engine": self.name, "running_here": len(self.executor.running)}
