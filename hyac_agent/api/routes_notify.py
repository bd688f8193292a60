"""/v1/notify: notification channels (a tenant's and the platform's), the delivery log
and the platform's alert rules. Channel URLs and keys go in and never come back out
(a generic webhook's signing key is answered once, when it is made)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from hyac_agent.api.deps import get_agent, get_principal, require_token, tenant_role
from hyac_agent.core import Agent
from hyac_agent.notify import PLATFORM, PLATFORM_PREFIX
from hyac_agent.tenancy import Principal
from hyac_common.names import validate_name

router = APIRouter(prefix="/v1/notify", dependencies=[Depends(require_token)], tags=["notify"])
admin = tenant_role("admin")
developer = tenant_role("developer")


class ChannelCreate(BaseModel):
    name: str
    type: str
    #: slack, discord, teams, webhook: the webhook URL (a secret)
    url: str | None = None
    #: email: the recipients
    to: list[str] | None = None
    #: platform channels: tenants' functions may send to it as "platform/NAME"
    shared: bool = False


class AlertRuleCreate(BaseModel):
    kind: str
    channel: str
    options: dict[str, Any] = Field(default_factory=dict)


async def owner(principal: Principal = Depends(get_principal)) -> Principal:
    principal.require_owner()
    return principal


async def _add(agent: Agent, scope: str, body: ChannelCreate) -> dict[str, Any]:
    channel, key = await asyncio.to_thread(
        agent.notify.add_channel, scope, body.name, body.type, body.url, body.to, body.shared)
    shown = channel.public()
    if key is not None:
        shown["signing_key"] = key
    return shown


def _limit(limit: int) -> int:
    return max(1, min(limit, 500))


# a tenant's channels ------------------------------------------------------------------


@router.get("/channels")
async def list_channels(tenant: str = Depends(developer), agent: Agent = Depends(get_agent)
                        ) -> list[dict[str, Any]]:
    """The tenant's channels, and the platform's channels shared with every tenant."""
    own = await asyncio.to_thread(agent.notify.channels.of, tenant)
    shared = await asyncio.to_thread(agent.notify.channels.shared)
    return [c.public() for c in own] + [
        {**c.public(), "name": PLATFORM_PREFIX + c.name} for c in shared]


@router.post("/channels", status_code=201)
async def add_channel(body: ChannelCreate, tenant: str = Depends(admin),
                      agent: Agent = Depends(get_agent)) -> dict[str, Any]:
    return await _add(agent, tenant, body)


@router.delete("/channels/{name}", status_code=204)
async def remove_channel(name: str, tenant: str = Depends(admin),
                         agent: Agent = Depends(get_agent)) -> Response:
    await asyncio.to_thread(agent.notify.channels.remove, tenant, validate_name(name, "channel"))
    return Response(status_code=204)


@router.post("/channels/{name}/test", status_code=202)
async def test_channel(name: str, tenant: str = Depends(admin),
                       agent: Agent = Depends(get_agent)) -> dict[str, str]:
    return {"id": await agent.notify.test_channel(tenant, validate_name(name, "channel"), tenant)}


@router.get("/deliveries")
async def list_deliveries(channel: str | None = None, limit: int = Query(50),
                          tenant: str = Depends(developer), agent: Agent = Depends(get_agent)
                          ) -> list[dict[str, Any]]:
    """What the tenant sent (its functions and tests), newest first."""
    return await asyncio.to_thread(agent.notify.deliveries.recent, sender=tenant,
                                   channel=channel, limit=_limit(limit))


# the platform's channels and alerts (the owner) ---------------------------------------


@router.get("/platform/channels")
async def list_platform_channels(_: Principal = Depends(owner), agent: Agent = Depends(get_agent)
                                 ) -> list[dict[str, Any]]:
    return [c.public() for c in await asyncio.to_thread(agent.notify.channels.of, PLATFORM)]


@router.post("/platform/channels", status_code=201)
async def add_platform_channel(body: ChannelCreate, _: Principal = Depends(owner),
                               agent: Agent = Depends(get_agent)) -> dict[str, Any]:
    return await _add(agent, PLATFORM, body)


@router.delete("/platform/channels/{name}", status_code=204)
async def remove_platform_channel(name: str, _: Principal = Depends(owner),
                                  agent: Agent = Depends(get_agent)) -> Response:
    await asyncio.to_thread(agent.notify.channels.remove, PLATFORM, validate_name(name, "channel"))
    return Response(status_code=204)


@router.post("/platform/channels/{name}/test", status_code=202)
async def test_platform_channel(name: str, _: Principal = Depends(owner),
                                agent: Agent = Depends(get_agent)) -> dict[str, str]:
    return {"id": await agent.notify.test_channel(PLATFORM, validate_name(name, "channel"),
                                                  PLATFORM)}


@router.get("/platform/deliveries")
async def list_platform_deliveries(channel: str | None = None, limit: int = Query(50),
                                   _: Principal = Depends(owner), agent: Agent = Depends(get_agent)
                                   ) -> list[dict[str, Any]]:
    """What went to the platform's channels (alerts, tests, tenants' messages), newest first."""
    return await asyncio.to_thread(agent.notify.deliveries.recent, tenant=PLATFORM,
                                   channel=channel, limit=_limit(limit))


@router.get("/alerts")
async def list_alerts(_: Principal = Depends(owner), agent: Agent = Depends(get_agent)
                      ) -> dict[str, Any]:
    """The alert rules, and the conditions firing now."""
    rules = await asyncio.to_thread(agent.notify.alerts.rules)
    return {"rules": rules, "active": await asyncio.to_thread(agent.notify.alerts.active)}


@router.post("/alerts", status_code=201)
async def add_alert_rule(body: AlertRuleCreate, _: Principal = Depends(owner),
                         agent: Agent = Depends(get_agent)) -> dict[str, Any]:
    return await asyncio.to_thread(agent.notify.alerts.add_rule, body.kind,
                                   validate_name(body.channel, "channel"), body.options)


@router.delete("/alerts/{rule_id}", status_code=204)
async def remove_alert_rule(rule_id: int = Path(ge=1, le=2**53), _: Principal = Depends(owner),
                            agent: Agent = Depends(get_agent)) -> Response:
    await asyncio.to_thread(agent.notify.alerts.remove_rule, rule_id)
    return Response(status_code=204)
