"""/v1/audit: the log of every mutating call; tenant admins and the platform owner."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Header, Query, Request

from hyac_agent.api.deps import get_agent, get_principal, require_token, tenant_role
from hyac_agent.core import Agent
from hyac_agent.tenancy import Principal
from hyac_common.wire import AuditRecord

router = APIRouter(prefix="/v1/audit", dependencies=[Depends(require_token)], tags=["audit"])


@router.get("", response_model=list[AuditRecord])
async def read_audit(
    request: Request,
    since: float | None = None,
    limit: int = Query(500, ge=1, le=10_000),
    all_tenants: bool = Query(False, alias="all", description="every tenant (owner only)"),
    x_hyac_tenant: str | None = Header(None),
    principal: Principal = Depends(get_principal),
    agent: Agent = Depends(get_agent),
) -> list[AuditRecord]:
    if all_tenants:
        principal.require_owner()
        tenants = None
    else:
        tenants = [await tenant_role("admin")(request, x_hyac_tenant)]
    rows = await asyncio.to_thread(agent.tenancy.store.query_audit, tenants, since, limit)
    return [AuditRecord(**row) for row in rows]
