"""Request dependencies: the agent, the caller's token, the tenant."""

from __future__ import annotations

import hmac

from fastapi import Header, Request

from hyac_agent.core import Agent
from hyac_common.errors import Unauthorized
from hyac_common.names import validate_name


# All async: a plain `def` dependency costs a thread-pool hop on every request.


async def get_agent(request: Request) -> Agent:
    return request.app.state.agent  # type: ignore[no-any-return]


async def require_token(request: Request, authorization: str | None = Header(None)) -> None:
    agent: Agent = request.app.state.agent
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), agent.token):
        raise Unauthorized("missing or invalid API token (Authorization: Bearer …)")


async def get_tenant(x_hyac_tenant: str | None = Header(None)) -> str:
    return validate_name(x_hyac_tenant or "default", "tenant")
