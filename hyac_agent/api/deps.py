"""Request dependencies: the agent, the caller (from its token), the tenant and role."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable

from fastapi import Header, Request

from hyac_agent.core import Agent
from hyac_agent.tenancy import Principal
from hyac_common.errors import Unauthorized
from hyac_common.names import validate_name

# All async: a plain `def` dependency costs a thread-pool hop on every request.


async def get_agent(request: Request) -> Agent:
    return request.app.state.agent  # type: ignore[no-any-return]


async def get_principal(request: Request) -> Principal:
    """Who is calling: the agent's own token is the platform owner; API tokens are
    looked up by hash. Cached on the request (the audit log reads it too)."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    agent: Agent = request.app.state.agent
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing or invalid API token (Authorization: Bearer …)")
    if hmac.compare_digest(token, agent.token):
        principal = agent.tenancy.auth.bootstrap
    else:
        principal = await asyncio.to_thread(agent.tenancy.auth.authenticate, token)
    request.state.principal = principal
    return principal


async def require_token(request: Request, authorization: str | None = Header(None)) -> None:
    await get_principal(request)


def _role_for(request: Request) -> str:
    """The least role a tenant route needs: reading and invoking are open to viewers,
    every other change to developers. Routes that need more say so (``tenant_role``)."""
    if request.method in ("GET", "HEAD"):
        return "viewer"
    if request.method == "POST" and request.url.path.endswith("/invoke"):
        return "viewer"
    return "developer"


async def _tenant(request: Request, header: str | None, minimum: str) -> str:
    tenant = validate_name(header or "default", "tenant")
    principal = await get_principal(request)
    principal.require(tenant, minimum)
    agent: Agent = request.app.state.agent
    if principal.owner and not agent.tenancy.exists_cached(tenant):
        await asyncio.to_thread(agent.tenancy.ensure_tenant, tenant)
    request.state.tenant = tenant
    return tenant


async def get_tenant(request: Request, x_hyac_tenant: str | None = Header(None)) -> str:
    return await _tenant(request, x_hyac_tenant, _role_for(request))


def tenant_role(minimum: str) -> Callable[..., Awaitable[str]]:
    """A dependency: the tenant of the request, if the caller is at least ``minimum`` there."""

    async def dependency(request: Request, x_hyac_tenant: str | None = Header(None)) -> str:
        return await _tenant(request, x_hyac_tenant, minimum)

    return dependency
