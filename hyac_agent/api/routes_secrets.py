"""/v1/secrets: a tenant's secrets. Names are listed; values are never sent back."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Response

from hyac_agent.api.deps import get_agent, require_token, tenant_role
from hyac_agent.core import Agent
from hyac_agent.tenancy.secrets import check_secret_name
from hyac_common.wire import SecretValue

router = APIRouter(prefix="/v1/secrets", dependencies=[Depends(require_token)], tags=["secrets"])
developer = tenant_role("developer")


@router.get("")
async def list_secrets(tenant: str = Depends(developer), agent: Agent = Depends(get_agent)) -> list[str]:
    return await asyncio.to_thread(agent.tenancy.secrets.names, tenant)


# `:path`: a name with a '/' in it is refused by name, not as a missing route.
@router.put("/{name:path}", status_code=204)
async def set_secret(
    name: str, body: SecretValue, tenant: str = Depends(developer), agent: Agent = Depends(get_agent)
) -> Response:
    await asyncio.to_thread(agent.tenancy.secrets.set, tenant, check_secret_name(name), body.value)
    return Response(status_code=204)


@router.delete("/{name:path}", status_code=204)
async def delete_secret(
    name: str, tenant: str = Depends(developer), agent: Agent = Depends(get_agent)
) -> Response:
    await asyncio.to_thread(agent.tenancy.secrets.delete, tenant, check_secret_name(name))
    return Response(status_code=204)
