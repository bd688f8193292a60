"""Sessions into principals, and console actions into the audit log."""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import TYPE_CHECKING

from hyac_agent.console.sessions import Identity, digest
from hyac_agent.tenancy import Principal
from hyac_agent.tenancy.audit import audit_entry
from hyac_common.errors import Unauthorized

if TYPE_CHECKING:
    from hyac_agent.core import Agent

log = logging.getLogger("hyac.audit")


async def principal_of(agent: Agent, identity: Identity) -> Principal:
    """The principal the API would see for the session's token, as of now."""
    if identity.owner_token:
        # The agent's token may have been replaced since: its old sessions end with it.
        if not hmac.compare_digest(identity.token_hash, digest(agent.token)):
            raise Unauthorized("the agent's token changed; sign in to the console again")
        return agent.tenancy.auth.bootstrap
    return await asyncio.to_thread(agent.tenancy.auth.authenticate_hash, identity.token_hash)


async def identity_of(agent: Agent, token: str) -> tuple[Identity, Principal]:
    """Check a token as the API does; the identity a session made from it acts as."""
    principal = await asyncio.to_thread(agent.tenancy.auth.authenticate, token)
    owner_token = hmac.compare_digest(token, agent.token)
    return Identity(digest(token), owner_token, principal.name, principal.token_id), principal


async def audit(agent: Agent, principal: Principal | None, action: str, target: str | None,
                result: int, client: str | None) -> None:
    """One audit record, as the API's own."""
    tenant = principal.scope if principal is not None else None
    entry = audit_entry(principal, tenant, action, target, result, client)
    try:
        await asyncio.to_thread(agent.tenancy.store.append_audit, entry)
    except Exception:
        log.exception("could not write the audit log")
