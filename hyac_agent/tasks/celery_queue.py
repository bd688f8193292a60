"""The Celery engine: tasks travel through a broker (Redis, or RabbitMQ by URL) to
``hyac-agent worker`` processes on any number of hosts.

Agents and workers share only the store (PostgreSQL, which keeps the bundles too: see
hyac_agent/bundles.py), the broker and the secrets key; the broker is Redis
(``redis://``) or RabbitMQ (``amqp://user:password@host:5672/vhost``). A broker message
carries nothing but a task id; the worker claims the task in the store exactly as the
embedded engine does. Messages are acknowledged late and
rejected when their worker is lost, and every worker also sweeps the store for runs
whose lease expired (a worker killed mid-task) and sends them again, so a lost worker
means a retry, never a lost task. Duplicate messages are harmless: only one claim of a
run can succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from hyac_agent.batching import GroupWriter
from hyac_agent.tasks.base import TaskQueue

if TYPE_CHECKING:
    from celery import Celery  # type: ignore[import-untyped]

    from hyac_agent.tasks.execution import ExecutorParts

log = logging.getLogger("hyac.tasks")

RUN_TASK = "hyac.run_task"
#: a due task whose message has not been taken this long is sent again
REDISPATCH_WAITING_AFTER = 300.0


def make_celery_app(broker_url: str, queue: str) -> Celery:
    # Deferred: the embedded default never imports Celery.
    from celery import Celery  # type: ignore[import-untyped]

    app = Celery("hyac", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        enable_utc=True,
    )
    return app


class CeleryQueue(TaskQueue):
    name = "celery"

    def __init__(self, parts: ExecutorParts) -> None:
        super().__init__(parts)
        settings = parts.settings
        self.app = make_celery_app(settings.broker_url, settings.celery_queue)
        self.queue_name = settings.celery_queue
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Messages submitted together are sent by one thread in one go, not a hop to a
        # thread each: under a burst, the threads contending for the interpreter were
        # most of the agent's cost of a task.
        self._sends: GroupWriter[tuple[str, float], None] = GroupWriter(
            self._send_many, self._send)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._sweeper = asyncio.create_task(self._sweep_loop())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for _request_id, run in list(self.executor.running.values()):
            run.cancel()
        await self.executor.close()

    async def submit(self, task_id: str, run_at: float) -> None:
        await self._sends.write((task_id, run_at))

    def _send(self, message: tuple[str, float], producer: Any = None) -> None:
        task_id, run_at = message
        countdown = max(0.0, run_at - time.time())
        self.app.send_task(
            RUN_TASK, args=[task_id], queue=self.queue_name,
            countdown=countdown if countdown > 0.01 else None, producer=producer,
        )

    def _send_many(self, messages: list[tuple[str, float]]) -> list[None]:
        # One producer (one broker connection) for the group. Should one of them fail,
        # each is sent again alone (GroupWriter): a message sent twice is harmless, only
        # one claim of a run can succeed.
        with self.app.producer_or_acquire() as producer:
            for message in messages:
                self._send(message, producer)
        return [None] * len(messages)

    async def _sweep_loop(self) -> None:
        """Send again what a lost worker or a lost message left behind; deliver callbacks."""
        settings = self.executor.settings
        while True:
            await asyncio.sleep(min(settings.lease / 2, 1.0))
            try:
                stranded = await asyncio.to_thread(
                    self.executor.store.mark_dispatched, time.time(),
                    max(REDISPATCH_WAITING_AFTER, settings.lease), 100,
                )
                for task_id in stranded:
                    log.info("task %s: its runner is gone or its message lost; sending it again",
                             task_id)
                    await self.submit(task_id, time.time())
                await self.executor.deliver_due_callbacks()
            except Exception:
                log.exception("task sweep failed")

    # the worker side ---------------------------------------------------------------

    def run_in_worker(self, task_id: str) -> None:
        """Body of the Celery task, on a Celery pool thread: run on the agent's loop."""
        if self._loop is None:
            raise RuntimeError("the worker's event loop is not running")
        future = asyncio.run_coroutine_threadsafe(self.executor.run(task_id), self._loop)
        status = future.result()
        log.info("task %s: %s", task_id, status or "not run here (already taken or ended)")


class WorkerProcess(Protocol):
    """What ``hyac-agent worker`` serves tasks with: the agent's parts, started and
    stopped as one."""

    queue: TaskQueue

    async def start(self) -> None: ...

    async def begin_shutdown(self) -> None: ...

    async def stop(self) -> None: ...


def run_worker(agent: WorkerProcess, concurrency: int, loglevel: str = "INFO") -> None:
    """Serve tasks from the broker until interrupted: ``hyac-agent worker``."""
    import os
    import socket

    queue = agent.queue
    if not isinstance(queue, CeleryQueue):
        raise TypeError("hyac-agent worker needs HYAC_QUEUE=celery")
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def serve_loop() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(agent.start())
        except BaseException as exc:  # reported to the main thread
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve_loop, name="hyac-agent-loop", daemon=True)
    thread.start()
    started.wait()
    if failure:
        raise failure[0]

    @queue.app.task(name=RUN_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def run_task(task_id: str) -> None:
        queue.run_in_worker(task_id)

    from celery.signals import worker_shutting_down  # type: ignore[import-untyped]

    def hand_back(**_signal: object) -> None:
        # A warm shutdown waits for the tasks running here: hand them back first, so the
        # next worker resumes them at once and this one has nothing left to wait for.
        asyncio.run_coroutine_threadsafe(agent.begin_shutdown(), loop)

    worker_shutting_down.connect(hand_back, weak=False)
    node = f"hyac-{os.getpid()}@{socket.gethostname()}"
    try:
        queue.app.worker_main([
            "worker", "--pool=threads", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
            "-Q", queue.queue_name, "-n", node, "--without-gossip", "--without-mingle",
            "--without-heartbeat",
        ])
    finally:
        asyncio.run_coroutine_threadsafe(agent.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
