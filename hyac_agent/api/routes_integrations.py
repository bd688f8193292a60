"""/v1/system/integrations: the platform's integrations (mail, object storage, …),
configured once by the platform owner. Secrets go in and never come back out."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query

from hyac_agent.api.deps import get_agent, get_principal
from hyac_agent.core import Agent
from hyac_agent.tenancy import Principal
from hyac_common.wire import IntegrationChange, IntegrationTestResult, IntegrationView

router = APIRouter(prefix="/v1/system/integrations", tags=["integrations"])


async def owner(principal: Principal = Depends(get_principal)) -> Principal:
    """Integrations act for every tenant: the platform owner only."""
    principal.require_owner()
    return principal


@router.get("")
async def list_integrations(_: Principal = Depends(owner), agent: Agent = Depends(get_agent)
                            ) -> list[IntegrationView]:
    service = agent.integrations
    return [await asyncio.to_thread(service.view, name) for name in service.names]


@router.get("/{kind}")
async def show_integration(kind: str, _: Principal = Depends(owner),
                           agent: Agent = Depends(get_agent)) -> IntegrationView:
    return await asyncio.to_thread(agent.integrations.view, kind)


@router.put("/{kind}")
async def set_integration(kind: str, body: IntegrationChange, principal: Principal = Depends(owner),
                          agent: Agent = Depends(get_agent)) -> IntegrationView:
    return await asyncio.to_thread(agent.integrations.set, kind, body.settings, principal.name)


@router.delete("/{kind}")
async def unset_integration(kind: str, setting: list[str] | None = Query(None),
                            principal: Principal = Depends(owner),
                            agent: Agent = Depends(get_agent)) -> IntegrationView:
    """Remove the stored settings (only those named by ``?setting=``, if any)."""
    return await asyncio.to_thread(agent.integrations.unset, kind, setting or [], principal.name)


@router.post("/{kind}/test")
async def test_integration(kind: str, args: dict[str, str] | None = None,
                           _: Principal = Depends(owner),
                           agent: Agent = Depends(get_agent)) -> IntegrationTestResult:
    """Try the integration for real with the settings in effect (mail: ``{"to": ADDR}``
    sends a test message). A failure is 422 ``integration_failed`` saying what failed."""
    message = await asyncio.to_thread(agent.integrations.test, kind, args or {})
    return IntegrationTestResult(ok=True, message=message)
