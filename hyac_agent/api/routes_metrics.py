"""/metrics for Prometheus, and /v1/metrics/summary for the console's charts."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from hyac_agent.api.deps import get_agent, get_principal, require_token
from hyac_agent.core import Agent
from hyac_agent.tenancy import Principal
from hyac_common.errors import Forbidden, InvalidInput, Unauthorized
from hyac_common.names import validate_name

router = APIRouter(tags=["metrics"])


async def _scrape_allowed(request: Request, agent: Agent) -> None:
    """The scrape token, the platform owner's token, or (with no token at all) a client
    address in HYAC_METRICS_ALLOW. Peer addresses only: forwarded headers are not believed."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        if agent.metrics.scrape_token_matches(token):
            return
        principal = await get_principal(request)  # Unauthorized for an unknown token
        if not principal.owner or principal.scope is not None:
            raise Forbidden(f"{principal.name} may not read /metrics; it needs the owner's "
                            "token or the scrape token (HYAC_METRICS_TOKEN)")
        return
    if agent.metrics.address_allowed(request.client.host if request.client else None):
        return
    raise Unauthorized("/metrics needs a bearer token (the owner's or HYAC_METRICS_TOKEN) "
                       "or a client address in HYAC_METRICS_ALLOW")


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request, agent: Agent = Depends(get_agent)) -> Response:
    await _scrape_allowed(request, agent)
    return Response(await agent.metrics.scrape(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/metrics/summary", dependencies=[Depends(require_token)])
async def metrics_summary(
    window: str = Query("3600", description="seconds back from now (at most 7 days)"),
    step: str = Query("60", description="seconds per bucket (at most 500 buckets)"),
    tenant: str | None = None,
    function: str | None = None,
    principal: Principal = Depends(get_principal),
    agent: Agent = Depends(get_agent),
) -> dict[str, Any]:
    if function:
        validate_name(function)
    if tenant is not None:
        validate_name(tenant, "tenant")
        principal.require(tenant, "viewer")
        tenants: list[str] | None = [tenant]
    elif principal.owner and principal.scope is None:
        tenants = None
    else:  # the tenants /v1/tenants lists for this caller
        visible = await asyncio.to_thread(agent.tenancy.list_tenants, principal)
        tenants = [entry["name"] for entry in visible]
    return await agent.metrics.summary(
        tenants, function, _seconds(window, "window"), _seconds(step, "step")
    )


def _seconds(value: str, name: str) -> int:
    """A whole number of seconds; bad values answer 400 like every other bad parameter."""
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number of seconds, not {value[:40]!r}") from None
