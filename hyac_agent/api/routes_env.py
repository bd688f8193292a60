"""/v1/env: tenant-wide environment, merged under each function's own env."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Response

from hyac_agent.api.deps import get_agent, require_token, tenant_role
from hyac_agent.core import Agent
from hyac_agent.tenancy.secrets import check_secret_name
from hyac_common.wire import EnvUpdate

router = APIRouter(prefix="/v1/env", dependencies=[Depends(require_token)], tags=["env"])
developer = tenant_role("developer")


@router.get("")
async def list_env(tenant: str = Depends(developer), agent: Agent = Depends(get_agent)) -> dict[str, str]:
    return dict(await asyncio.to_thread(agent.tenancy.env, tenant))


@router.put("")
async def set_env(
    body: EnvUpdate, tenant: str = Depends(developer), agent: Agent = Depends(get_agent)
) -> dict[str, str]:
    await asyncio.to_thread(agent.tenancy.set_env, tenant, body.values)
    await agent.pool.retire_tenant(tenant)
    return dict(await asyncio.to_thread(agent.tenancy.env, tenant))


# `:path`: a name with a '/' in it is refused by name, not as a missing route.
@router.delete("/{key:path}", status_code=204)
async def delete_env(
    key: str, tenant: str = Depends(developer), agent: Agent = Depends(get_agent)
) -> Response:
    await asyncio.to_thread(agent.tenancy.delete_env, tenant, check_secret_name(key, "env"))
    await agent.pool.retire_tenant(tenant)
    return Response(status_code=204)
