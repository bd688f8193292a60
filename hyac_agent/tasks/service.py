"""Background tasks, as the API and host calls see them: submit, list, show, cancel,
retry, and what a running function may do (enqueue another task, report progress)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import math
import time
from typing import TYPE_CHECKING, Any

from hyac_agent.batching import GroupWriter
from hyac_agent.ids import random_hex
from hyac_agent.services.functions import FunctionService
from hyac_agent.store import Store, TaskRecord
from hyac_agent.store.text import storable
from hyac_agent.tasks.destinations import check_submitted
from hyac_agent.tasks.execution import task_info
from hyac_common.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from hyac_common.names import validate_name
from hyac_common.tasks import RETRYABLE, TERMINAL, TaskStatus
from hyac_common.wire import InvokeRequest, TaskInfo

if TYPE_CHECKING:
    from hyac_agent.tasks.base import TaskQueue

MAX_DELAY = 30 * 86400.0
MAX_PAYLOAD = 6 * 1024 * 1024
MAX_PROGRESS_MESSAGE = 1000


def new_task_id() -> str:
    return "task_" + random_hex(10)


def _has_ended(status: str) -> str:
    """How a task in an end status is said: "has already succeeded", "is already dead"."""
    ended: dict[str, str] = {
        TaskStatus.SUCCEEDED: "has already succeeded",
        TaskStatus.CANCELLED: "has already been cancelled",
        TaskStatus.DEAD: "is already dead",
    }
    return ended.get(status, f"is {status}")


class TaskService:
    def __init__(self, store: Store, functions: FunctionService, queue: TaskQueue) -> None:
        self.store = store
        self.functions = functions
        self.queue = queue
        # Tasks submitted together are stored in one transaction: a burst of submissions
        # pays one commit and one hop to a thread per group, not one each.
        self._creates: GroupWriter[TaskRecord, None] = GroupWriter(
            self._create_many, store.create_task)

    def _create_many(self, records: list[TaskRecord]) -> list[None]:
        self.store.create_tasks(records)
        return [None] * len(records)

    def check_callback_url(self, url: str | None) -> str | None:
        """``url`` if callbacks may be sent there as far as can be told now (a literal
        address is checked at once, a name when the callback is sent); None if empty."""
        if url is None or url == "":
            return None
        check_submitted(url, self.queue.executor.settings.callback_allowed)
        return url

    async def submit(
        self,
        tenant: str,
        name: str,
        request: InvokeRequest,
        *,
        client_ip: str = "",
        delay: float = 0.0,
        callback_url: str | None = None,
        trigger: dict[str, Any] | None = None,
        task_id: str | None = None,
    ) -> TaskRecord:
        """Record a task for the active version of ``tenant/name`` and queue it.

        ``trigger`` says what started it (a schedule, an event, a webhook), shown with the
        task; ``task_id`` names it where the trigger must not make the same task twice (a
        second insert of that id fails in the store)."""
        version = await self.functions.active_version(tenant, name)
        if not (isinstance(delay, (int, float)) and 0 <= delay <= MAX_DELAY) or math.isnan(delay):
            raise InvalidInput(f"delay must be between 0 and {MAX_DELAY:g} seconds")
        now = time.time()
        record = TaskRecord(
            id=task_id or new_task_id(), tenant=tenant, function=name, version=version.number,
            status=TaskStatus.QUEUED, request=request.model_dump_json(), client_ip=client_ip,
            attempt=0, failures=0, lost=0, max_attempts=version.config.retries + 1,
            created_at=now, run_at=now + delay, started_at=None, finished_at=None,
            updated_at=now, lease_owner=None, lease_expires=None, run_request_id=None,
            dispatched_at=now, progress=None, progress_message="", result=None, error=None,
            callback_url=self.check_callback_url(callback_url) or version.config.callback_url,
            callback_status=None, callback_attempts=0, callback_next_at=None,
            started_by=json.dumps(trigger, separators=(",", ":")) if trigger else None,
        )
        # A runner of this process is free: the task is stored already claimed by it
        # (one write instead of a write and a claim) and starts at once.
        reserved = self.queue.reserve() if delay == 0 else None
        if reserved is not None:
            settings = self.queue.executor.settings
            claimed = dataclasses.replace(
                record, status=TaskStatus.RUNNING, attempt=1, started_at=now,
                lease_owner=self.queue.executor.owner, lease_expires=now + settings.lease,
                run_request_id=reserved,
            )
            try:
                await self._creates.write(claimed)
            except BaseException:
                self.queue.release(reserved)
                raise
            self.queue.start_reserved(claimed, version)
            return record
        await self._creates.write(record)
        await self.queue.submit(record.id, record.run_at)
        return record

    async def get(self, tenant: str, task_id: str) -> TaskInfo:
        return task_info(await self._own(tenant, task_id))

    async def list(
        self, tenant: str, function: str | None, status: str | None, limit: int
    ) -> list[TaskInfo]:
        if function:
            validate_name(function)
        if status and status not in tuple(TaskStatus):
            raise InvalidInput(f"unknown status {status!r} (one of {', '.join(TaskStatus)})")
        records = await asyncio.to_thread(self.store.list_tasks, tenant, function, status, limit)
        return [task_info(r) for r in records]

    async def cancel(self, tenant: str, task_id: str) -> TaskInfo:
        record = await self._own(tenant, task_id)
        before = await asyncio.to_thread(self.store.cancel_task, task_id, time.time())
        if before is None:
            ended = await self._own(tenant, task_id)
            raise Conflict(f"task {task_id} {_has_ended(ended.status)}: there is nothing to cancel")
        if before == TaskStatus.RUNNING:
            await self.queue.cancel(task_id)
        if record.callback_url:
            self.queue.executor.spawn(self.queue.executor.deliver_callback(task_id))
        return await self.get(tenant, task_id)

    async def retry(self, tenant: str, task_id: str) -> TaskInfo:
        await self._own(tenant, task_id)  # another tenant's task is not found, not refused
        if not await asyncio.to_thread(self.store.revive_task, task_id, time.time()):
            current = await self._own(tenant, task_id)
            state = (_has_ended(current.status) if current.status == TaskStatus.SUCCEEDED
                     else f"is {current.status}")
            raise Conflict(
                f"task {task_id} {state}: only {' or '.join(RETRYABLE)} tasks can be retried"
            )
        # The task as revived (queued): read before it is sent, so the answer does not
        # depend on how soon a runner claims it.
        revived = await self.get(tenant, task_id)
        await self.queue.submit(task_id, time.time())
        return revived

    async def _own(self, tenant: str, task_id: str) -> TaskRecord:
        record = await asyncio.to_thread(self.store.get_task, task_id)
        if record is None or record.tenant != tenant:
            raise NotFound(f"task {task_id!r} not found in tenant {tenant!r}")
        return record

    # host calls -----------------------------------------------------------------------

    async def enqueue_from_function(self, tenant: str, args: dict[str, Any]) -> str:
        """``task.enqueue``: a task of a function of the caller's own tenant."""
        name = args.get("function")
        if not isinstance(name, str):
            raise InvalidInput("task.enqueue needs a function name")
        validate_name(name)
        delay = args.get("delay", 0)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise InvalidInput("task.enqueue delay must be a number of seconds")
        payload = args.get("payload")
        body = b"" if payload is None else json.dumps(payload).encode()
        if len(body) > MAX_PAYLOAD:
            raise PayloadTooLarge(f"task payload is larger than {MAX_PAYLOAD} bytes")
        request = InvokeRequest(
            method="POST", path="/",
            headers={"content-type": "application/json"} if body else {},
            body_b64=base64.b64encode(body).decode(),
        )
        record = await self.submit(tenant, name, request, delay=float(delay))
        return record.id

    async def progress_from_function(self, request_id: str | None, args: dict[str, Any]) -> None:
        """``task.progress``: the task is the one whose current run is the caller's
        request; the worker never names the task itself."""
        fraction = args.get("fraction")
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise InvalidInput("progress fraction must be a number from 0 to 1")
        if math.isnan(fraction):
            raise InvalidInput("progress fraction must be a number from 0 to 1")
        message = args.get("message", "")
        if not isinstance(message, str):
            raise InvalidInput("progress message must be a string")
        if request_id is None:
            raise InvalidInput("context.task.progress() works only inside a background task")
        found = await asyncio.to_thread(
            self.store.set_task_progress, request_id, min(max(float(fraction), 0.0), 1.0),
            storable(message[:MAX_PROGRESS_MESSAGE]),
        )
        if found is None:
            raise InvalidInput("context.task.progress() works only inside a background task")

    @staticmethod
    def is_terminal(info: TaskInfo) -> bool:
        return info.status in TERMINAL
