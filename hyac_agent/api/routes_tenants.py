"""/v1/tenants and /v1/whoami: the platform owner manages tenants; members see theirs."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from hyac_agent.api.deps import get_agent, get_principal, require_token
from hyac_agent.core import Agent
from hyac_agent.edge.install import forget_edge
from hyac_agent.tenancy import Principal
from hyac_common.names import validate_name
from hyac_common.wire import EgressUpdate, TenantCreate

router = APIRouter(dependencies=[Depends(require_token)], tags=["tenants"])


@router.get("/v1/whoami")
async def whoami(principal: Principal = Depends(get_principal)) -> dict[str, Any]:
    return {"user": principal.name, "kind": principal.kind, "id": principal.id,
            "owner": principal.owner, "scope": principal.scope, "token": principal.token_id,
            "expires_at": principal.expires_at, "roles": principal.roles}


@router.get("/v1/tenants")
async def list_tenants(
    principal: Principal = Depends(get_principal), agent: Agent = Depends(get_agent)
) -> list[dict[str, Any]]:
    return await asyncio.to_thread(agent.tenancy.list_tenants, principal)


@router.post("/v1/tenants", status_code=201)
async def create_tenant(
    body: TenantCreate, request: Request, principal: Principal = Depends(get_principal),
    agent: Agent = Depends(get_agent),
) -> dict[str, Any]:
    request.state.audit_target = body.name[:63]
    principal.require_owner()
    return await asyncio.to_thread(agent.tenancy.create_tenant, body.name, body.egress)


@router.get("/v1/tenants/{name}")
async def show_tenant(
    name: str, principal: Principal = Depends(get_principal), agent: Agent = Depends(get_agent)
) -> dict[str, Any]:
    validate_name(name, "tenant")
    principal.require(name, "viewer")
    return await asyncio.to_thread(agent.tenancy.describe, name)


@router.put("/v1/tenants/{name}/egress")
async def set_egress(
    name: str, body: EgressUpdate, principal: Principal = Depends(get_principal),
    agent: Agent = Depends(get_agent),
) -> dict[str, Any]:
    validate_name(name, "tenant")
    principal.require_owner()
    described = await asyncio.to_thread(agent.tenancy.set_egress, name, body.egress)
    networks = getattr(agent.backend, "networks", None)
    if networks is not None:  # sandboxes still draining follow the new policy too
        await asyncio.to_thread(networks.refresh, name)
    await agent.pool.retire_tenant(name)  # its sandboxes restart on the new network
    return described


@router.delete("/v1/tenants/{name}", status_code=204)
async def delete_tenant(
    name: str, request: Request, principal: Principal = Depends(get_principal),
    agent: Agent = Depends(get_agent),
) -> Response:
    validate_name(name, "tenant")
    principal.require_owner()
    await agent.metrics.invocations.flush()  # its buffered records go with it too
    # Lines its workers log while it goes (a run ending, a worker draining) would be
    # stored after its rows are deleted, and a tenant made again under the name would
    # read them: they are dropped until the removal is over.
    await agent.logbus.removing(name)
    try:
        await asyncio.to_thread(agent.tenancy.delete_tenant, name)
        await forget_edge(request, name)
        await agent.triggers.service.forget_tenant(name)
        await agent.pool.stop_tenant(name, "its tenant was removed")
        networks = getattr(agent.backend, "networks", None)
        if networks is not None:
            await asyncio.to_thread(networks.drop, name)
        for key in [k for k in agent.functions._active if k[0] == name]:
            agent.functions._active.pop(key, None)
    finally:
        agent.logbus.removed(name)
    return Response(status_code=204)
