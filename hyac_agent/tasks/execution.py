"""Running one task, the same way in every engine: claim, run, record, retry or die,
and tell the callback URL.

A run is *claimed* by a guarded UPDATE that leases the task to this process under a
fresh request id; the lease is renewed every heartbeat while the function runs. A run
whose renewal fails (the task was cancelled, or its lease ran out and another runner
took it over) is stopped at once by killing its worker, so one task never runs twice
at the same time. A process that dies mid-run stops renewing: once the lease expires
the task is claimable again and runs with the next attempt number (at-least-once), and
the runner that takes it over says so in its log. A process that stops on purpose
hands its runs back at once (``hand_back``): due now, the attempt not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hyac_agent.batching import GroupWriter
from hyac_agent.services.functions import FunctionService
from hyac_agent.services.invoke import InvokeService, new_request_id
from hyac_agent.store import Store, TaskRecord, VersionRecord
from hyac_agent.tasks import callbacks, destinations
from hyac_agent.tasks.outcomes import TaskOutcomes
from hyac_agent.tasks.settings import TaskSettings
from hyac_common.errors import HyacError, InvocationFailed, NotFound
from hyac_common.tasks import TASK_EXPIRED, TASK_LOST, TaskStatus
from hyac_common.wire import InvokeRequest, TaskError, TaskInfo, TaskResult

log = logging.getLogger("hyac.tasks")

#: a task whose runner vanished this many times is dead rather than retried forever
MAX_LOST_RUNS = 5
#: how long one callback delivery attempt may hold its claim
CALLBACK_HOLD = 60.0
CALLBACK_TIMEOUT = 10.0


def backoff(failures: int, base: float, cap: float) -> float:
    """Seconds before retry number ``failures``: exponential, capped, with jitter.

    The delay doubles from ``base`` up to ``cap``; the wait is drawn from the upper half
    of it, so retries of many tasks that failed together spread out."""
    delay = min(cap, base * (2 ** max(failures - 1, 0)))
    return delay / 2 + random.uniform(0, delay / 2)


def quota_wait(quota: str, now: float) -> float:
    """Seconds a task waits when ``quota`` is used up: to the next window of a rate
    quota, a moment for concurrency; with jitter so waiting tasks do not stampede."""
    if quota == "executions_per_minute":
        wait = 60 - now % 60
    elif quota == "executions_per_day":
        wait = 86400 - now % 86400
    else:
        wait = 1.0
    return wait + random.uniform(0, 1)


def task_info(record: TaskRecord) -> TaskInfo:
    return TaskInfo(
        id=record.id, tenant=record.tenant, function=record.function, version=record.version,
        status=record.status,  # type: ignore[arg-type]
        # Runs before a retry and runs lost with their process do not count against
        # the retries: each gives the task one run more.
        attempt=record.attempt,
        max_attempts=(record.earlier_attempts or 0) + record.max_attempts + record.lost,
        created_at=record.created_at, run_at=record.run_at, started_at=record.started_at,
        finished_at=record.finished_at, progress=record.progress,
        progress_message=record.progress_message or "",
        result=TaskResult.model_validate_json(record.result) if record.result else None,
        error=TaskError.model_validate_json(record.error) if record.error else None,
        request_id=record.run_request_id, worker=record.lease_owner,
        callback_url=record.callback_url,
        callback_status=record.callback_status,  # type: ignore[arg-type]
        callback_attempts=record.callback_attempts,
        trigger=json.loads(record.started_by) if record.started_by else None,
    )


def runner_name() -> str:
    """How a runner names itself in leases and in ``TaskInfo.worker``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class ExecutorParts:
    """What tasks are run with; each queue engine makes its ``TaskExecutor`` of them."""

    store: Store
    functions: FunctionService
    invoker: InvokeService
    settings: TaskSettings
    #: a tenant's callback signing key (blocking: it may read the store)
    signing_key: Callable[[str], str]
    #: told once of each task that ended (succeeded or dead), by the process that ended it
    outcomes: TaskOutcomes


class TaskExecutor:
    """Runs tasks on this process's worker pool, the same way in every queue engine;
    each engine makes its own (``TaskQueue``) and takes the retries back through
    ``resubmit``."""

    def __init__(
        self, parts: ExecutorParts, resubmit: Callable[[str, float], Awaitable[None]]
    ) -> None:
        self.store = parts.store
        self.functions = parts.functions
        self.invoker = parts.invoker
        self.settings = parts.settings
        self.owner = runner_name()
        self._signing_key = parts.signing_key
        self._outcomes = parts.outcomes
        #: task id -> (request id of its run here, the asyncio task running it)
        self.running: dict[str, tuple[str, asyncio.Task[Any]]] = {}
        self._aborted: set[str] = set()
        self._background: set[asyncio.Task[Any]] = set()
        #: the queue engine's submit: carries a task to be retried at the given time
        self.resubmit = resubmit
        # Runs that end together record their outcomes in one transaction.
        store = parts.store
        self._finishes: GroupWriter[tuple[str, str, dict[str, Any]], bool] = GroupWriter(
            store.finish_runs, lambda run: store.finish_run(*run))

    async def _finish_run(self, task_id: str, request_id: str, values: dict[str, Any]) -> bool:
        """``store.finish_run``, grouped with the runs ending at the same time."""
        return await self._finishes.write((task_id, request_id, values))

    # one run --------------------------------------------------------------------------

    async def run(self, task_id: str) -> str | None:
        """Claim and run ``task_id`` once, if it is due; its status afterwards (None if
        this process did not run it)."""
        # Found and claimed in one trip to the store; one that waited past its max age
        # then ends dead without its attempt counted (run_claimed), as a claim_due does.
        found = await asyncio.to_thread(
            self.store.claim_found, task_id, self.owner, new_request_id(), time.time(),
            self.settings.lease,
        )
        if found is None:
            return None
        return await self.run_claimed(*found)

    async def claim_due(self, limit: int, exclude: list[str]) -> list[tuple[TaskRecord, TaskRecord]]:
        """Claim up to ``limit`` due tasks at once (the embedded dispatcher's look): each
        (as found, as claimed) is then run by ``run_claimed``."""
        return await asyncio.to_thread(
            self.store.claim_due, time.time(), limit, exclude, self.owner, self.settings.lease,
            new_request_id,
        )

    async def run_claimed(self, before: TaskRecord, claimed: TaskRecord) -> str | None:
        """Run a task ``claim_due`` claimed here; one that waited past its max age ends
        dead instead, its attempt not counted."""
        version = await self._version(claimed)
        if self._expired(before, version, time.time()):
            assert claimed.run_request_id is not None and version is not None
            now = time.time()
            if await self._finish_run(claimed.id, claimed.run_request_id, {
                # as if it had never been claimed: it did not run
                "status": TaskStatus.DEAD, "attempt": before.attempt,
                "started_at": before.started_at, "lease_owner": before.lease_owner,
                "run_request_id": before.run_request_id,
                "error": self._expiry_error(version).model_dump_json(),
                "finished_at": now, "updated_at": now, **self._callback_values(claimed, now),
            }):
                self._after_end(claimed, TaskStatus.DEAD)
                return TaskStatus.DEAD
            return None
        return await self._run_after_claim(before, claimed, version)

    @staticmethod
    def _expired(record: TaskRecord, version: VersionRecord | None, now: float) -> bool:
        """Whether ``record``, waiting to run, waited longer than its version allows."""
        max_age = version.config.task_max_age if version else None
        waiting_since = record.queued_at or record.created_at
        return bool(record.status != TaskStatus.RUNNING and max_age
                    and now - waiting_since > max_age)

    @staticmethod
    def _expiry_error(version: VersionRecord | None) -> TaskError:
        max_age = version.config.task_max_age if version else 0
        return TaskError(
            code=TASK_EXPIRED,
            message=f"the task waited more than its max age ({max_age:g}s) and was not run",
        )

    async def _run_after_claim(self, before: TaskRecord, claimed: TaskRecord,
                               version: VersionRecord | None) -> str | None:
        request_id = claimed.run_request_id
        assert request_id is not None
        if before.status == TaskStatus.RUNNING:  # claimable once its lease ran out
            self._log_take_over(before, claimed)
        if claimed.lost >= MAX_LOST_RUNS:
            error = TaskError(
                code=TASK_LOST,
                message=f"the process running this task vanished {claimed.lost} times",
            )
            return await self._record_failure(claimed, request_id, error, retry=False)
        if version is None:
            error = TaskError(
                code=NotFound.code,
                message=f"version {claimed.version} of function {claimed.function!r} is gone",
            )
            return await self._record_failure(claimed, request_id, error, retry=False)
        status = await self._run_claimed(claimed, version, request_id)
        self.invoker.metrics.task_run_ended(claimed.tenant, claimed.function, status)
        return status

    async def run_reserved(self, record: TaskRecord, version: VersionRecord,
                           request_id: str) -> str | None:
        """Run ``record``, stored already claimed by this process under ``request_id``
        (a new task submitted while a runner was free: ``TaskQueue.reserve``)."""
        status = await self._run_claimed(record, version, request_id)
        self.invoker.metrics.task_run_ended(record.tenant, record.function, status)
        return status

    def _log_take_over(self, before: TaskRecord, claimed: TaskRecord) -> None:
        """Say which run this process resumes: its runner stopped renewing the lease
        (killed, or its host lost) without handing the task back."""
        message = (
            f"resuming task {claimed.id} ({claimed.tenant}/{claimed.function}): its run "
            f"{before.run_request_id} on {before.lease_owner} stopped renewing its lease; "
            f"attempt {claimed.attempt} of {claimed.max_attempts}"
        )
        log.warning("%s", message)
        self.invoker.logbus.emit(
            tenant=claimed.tenant, function=claimed.function, version=claimed.version,
            stream="system", level="WARNING", message=message,
        )

    async def _version(self, record: TaskRecord) -> VersionRecord | None:
        # Most tasks run their function's active version, which the invoke path keeps
        # cached (dropped on every deploy, rollback and removal); versions never change,
        # so the cached record is the stored one and needs no read.
        with contextlib.suppress(HyacError):
            active = await self.functions.active_version(record.tenant, record.function)
            if active.number == record.version:
                return active
        return await asyncio.to_thread(
            self.store.get_version, record.tenant, record.function, record.version
        )

    async def _run_claimed(
        self, task: TaskRecord, version: VersionRecord, request_id: str
    ) -> str | None:
        request = InvokeRequest.model_validate_json(task.request)
        if task.started_by:  # the run's own log lines say what started it
            from hyac_common.triggers import describe_trigger

            self.invoker.logbus.emit(
                tenant=task.tenant, function=task.function, version=task.version,
                stream="system", request_id=request_id,
                message=f"task {task.id} started by {describe_trigger(json.loads(task.started_by))}",
            )
        run = asyncio.create_task(self.invoker.invoke(
            task.tenant, task.function, request, client_ip=task.client_ip,
            request_id=request_id, version=version,
            task={"id": task.id, "attempt": task.attempt},
        ))
        self.running[task.id] = (request_id, run)
        heartbeat = asyncio.create_task(self._heartbeat(task.id, request_id))
        try:
            result = await run
        except asyncio.CancelledError:
            if task.id not in self._aborted:
                raise
            return None
        except NotFound as exc:
            return await self._record_failure(
                task, request_id, TaskError(code=exc.code, message=exc.message), retry=False
            )
        except HyacError as exc:  # timeout, worker crashed, out of memory, load error
            if task.id in self._aborted:
                return None
            if exc.code == "quota_exceeded" and exc.status == 429:
                return await self._defer(task, request_id, exc)
            error = TaskError(
                code=exc.code, type=str(exc.details.get("type", "")), message=exc.message,
                traceback=str(exc.details.get("traceback", "")),
            )
            return await self._record_failure(task, request_id, error, retry=True)
        finally:
            heartbeat.cancel()
            self.running.pop(task.id, None)
            self._aborted.discard(task.id)
        if not result.ok:
            assert result.error is not None
            error = TaskError(
                code=InvocationFailed.code, type=result.error.type, message=result.error.message,
                traceback=result.error.traceback,
            )
            return await self._record_failure(task, request_id, error, retry=True)
        outcome = TaskResult(status=result.status, headers=result.headers, body_b64=result.body_b64)
        now = time.time()
        if await self._finish_run(task.id, request_id, {
            "status": TaskStatus.SUCCEEDED, "result": outcome.model_dump_json(), "error": None,
            "progress": 1.0,
            "finished_at": now, "updated_at": now, **self._callback_values(task, now),
        }):
            self._after_end(task, TaskStatus.SUCCEEDED)
            return TaskStatus.SUCCEEDED
        return None

    async def _defer(self, task: TaskRecord, request_id: str, exc: HyacError) -> str | None:
        """The tenant's execution rate or concurrency is used up: the task waits for it
        instead of failing. It keeps its attempts; its error says why it waits."""
        now = time.time()
        run_at = now + quota_wait(str(exc.details.get("quota", "")), now)
        error = TaskError(code=exc.code, message=f"waiting for the quota: {exc.message}")
        values: dict[str, Any] = {
            "status": TaskStatus.QUEUED, "run_at": run_at, "dispatched_at": now, "updated_at": now,
            "attempt": max(task.attempt - 1, 0), "error": error.model_dump_json(),
        }
        if not await self._finish_run(task.id, request_id, values):
            return None
        await self.resubmit(task.id, run_at)
        return TaskStatus.QUEUED

    async def _record_failure(
        self, task: TaskRecord, request_id: str, error: TaskError, *, retry: bool
    ) -> str | None:
        failures = task.failures + 1
        now = time.time()
        values: dict[str, Any] = {"failures": failures, "error": error.model_dump_json(),
                                  "updated_at": now}
        version = await self._version(task)
        if retry and failures < task.max_attempts and version is not None:
            config = version.config
            run_at = now + backoff(failures, config.retry_backoff, config.retry_backoff_max)
            values.update(status=TaskStatus.FAILED, run_at=run_at, dispatched_at=now)
            if not await self._finish_run(task.id, request_id, values):
                return None
            await self.resubmit(task.id, run_at)
            return TaskStatus.FAILED
        values.update(status=TaskStatus.DEAD, finished_at=now, **self._callback_values(task, now))
        if not await self._finish_run(task.id, request_id, values):
            return None
        self._after_end(task, TaskStatus.DEAD)
        return TaskStatus.DEAD

    async def _heartbeat(self, task_id: str, request_id: str) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat)
            try:
                kept = await asyncio.to_thread(
                    self.store.renew_lease, task_id, request_id, time.time() + self.settings.lease
                )
            except Exception:  # a database hiccup: the lease still runs for a while
                log.exception("could not renew the lease of task %s", task_id)
                continue
            if not kept:
                # Cancelled, or our lease ran out and another runner has the task now.
                asyncio.create_task(self.abort(task_id, "the task was cancelled or taken over"))
                return

    async def abort(self, task_id: str, reason: str) -> None:
        """Stop the run of ``task_id`` on this process, if there is one, by killing its
        worker (the only way to stop code that does not cooperate)."""
        entry = self.running.get(task_id)
        if entry is None:
            return
        request_id, run = entry
        self._aborted.add(task_id)
        await self.invoker.abort(request_id, reason)
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(run), 5)
        if not run.done():  # still waiting for a worker to start: stop waiting
            run.cancel()

    async def hand_back(self) -> list[str]:
        """Put every task running here back in the queue, due now and its attempt not
        counted, and end its run here: this process is stopping, the task did not fail.
        The next runner claims it at once instead of waiting for the lease to run out."""
        handed: list[str] = []
        now = time.time()
        for task_id, (request_id, _run) in list(self.running.items()):
            if not await asyncio.to_thread(self.store.release_task, task_id, request_id, now):
                continue  # it ended or was cancelled meanwhile
            handed.append(task_id)
            await self.abort(task_id, "the runner is stopping; the task went back to the queue")
            await self.resubmit(task_id, now)
        if handed:
            log.info("handed %d running task(s) back to the queue: %s",
                     len(handed), ", ".join(handed))
        return handed

    # completion callbacks ------------------------------------------------------------

    @staticmethod
    def _callback_values(task: TaskRecord, now: float) -> dict[str, Any]:
        if not task.callback_url:
            return {}
        return {"callback_status": "pending", "callback_next_at": now}

    def _after_end(self, task: TaskRecord, status: str) -> None:
        if task.callback_url:
            self.spawn(self.deliver_callback(task.id))
        for listener in self._outcomes.listeners:
            self.spawn(listener(task, status))

    def spawn(self, coroutine: Any) -> None:
        job = asyncio.create_task(coroutine)
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def deliver_due_callbacks(self) -> None:
        due = await asyncio.to_thread(self.store.due_callbacks, time.time(), 20)
        for task_id in due:
            self.spawn(self.deliver_callback(task_id))

    async def deliver_callback(self, task_id: str) -> None:
        """One delivery attempt of ``task_id``'s completion callback, if it is due."""
        task = await asyncio.to_thread(
            self.store.claim_callback, task_id, time.time(), CALLBACK_HOLD
        )
        if task is None or not task.callback_url:
            return
        attempts = task.callback_attempts + 1
        info = task_info(task).model_copy(update={"callback_attempts": attempts})
        now = time.time()
        body = json.dumps({
            "event": f"task.{task.status}", "sent_at": now,
            "task": info.model_dump(mode="json"),
        }, separators=(",", ":")).encode()
        timestamp = str(int(now))
        key = await asyncio.to_thread(self._signing_key, task.tenant)
        headers = {
            "content-type": "application/json",
            "user-agent": "hyac-agent",
            callbacks.SIGNATURE_HEADER: callbacks.sign(key, task.tenant, timestamp, body),
            callbacks.TIMESTAMP_HEADER: timestamp,
            callbacks.TENANT_HEADER: task.tenant,
            "X-Hyac-Event": f"task.{task.status}",
            "X-Hyac-Task-Id": task.id,
            "X-Hyac-Delivery-Attempt": str(attempts),
        }
        delivered = refused = False
        try:
            destination = await destinations.resolve(
                destinations.parse_url(task.callback_url), self.settings.callback_allowed,
                tenant=task.tenant, timeout=CALLBACK_TIMEOUT,
            )
            status = await asyncio.wait_for(
                callbacks.post(destination, headers, body, CALLBACK_TIMEOUT), CALLBACK_TIMEOUT * 2
            )
            delivered = 200 <= status < 300
            if not delivered:
                log.info("callback of %s answered HTTP %s", task.id, status)
        except HyacError as exc:  # refused by policy, or a URL stored before the checks
            refused = True
            self._tell_tenant(task, f"callback of task {task.id} not sent: {exc.message}")
        except Exception as exc:  # no answer: name not found, refused, reset, timed out
            log.info("callback of %s failed: %s", task.id, exc)
        if delivered:
            outcome, next_at = "delivered", None
        elif refused or attempts > self.settings.callback_retries:
            # A refusal is not retried and reads like any failed delivery, so the task's
            # status tells nothing about what answers at a refused address.
            outcome, next_at = "failed", None
        else:
            wait = backoff(attempts, self.settings.callback_backoff,
                           self.settings.callback_backoff_max)
            outcome, next_at = "pending", time.time() + wait
        await asyncio.to_thread(self.store.record_callback, task.id, outcome, attempts, next_at)

    def _tell_tenant(self, task: TaskRecord, message: str) -> None:
        self.invoker.logbus.emit(tenant=task.tenant, function=task.function,
                                 version=task.version, stream="system", message=message)

    async def close(self) -> None:
        for job in list(self._background):
            job.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
