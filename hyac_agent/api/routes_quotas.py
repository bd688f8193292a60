"""/v1/quotas: a tenant's limits against its use; /v1/platform/quotas: the defaults."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends

from hyac_agent.api.deps import get_agent, get_principal, get_tenant, require_token, tenant_role
from hyac_agent.core import Agent
from hyac_agent.tenancy import Principal
from hyac_agent.tenancy.quotas import PLATFORM
from hyac_common.wire import QuotaUpdate

router = APIRouter(dependencies=[Depends(require_token)], tags=["quotas"])


def _report(agent: Agent, tenant: str) -> dict[str, Any]:
    functions = len(agent.store.list_functions(tenant))
    return {"tenant": tenant, "quotas": agent.tenancy.quotas.report(tenant, functions)}


@router.get("/v1/quotas")
async def show_quotas(tenant: str = Depends(get_tenant), agent: Agent = Depends(get_agent)) -> dict[str, Any]:
    return await asyncio.to_thread(_report, agent, tenant)


@router.put("/v1/quotas")
async def set_quotas(
    body: QuotaUpdate, tenant: str = Depends(tenant_role("admin")),
    principal: Principal = Depends(get_principal), agent: Agent = Depends(get_agent),
) -> dict[str, Any]:
    await asyncio.to_thread(agent.tenancy.quotas.set, tenant, body.values, owner=principal.owner)
    return await asyncio.to_thread(_report, agent, tenant)


@router.get("/v1/platform/quotas")
async def platform_quotas(
    principal: Principal = Depends(get_principal), agent: Agent = Depends(get_agent)
) -> dict[str, Any]:
    principal.require_owner()
    return {"quotas": await asyncio.to_thread(agent.tenancy.store.quotas_of, PLATFORM)}


@router.put("/v1/platform/quotas")
async def set_platform_quotas(
    body: QuotaUpdate, principal: Principal = Depends(get_principal),
    agent: Agent = Depends(get_agent),
) -> dict[str, Any]:
    principal.require_owner()
    await asyncio.to_thread(agent.tenancy.quotas.set, PLATFORM, body.values, owner=True)
    return {"quotas": await asyncio.to_thread(agent.tenancy.store.quotas_of, PLATFORM)}
