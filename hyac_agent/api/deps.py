"""Request dependencies: the agent, the caller (from its token), the tenant and role."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable

from fastapi import Header, Request

from hyac_agent.core import Agent
from hyac_agent.tenancy import Principal
from hyac_common.errors import HyacError, Unauthorized
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
    principal = await _bearer_principal(request)
    request.state.principal = principal
    return principal


async def _bearer_principal(request: Request) -> Principal:
    """The principal behind the request's bearer token, looked up now."""
    agent: Agent = request.app.state.agent
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing or invalid API token (Authorization: Bearer …)")
    if hmac.compare_digest(token, agent.token):
        return agent.tenancy.auth.bootstrap
    return await asyncio.to_thread(agent.tenancy.auth.authenticate, token)


#: how often a stream asks again whether its caller may still read it (seconds)
RECHECK_INTERVAL = 5.0


async def still_allowed(request: Request, tenant: str, minimum: str = "viewer") -> bool:
    """Whether the caller of a long-lived request (a log or task stream) may still read
    ``tenant``: its token, or its console session, is looked up again, and its role
    checked. Streams ask as they go, so a revoked or expired token, a closed session, a
    member removed or a tenant removed (its tokens go with it) ends them."""
    agent: Agent = request.app.state.agent
    try:
        if getattr(request.state, "console_session", None) is not None:
            # Imported here: the console package imports this one.
            from hyac_agent.console.auth import principal_of
            from hyac_agent.console.middleware import cookie_secret

            secret = cookie_secret(request.scope)
            session = None if secret is None else request.app.state.console_sessions.find(
                secret, touch=False)
            if session is None:
                return False
            principal = await principal_of(agent, session.identity)
        else:
            principal = await _bearer_principal(request)
        principal.require(tenant, minimum)
    except HyacError:
        return False
    return True


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
