"""/v1/users: members of a tenant and their roles (tenant admins and the owner)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Response

from hyac_agent.api.deps import get_agent, get_principal, require_token, tenant_role
from hyac_agent.core import Agent
from hyac_agent.tenancy import Principal
from hyac_common.names import validate_name
from hyac_common.wire import MemberUpdate

router = APIRouter(prefix="/v1/users", dependencies=[Depends(require_token)], tags=["users"])
admin = tenant_role("admin")


@router.get("")
async def list_members(
    all_users: bool = Query(False, alias="all", description="every user (owner only)"),
    tenant: str = Depends(admin), principal: Principal = Depends(get_principal),
    agent: Agent = Depends(get_agent),
) -> list[dict[str, Any]]:
    if all_users:
        principal.require_owner()
        return await asyncio.to_thread(agent.tenancy.store.list_users)
    return await asyncio.to_thread(agent.tenancy.store.members, tenant)


@router.put("/{name}")
async def set_member(
    name: str, body: MemberUpdate, tenant: str = Depends(admin),
    principal: Principal = Depends(get_principal), agent: Agent = Depends(get_agent),
) -> dict[str, Any]:
    return await asyncio.to_thread(
        agent.tenancy.set_member, principal, tenant, name, body.role, body.owner
    )


@router.delete("/{name}", status_code=204)
async def remove_member(
    name: str,
    everywhere: bool = Query(False, description="delete the user and its tokens (owner only)"),
    tenant: str = Depends(admin), principal: Principal = Depends(get_principal),
    agent: Agent = Depends(get_agent),
) -> Response:
    validate_name(name, "user")
    if everywhere:
        principal.require_owner()
        await asyncio.to_thread(agent.tenancy.delete_user, name)
    else:
        await asyncio.to_thread(agent.tenancy.remove_member, tenant, name)
    return Response(status_code=204)
