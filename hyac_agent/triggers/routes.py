"""/v1/schedules, /v1/triggers, /v1/webhooks (a tenant's triggers) and /v1/hooks/{id}
(inbound webhooks: no token, the signature is the credential)."""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from hyac_agent.api.deps import get_agent, get_tenant, require_token
from hyac_agent.core import Agent
from hyac_agent.triggers import signatures
from hyac_agent.triggers import tables as t
from hyac_common.errors import Conflict, NotFound, PayloadTooLarge
from hyac_common.triggers import (
    FunctionTriggers,
    ScheduleCreate,
    ScheduleInfo,
    SubscriptionCreate,
    SubscriptionInfo,
    WebhookCreate,
    WebhookCreated,
    WebhookInfo,
)

router = APIRouter(dependencies=[Depends(require_token)], tags=["triggers"])
hooks = APIRouter(tags=["triggers"])
#: request headers an inbound webhook's task does not get: the agent's, or credentials
DROPPED_HEADERS = {"host", "authorization", "cookie", "content-length", "connection",
                   "transfer-encoding", "x-hyac-tenant"}


@router.get("/v1/schedules", response_model=list[ScheduleInfo])
async def list_schedules(function: str | None = None, tenant: str = Depends(get_tenant),
                         agent: Agent = Depends(get_agent)) -> list[ScheduleInfo]:
    return await agent.triggers.service.schedules(tenant, function)


@router.post("/v1/schedules", response_model=ScheduleInfo, status_code=201)
async def add_schedule(body: ScheduleCreate, tenant: str = Depends(get_tenant),
                       agent: Agent = Depends(get_agent)) -> ScheduleInfo:
    return await agent.triggers.service.add_schedule(tenant, body)


@router.get("/v1/schedules/{schedule_id}", response_model=ScheduleInfo)
async def show_schedule(schedule_id: str, tenant: str = Depends(get_tenant),
                        agent: Agent = Depends(get_agent)) -> ScheduleInfo:
    return await agent.triggers.service.schedule(tenant, schedule_id)


@router.delete("/v1/schedules/{schedule_id}")
async def remove_schedule(schedule_id: str, tenant: str = Depends(get_tenant),
                          agent: Agent = Depends(get_agent)) -> dict[str, str]:
    schedule = await agent.triggers.service.schedule(tenant, schedule_id)
    if schedule.source == "manifest":
        raise Conflict(f"schedule {schedule_id} comes from hyac.toml ({schedule.function}): "
                       "remove it there and deploy, or pause it")
    await agent.triggers.service.remove(tenant, t.schedules, schedule_id, "schedule")
    return {"deleted": schedule_id}


@router.post("/v1/schedules/{schedule_id}/pause", response_model=ScheduleInfo)
async def pause_schedule(schedule_id: str, tenant: str = Depends(get_tenant),
                         agent: Agent = Depends(get_agent)) -> ScheduleInfo:
    return await agent.triggers.service.pause(tenant, schedule_id, True)


@router.post("/v1/schedules/{schedule_id}/resume", response_model=ScheduleInfo)
async def resume_schedule(schedule_id: str, tenant: str = Depends(get_tenant),
                          agent: Agent = Depends(get_agent)) -> ScheduleInfo:
    return await agent.triggers.service.pause(tenant, schedule_id, False)


@router.post("/v1/schedules/{schedule_id}/run", status_code=202)
async def run_schedule(schedule_id: str, tenant: str = Depends(get_tenant),
                       agent: Agent = Depends(get_agent)) -> JSONResponse:
    """Run the schedule's function now, as a tick would (outside the schedule)."""
    from hyac_agent.api.routes_tasks import submitted

    schedule = await agent.triggers.service.schedule(tenant, schedule_id)
    now = time.time()
    trigger = {"kind": "schedule", "id": schedule_id, "tick": now, "manual": True}
    body = json.dumps({"source": "schedule", "schedule": schedule_id, "manual": True}).encode()
    record = await agent.triggers.service.fire(
        tenant, schedule.function, body, {"content-type": "application/json"}, trigger,
        t.schedules)
    return submitted(record)


@router.get("/v1/triggers", response_model=list[FunctionTriggers])
async def list_triggers(function: str | None = None, tenant: str = Depends(get_tenant),
                        agent: Agent = Depends(get_agent)) -> list[FunctionTriggers]:
    """Every function's schedules, event subscriptions and webhooks."""
    return await agent.triggers.service.of_functions(tenant, function)


@router.post("/v1/triggers", response_model=SubscriptionInfo, status_code=201)
async def add_subscription(body: SubscriptionCreate, tenant: str = Depends(get_tenant),
                           agent: Agent = Depends(get_agent)) -> SubscriptionInfo:
    return await agent.triggers.service.subscribe(tenant, body)


@router.delete("/v1/triggers/{subscription_id}")
async def remove_subscription(subscription_id: str, tenant: str = Depends(get_tenant),
                              agent: Agent = Depends(get_agent)) -> dict[str, str]:
    await agent.triggers.service.remove(tenant, t.subscriptions, subscription_id,
                                        "event trigger")
    return {"deleted": subscription_id}


@router.get("/v1/webhooks", response_model=list[WebhookInfo])
async def list_webhooks(function: str | None = None, tenant: str = Depends(get_tenant),
                        agent: Agent = Depends(get_agent)) -> list[WebhookInfo]:
    return await agent.triggers.service.webhooks(tenant, function)


@router.post("/v1/webhooks", response_model=WebhookCreated, status_code=201)
async def add_webhook(body: WebhookCreate, tenant: str = Depends(get_tenant),
                      agent: Agent = Depends(get_agent)) -> WebhookCreated:
    """A webhook URL for a function; the answer holds its secret, shown this once."""
    return await agent.triggers.service.add_webhook(tenant, body)


@router.delete("/v1/webhooks/{webhook_id}")
async def remove_webhook(webhook_id: str, tenant: str = Depends(get_tenant),
                         agent: Agent = Depends(get_agent)) -> dict[str, str]:
    await agent.triggers.service.remove(tenant, t.webhooks, webhook_id, "webhook")
    return {"deleted": webhook_id}


@hooks.post("/v1/hooks/{webhook_id}", status_code=202,
            responses={401: {"description": "missing or wrong signature: nothing runs"}})
async def inbound(webhook_id: str, request: Request,
                  agent: Agent = Depends(get_agent)) -> JSONResponse:
    """A signed request from a webhook sender: 202 with the id of the task that runs the
    function with the request as its body."""
    from hyac_agent.api.routes_tasks import submitted

    limit = agent.config.webhook_max_body_bytes
    too_large = PayloadTooLarge(
        f"the webhook body is larger than {limit} bytes (HYAC_WEBHOOK_MAX_BODY_BYTES)",
        limit=limit)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    body = b"".join(chunks)
    service = agent.triggers.service
    row = await asyncio.to_thread(service.store.webhook, webhook_id)
    if row is None:
        raise NotFound(f"no webhook {webhook_id!r}")
    edge = getattr(request.app.state, "edge", None)
    if edge is not None:  # the tenant's IP rules hold for its webhooks too
        await edge.check_ip(request, row.tenant, row.function)
    secret = await asyncio.to_thread(service.webhook_secret, row)
    signatures.verify(row.scheme, secret, request.headers, body, time.time())
    headers = {k: v for k, v in request.headers.items() if k.lower() not in DROPPED_HEADERS}
    trigger = {"kind": "webhook", "id": row.id}
    record = await service.fire(row.tenant, row.function, body, headers, trigger, t.webhooks)
    return submitted(record)


def install_triggers(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(hooks)
