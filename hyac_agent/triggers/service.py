"""Triggers as the API and deploys see them: schedules, event subscriptions and inbound
webhooks of a tenant's functions, and ``fire``, which turns a trigger into a task.

A triggered run is a background task like any other (ids, retries, progress, history);
the task records what started it (``TaskInfo.trigger``) and the function's log says so.
Triggers declared in hyac.toml (``schedule``, ``[functions.NAME.on]``) follow the active
version: a deploy or a rollback makes them what that version says; those added through
the API stay until removed. Removing a function removes all of its triggers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.exc import IntegrityError

from hyac_agent.logbus import LogBus
from hyac_agent.services.functions import FunctionService
from hyac_agent.store import TaskRecord
from hyac_agent.tasks import TaskService
from hyac_agent.tenancy.secrets import load_or_create_key
from hyac_agent.triggers import tables as t
from hyac_agent.triggers.cron import next_tick
from hyac_agent.triggers.store import Row, TriggerStore
from hyac_common.errors import InvalidInput, NotFound
from hyac_common.names import validate_name
from hyac_common.triggers import (
    STORAGE_EVENTS,
    TASK_EVENTS,
    FunctionTriggers,
    ScheduleCreate,
    ScheduleInfo,
    SubscriptionCreate,
    SubscriptionInfo,
    WebhookCreate,
    WebhookCreated,
    WebhookInfo,
    check_cron,
    check_timezone,
    describe_trigger,
)
from hyac_common.wire import FunctionConfig, InvokeRequest

log = logging.getLogger("hyac.triggers")

HOOKS_PATH = "/v1/hooks/"
#: triggers of one tenant: enough for any real use, a bound for a tenant filling the store
MAX_PER_TENANT = 500


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def manifest_id(prefix: str, tenant: str, function: str, index: int = 0) -> str:
    """The one id a hyac.toml trigger of a function can have: two deploys of it at once
    (from two agents) cannot both add it, the store's primary key refuses the second."""
    digest = hashlib.sha256(f"{tenant}/{function}/{index}".encode()).hexdigest()
    return f"{prefix}_{digest[:20]}"


def schedule_info(row: Row) -> ScheduleInfo:
    return ScheduleInfo(
        id=row.id, function=row.function, cron=row.cron, timezone=row.timezone,
        catch_up=row.catch_up, paused=bool(row.paused), source=row.origin,
        next_run_at=None if row.paused else row.next_run_at, last_tick=row.last_tick,
        last_task_id=row.last_task_id, created_at=row.created_at,
    )


def subscription_info(row: Row) -> SubscriptionInfo:
    return SubscriptionInfo(
        id=row.id, function=row.function, source=row.source, events=row.events.split(","),
        prefix=row.prefix or "", watched=row.watched, origin=row.origin,
        last_task_id=row.last_task_id, created_at=row.created_at,
    )


def webhook_info(row: Row) -> WebhookInfo:
    return WebhookInfo(id=row.id, function=row.function, scheme=row.scheme,
                       path=HOOKS_PATH + row.id, last_task_id=row.last_task_id,
                       created_at=row.created_at)


def _events(source: str, given: list[str]) -> str:
    known = STORAGE_EVENTS if source == "storage" else TASK_EVENTS
    for event in given:
        if event not in known:
            raise InvalidInput(f"unknown {source} event {event!r} (one of {', '.join(known)})")
    return ",".join(dict.fromkeys(given or known))


async def _again_on_conflict(work: Callable[..., None], *args: Any) -> None:
    """``work(*args)`` on a thread, and once more if a deploy of the same function on
    another agent wrote the same rows first (the store's primary key refused ours)."""
    try:
        await asyncio.to_thread(work, *args)
    except IntegrityError:
        await asyncio.to_thread(work, *args)


class TriggerService:
    def __init__(self, engine: Engine, tasks: TaskService, functions: FunctionService,
                 logbus: LogBus, data_dir: Path) -> None:
        from cryptography.fernet import Fernet

        self.store = TriggerStore(engine)
        self.store.create_schema()
        self.tasks = tasks
        self.functions = functions
        self.logbus = logbus
        # Webhook secrets are encrypted with the key of the tenant secrets.
        self._box = Fernet(load_or_create_key(data_dir))

    async def _function_exists(self, tenant: str, name: str) -> None:
        validate_name(name)
        await self.functions.active_version(tenant, name)  # NotFound, in this tenant only

    async def _room(self, tenant: str, table: Table) -> None:
        if len(await asyncio.to_thread(self.store.of_tenant, table, tenant)) >= MAX_PER_TENANT:
            raise InvalidInput(f"tenant {tenant!r} has {MAX_PER_TENANT} triggers of this kind "
                               "already; remove some first")

    # turning a trigger into a task -------------------------------------------------

    async def fire(self, tenant: str, function: str, body: bytes, headers: dict[str, str],
                   trigger: dict[str, Any], table: Table, *,
                   task_id: str | None = None) -> TaskRecord:
        request = InvokeRequest(method="POST", path="/", headers=headers,
                                body_b64=base64.b64encode(body).decode())
        record = await self.tasks.submit(tenant, function, request, trigger=trigger,
                                         task_id=task_id)
        await asyncio.to_thread(self.store.record_task, table, trigger["id"], record.id)
        message = f"{describe_trigger(trigger)} started task {record.id}"
        self.logbus.emit(tenant=tenant, function=function, version=record.version,
                         stream="system", message=message)
        return record

    # hyac.toml ----------------------------------------------------------------------

    async def follow_version(self, tenant: str, function: str,
                             config: FunctionConfig | None) -> None:
        """Make the function's hyac.toml triggers those of ``config``, its active
        version's (None: the function is gone, and every trigger of it goes too)."""
        if config is None:
            await asyncio.to_thread(self.store.remove_function, tenant, function)
            return
        now = time.time()
        schedule = None if config.schedule is None else {
            "id": manifest_id("sch", tenant, function), "tenant": tenant, "function": function,
            "cron": config.schedule, "timezone": config.timezone, "catch_up": config.catch_up,
            "paused": False, "origin": "manifest", "created_at": now,
            "next_run_at": next_tick(config.schedule, config.timezone, now),
        }
        await _again_on_conflict(self.store.sync_manifest_schedule, tenant, function, schedule)
        rows: list[dict[str, Any]] = []
        on = config.on
        for storage in on.storage if on else []:
            rows.append({"source": "storage", "events": _events("storage", list(storage.events)),
                         "prefix": storage.prefix, "watched": None})
        for task in on.task if on else []:
            rows.append({"source": "task", "events": _events("task", list(task.events)),
                         "prefix": "", "watched": task.function})
        for index, row in enumerate(rows):
            row.update(id=manifest_id("sub", tenant, function, index), tenant=tenant,
                       function=function, origin="manifest", created_at=now)
        await _again_on_conflict(self.store.replace_manifest_subscriptions, tenant, function,
                                 rows)

    async def forget_tenant(self, tenant: str) -> None:
        """The tenant was removed: its triggers go too (a tenant made later under the
        same name starts with none)."""
        await asyncio.to_thread(self.store.remove_tenant, tenant)

    # schedules ----------------------------------------------------------------------

    async def add_schedule(self, tenant: str, body: ScheduleCreate) -> ScheduleInfo:
        cron, timezone = check_cron(body.cron), check_timezone(body.timezone)
        await self._function_exists(tenant, body.function)
        await self._room(tenant, t.schedules)
        now = time.time()
        schedule_id = new_id("sch")
        values = {"id": schedule_id, "tenant": tenant, "function": body.function,
                  "cron": cron, "timezone": timezone, "catch_up": body.catch_up,
                  "paused": False, "origin": "api", "created_at": now,
                  "next_run_at": next_tick(cron, timezone, now)}
        await asyncio.to_thread(self.store.add, t.schedules, values)
        return await self.schedule(tenant, schedule_id)

    async def schedule(self, tenant: str, schedule_id: str) -> ScheduleInfo:
        row = await asyncio.to_thread(self.store.get, t.schedules, tenant, schedule_id)
        if row is None:
            raise NotFound(f"schedule {schedule_id!r} not found in tenant {tenant!r}")
        return schedule_info(row)

    async def schedules(self, tenant: str, function: str | None) -> list[ScheduleInfo]:
        rows = await asyncio.to_thread(self.store.of_tenant, t.schedules, tenant, function)
        return [schedule_info(r) for r in rows]

    async def pause(self, tenant: str, schedule_id: str, paused: bool) -> ScheduleInfo:
        current = await self.schedule(tenant, schedule_id)
        # Resumed, it runs from the next tick on: the ticks it was paused for are not runs
        # it missed.
        upcoming = None if paused else next_tick(current.cron, current.timezone, time.time())
        await asyncio.to_thread(self.store.set_paused, tenant, schedule_id, paused, upcoming)
        return await self.schedule(tenant, schedule_id)

    async def remove(self, tenant: str, table: Table, trigger_id: str, what: str) -> None:
        if not await asyncio.to_thread(self.store.remove, table, tenant, trigger_id):
            raise NotFound(f"{what} {trigger_id!r} not found in tenant {tenant!r}")

    # subscriptions ------------------------------------------------------------------

    async def subscribe(self, tenant: str, body: SubscriptionCreate) -> SubscriptionInfo:
        events = _events(body.source, body.events)
        if body.source == "task":
            if not body.watched:
                raise InvalidInput("a task subscription names the function it watches (watched)")
            await self._function_exists(tenant, body.watched)
        elif body.watched:
            raise InvalidInput("a storage subscription watches objects, not a function")
        await self._function_exists(tenant, body.function)
        await self._room(tenant, t.subscriptions)
        subscription_id = new_id("sub")
        values = {"id": subscription_id, "tenant": tenant, "function": body.function,
                  "source": body.source, "events": events,
                  "prefix": body.prefix if body.source == "storage" else "",
                  "watched": body.watched, "origin": "api", "created_at": time.time()}
        await asyncio.to_thread(self.store.add, t.subscriptions, values)
        row = await asyncio.to_thread(self.store.get, t.subscriptions, tenant,
                                   subscription_id)
        return subscription_info(row)

    async def subscriptions(self, tenant: str, function: str | None) -> list[SubscriptionInfo]:
        rows = await asyncio.to_thread(self.store.of_tenant, t.subscriptions, tenant, function)
        return [subscription_info(r) for r in rows]

    # webhooks -----------------------------------------------------------------------

    async def add_webhook(self, tenant: str, body: WebhookCreate) -> WebhookCreated:
        await self._function_exists(tenant, body.function)
        await self._room(tenant, t.webhooks)
        secret = body.secret or "whsec_" + secrets.token_urlsafe(24)
        webhook_id = new_id("whk")
        values = {"id": webhook_id, "tenant": tenant, "function": body.function,
                  "scheme": body.scheme, "created_at": time.time(),
                  "secret": self._box.encrypt(secret.encode()).decode()}
        await asyncio.to_thread(self.store.add, t.webhooks, values)
        row = await asyncio.to_thread(self.store.get, t.webhooks, tenant, webhook_id)
        return WebhookCreated(**webhook_info(row).model_dump(), secret=secret)

    async def webhooks(self, tenant: str, function: str | None) -> list[WebhookInfo]:
        rows = await asyncio.to_thread(self.store.of_tenant, t.webhooks, tenant, function)
        return [webhook_info(r) for r in rows]

    def webhook_secret(self, row: Row) -> str:
        return self._box.decrypt(row.secret.encode()).decode()

    # all of them ----------------------------------------------------------------------

    async def of_functions(self, tenant: str, function: str | None) -> list[FunctionTriggers]:
        found: dict[str, FunctionTriggers] = {}

        def entry(name: str) -> FunctionTriggers:
            return found.setdefault(name, FunctionTriggers(function=name))

        for schedule in await self.schedules(tenant, function):
            entry(schedule.function).schedules.append(schedule)
        for subscription in await self.subscriptions(tenant, function):
            entry(subscription.function).subscriptions.append(subscription)
        for webhook in await self.webhooks(tenant, function):
            entry(webhook.function).webhooks.append(webhook)
        return [found[name] for name in sorted(found)]
