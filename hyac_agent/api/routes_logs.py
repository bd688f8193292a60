"""/v1/logs: recent log lines, and a live stream as server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from hyac_agent.api.deps import (
    RECHECK_INTERVAL,
    get_agent,
    get_principal,
    get_tenant,
    require_token,
    still_allowed,
)
from hyac_agent.core import Agent
from hyac_common.names import validate_name
from hyac_common.wire import LogRecord

router = APIRouter(prefix="/v1/logs", dependencies=[Depends(require_token)], tags=["logs"])
#: a quiet stream sends a ping this often (and checks its reader's access again then)
PING_INTERVAL = RECHECK_INTERVAL


@router.get("", response_model=list[LogRecord])
async def recent_logs(
    function: str | None = None,
    since: float | None = None,
    limit: int = Query(200, ge=1, le=10_000),
    tenant: str = Depends(get_tenant),
    agent: Agent = Depends(get_agent),
) -> list[LogRecord]:
    if function:
        validate_name(function)
    await agent.logbus.flush()  # include lines still on their way to the store
    return await asyncio.to_thread(agent.store.query_logs, tenant, function, since, limit)


@router.get("/stream")
async def stream_logs(
    request: Request,
    function: str | None = None,
    since: float | None = None,
    tenant: str = Depends(get_tenant),
    agent: Agent = Depends(get_agent),
) -> StreamingResponse:
    if function:
        validate_name(function)
    # A slot first (429 past the caller's share), then the subscription.
    release = request.app.state.stream_slots.take(await get_principal(request))
    # Subscribe before reading the backlog, so nothing falls between the two.
    live: AsyncGenerator[LogRecord, None] = agent.logbus.subscribe(tenant, function)
    pending = asyncio.ensure_future(live.__anext__())
    backlog: list[LogRecord] = []
    if since is not None:
        try:
            await agent.logbus.flush()
            backlog = await asyncio.to_thread(agent.store.query_logs, tenant, function, since,
                                              1000)
        except BaseException:
            release()
            raise

    async def events() -> AsyncIterator[str]:
        nonlocal pending
        last_ts = backlog[-1].ts if backlog else None
        # A stopping agent ends the stream at once: the follower reconnects to the next.
        stopping = asyncio.ensure_future(agent.stopping.wait())
        recheck = time.monotonic() + RECHECK_INTERVAL
        try:
            yield ": connected\n\n"
            for record in backlog:
                yield f"data: {record.model_dump_json()}\n\n"
            while not await request.is_disconnected():
                done, _ = await asyncio.wait(
                    {pending, stopping}, timeout=PING_INTERVAL,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if stopping in done:
                    return
                if time.monotonic() >= recheck:
                    # A revoked token, a removed member or tenant: the stream ends, and
                    # the follower's reconnection is refused with the reason.
                    if not await still_allowed(request, tenant):
                        yield ": access ended\n\n"
                        return
                    recheck = time.monotonic() + RECHECK_INTERVAL
                if not done:
                    yield ": ping\n\n"
                    continue
                record = pending.result()
                pending = asyncio.ensure_future(live.__anext__())
                if last_ts is not None and record.ts <= last_ts:
                    continue  # already sent from the backlog
                yield f"data: {record.model_dump_json()}\n\n"
        finally:
            stopping.cancel()
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
            await live.aclose()

    return StreamingResponse(
        request.app.state.stream_slots.holding(release, events()),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
