"""/v1/tasks: list, show, follow (server-sent events), cancel and retry background tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from hyac_agent.api.deps import (
    RECHECK_INTERVAL,
    get_agent,
    get_principal,
    get_tenant,
    require_token,
    still_allowed,
    tenant_role,
)
from hyac_agent.core import Agent
from hyac_agent.store import TaskRecord
from hyac_common.errors import NotFound
from hyac_common.tasks import TERMINAL, TaskStatus
from hyac_common.wire import TaskInfo, TaskSubmitted

router = APIRouter(prefix="/v1/tasks", dependencies=[Depends(require_token)], tags=["tasks"])
#: how often the event stream looks at the store (progress may come from another host)
POLL_INTERVAL = 0.2
PING_INTERVAL = 15.0


def submitted(record: TaskRecord) -> JSONResponse:
    """HTTP 202 naming the queued task, as the invoke and gateway routes answer."""
    location = f"/v1/tasks/{record.id}"
    body = TaskSubmitted(task_id=record.id, status=TaskStatus.QUEUED, location=location)
    return JSONResponse(body.model_dump(), status_code=202, headers={"Location": location})


@router.get("", response_model=list[TaskInfo])
async def list_tasks(
    function: str | None = None,
    status: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    tenant: str = Depends(get_tenant),
    agent: Agent = Depends(get_agent),
) -> list[TaskInfo]:
    return await agent.tasks.list(tenant, function, status, limit)


@router.get("/callback-key")
async def callback_key(
    tenant: str = Depends(tenant_role("developer")), agent: Agent = Depends(get_agent)
) -> dict[str, str]:
    """The tenant's key for checking the signature of its completion callbacks."""
    return _key_answer(tenant, await asyncio.to_thread(agent.callback_keys.key, tenant))


@router.post("/callback-key")
async def rotate_callback_key(
    tenant: str = Depends(tenant_role("admin")), agent: Agent = Depends(get_agent)
) -> dict[str, str]:
    """A new signing key for the tenant's callbacks, in use at once (the old one leaked)."""
    return _key_answer(tenant, await asyncio.to_thread(agent.callback_keys.rotate, tenant))


def _key_answer(tenant: str, key: str) -> dict[str, str]:
    from hyac_agent.tasks import callbacks

    return {
        "tenant": tenant, "key": key, "algorithm": "HMAC-SHA256",
        "header": callbacks.SIGNATURE_HEADER,
        "signed": f"{callbacks.SCHEME}:{{{callbacks.TIMESTAMP_HEADER}}}:"
                  f"{{{callbacks.TENANT_HEADER}}}:{{body}}",
    }


@router.get("/{task_id}", response_model=TaskInfo)
async def show_task(
    task_id: str, tenant: str = Depends(get_tenant), agent: Agent = Depends(get_agent)
) -> TaskInfo:
    return await agent.tasks.get(tenant, task_id)


@router.get("/{task_id}/events")
async def task_events(
    task_id: str,
    request: Request,
    tenant: str = Depends(get_tenant),
    agent: Agent = Depends(get_agent),
) -> StreamingResponse:
    """A ``task`` event with the whole TaskInfo each time its status, attempt or
    progress changes; the stream ends after the task reaches succeeded, dead or
    cancelled."""
    first = await agent.tasks.get(tenant, task_id)  # 404 before the stream starts
    release = request.app.state.stream_slots.take(await get_principal(request))

    async def events() -> AsyncIterator[str]:
        info = first
        last = None
        quiet = checked = 0.0
        yield ": connected\n\n"
        while True:
            key = (info.status, info.attempt, info.progress, info.progress_message,
                   info.callback_status)
            if key != last:
                last, quiet = key, 0.0
                yield f"event: task\ndata: {info.model_dump_json()}\n\n"
            if info.status in TERMINAL:
                return
            await asyncio.sleep(POLL_INTERVAL)
            quiet += POLL_INTERVAL
            if quiet >= PING_INTERVAL:
                quiet = 0.0
                yield ": ping\n\n"
            # A stopping agent ends the stream at once: the follower reconnects to the next.
            if agent.stopping.is_set() or await request.is_disconnected():
                return
            checked += POLL_INTERVAL
            if checked >= RECHECK_INTERVAL:  # as the log stream does
                checked = 0.0
                if not await still_allowed(request, tenant):
                    yield ": access ended\n\n"
                    return
            try:
                info = await agent.tasks.get(tenant, task_id)
            except NotFound:  # removed with its tenant
                yield ": the task is gone\n\n"
                return

    return StreamingResponse(
        request.app.state.stream_slots.holding(release, events()),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/{task_id}/cancel", response_model=TaskInfo)
async def cancel_task(
    task_id: str, tenant: str = Depends(get_tenant), agent: Agent = Depends(get_agent)
) -> TaskInfo:
    return await agent.tasks.cancel(tenant, task_id)


@router.post("/{task_id}/retry", response_model=TaskInfo)
async def retry_task(
    task_id: str, tenant: str = Depends(get_tenant), agent: Agent = Depends(get_agent)
) -> TaskInfo:
    return await agent.tasks.retry(tenant, task_id)
