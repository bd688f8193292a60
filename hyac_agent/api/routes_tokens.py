"""/v1/tokens: API tokens, shown once, stored as hashes, revocable."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from fastapi import APIRouter, Depends, Request

from hyac_agent.api.checks import sane_numbers
from hyac_agent.api.deps import get_agent, get_principal, require_token
from hyac_agent.core import Agent
from hyac_agent.tenancy import Principal
from hyac_common.names import validate_name
from hyac_common.wire import TokenCreate, TokenCreated, TokenInfo

router = APIRouter(prefix="/v1/tokens", dependencies=[Depends(require_token)], tags=["tokens"])


@router.post("", response_model=TokenCreated, status_code=201)
async def create_token(
    body: TokenCreate, request: Request, principal: Principal = Depends(get_principal),
    agent: Agent = Depends(get_agent),
) -> TokenCreated:
    sane_numbers(body)
    if body.user:
        validate_name(body.user, "user")
    if body.tenant:
        validate_name(body.tenant, "tenant")
    record, secret = await asyncio.to_thread(
        agent.tenancy.create_token, principal, body.user, body.tenant, body.expires_in, body.name
    )
    request.state.audit_target = f"{record.id} ({record.user})"
    if record.tenant:
        request.state.tenant = record.tenant
    return TokenCreated(**asdict(record), token=secret)


@router.get("", response_model=list[TokenInfo])
async def list_tokens(
    principal: Principal = Depends(get_principal), agent: Agent = Depends(get_agent)
) -> list[TokenInfo]:
    records = await asyncio.to_thread(agent.tenancy.visible_tokens, principal)
    return [TokenInfo(**asdict(r)) for r in records]


@router.delete("/{token_id}", response_model=TokenInfo)
async def revoke_token(
    token_id: str, principal: Principal = Depends(get_principal),
    agent: Agent = Depends(get_agent),
) -> TokenInfo:
    record = await asyncio.to_thread(agent.tenancy.revoke_token, principal, token_id)
    return TokenInfo(**asdict(record))
