"""Host calls: what a function asks of the agent, always within the worker's own tenant.

The tenant comes from the worker that made the call (the agent started it for that
tenant); nothing in the call's arguments can name another one.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from hyac_agent.store import Store
from hyac_agent.triggers.cause import CAUSE
from hyac_common.errors import InvalidInput, PayloadTooLarge

if TYPE_CHECKING:
    from hyac_agent.mail import Mailer
    from hyac_agent.notify import NotifyService
    from hyac_agent.services.invoke import InvokeService
    from hyac_agent.tasks.service import TaskService
    from hyac_agent.tenancy import TenancyService

MAX_KEY = 512
MAX_VALUE = 1024 * 1024
MAX_LIST = 10_000


def _key(args: dict[str, Any], name: str = "key") -> str:
    key = args.get(name)
    if not isinstance(key, str) or (name == "key" and not key):
        raise InvalidInput(f"kv {name} must be a non-empty string")
    if len(key.encode()) > MAX_KEY:
        raise InvalidInput(f"kv {name} is longer than {MAX_KEY} bytes")
    if "\x00" in key:  # PostgreSQL keeps no NUL in text: refused alike on every store
        raise InvalidInput(f"kv {name} must not contain NUL")
    return key


class HostCalls:
    """Answers a worker's host calls; built once the invoke path and the task service
    exist (both are built on the pool, which hands these calls to its workers)."""

    def __init__(
        self,
        store: Store,
        tenant_slots: int,
        tenancy: TenancyService,
        mailer: Mailer,
        invoker: InvokeService,
        tasks: TaskService,
        notify: NotifyService,
    ) -> None:
        self.store = store
        #: host calls of one tenant that may wait on the agent's threads at once (db, kv,
        #: secrets, storage; HYAC_TENANT_HOST_CALLS): a tenant running slow statements
        #: queues behind its own calls and leaves the other threads to other tenants
        self.tenant_slots = tenant_slots
        self._slots: dict[str, asyncio.Semaphore] = {}
        #: db.*, secrets.* and storage.* calls, and the storage quota of kv.set
        self.tenancy = tenancy
        #: mail.send (admitted by the tenant's quota)
        self.mailer = mailer
        #: function.invoke
        self.invoker = invoker
        #: task.enqueue and task.progress
        self.tasks = tasks
        #: notify.send (admitted by the tenant's notifications_per_day quota)
        self.notify = notify

    async def __call__(
        self, tenant: str, op: str, args: dict[str, Any], request_id: str | None = None
    ) -> Any:
        CAUSE.set(request_id)  # what it writes to storage is an event of this request's
        if op == "task.enqueue":
            return await self.tasks.enqueue_from_function(tenant, args)
        if op == "task.progress":
            return await self.tasks.progress_from_function(request_id, args)
        if op == "function.invoke":
            return await self.invoker.invoke_from_function(tenant, request_id, args)
        if op.startswith("mail."):
            return await self.mailer.host_call(tenant, op, args, request_id)
        if op.startswith("notify."):
            return await self.notify.host_call(tenant, op, args, request_id)
        slots = self._slots.get(tenant)
        if slots is None:
            slots = self._slots[tenant] = asyncio.Semaphore(self.tenant_slots)
        async with slots:
            if op.startswith(("db.", "secrets.", "storage.")):
                return await self.tenancy.host_call(tenant, op, args, request_id)
            handler = getattr(self, "_" + op.replace(".", "_"), None) if op.startswith("kv.") else None
            if handler is None:
                raise InvalidInput(f"unknown host call {op!r}")
            return await handler(tenant, args)

    async def _kv_get(self, tenant: str, args: dict[str, Any]) -> Any:
        return await asyncio.to_thread(self.store.kv_get, tenant, _key(args))

    async def _kv_set(self, tenant: str, args: dict[str, Any]) -> None:
        key = _key(args)
        if "value" not in args:
            raise InvalidInput("kv.set needs a value")
        if len(json.dumps(args["value"])) > MAX_VALUE:
            raise PayloadTooLarge(f"kv value is larger than {MAX_VALUE} bytes")
        await self.tenancy.kv_write(tenant, key, args["value"], self.store.kv_set)

    async def _kv_delete(self, tenant: str, args: dict[str, Any]) -> bool:
        return await asyncio.to_thread(self.store.kv_delete, tenant, _key(args))

    async def _kv_list(self, tenant: str, args: dict[str, Any]) -> list[str]:
        prefix = args.get("prefix") or ""
        if not isinstance(prefix, str):
            raise InvalidInput("kv prefix must be a string")
        if "\x00" in prefix:
            raise InvalidInput("kv prefix must not contain NUL")
        limit = args.get("limit", 1000)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidInput("kv list limit must be a positive integer")
        return await asyncio.to_thread(self.store.kv_list, tenant, prefix, min(limit, MAX_LIST))
