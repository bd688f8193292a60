"""Who is calling, and what they may do.

A *principal* comes from the bearer token: the agent's own token (``DATA_DIR/agent.token``)
is the platform owner's bootstrap token; any other token is looked up by its sha256 in
the store (API tokens are random, 256 bits, shown once and stored only as hashes). A
user has a role per tenant; a token may be scoped to one tenant and may expire.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from hyac_agent.tenancy.store import TenancyStore
from hyac_common.errors import Forbidden, Unauthorized

ROLES = ("viewer", "developer", "admin")
RANK = {role: i + 1 for i, role in enumerate(ROLES)}
OWNER = "owner"
TOKEN_PREFIX = "hyac_u_"


@dataclass(frozen=True)
class Principal:
    name: str
    owner: bool = False
    #: the one tenant a scoped token may act in (None: any tenant the user belongs to)
    scope: str | None = None
    token_id: str | None = None
    roles: dict[str, str] = field(default_factory=dict)

    def role_in(self, tenant: str) -> str | None:
        if self.scope is not None and self.scope != tenant:
            return None
        if self.owner:
            return OWNER
        return self.roles.get(tenant)

    def require(self, tenant: str, minimum: str) -> str:
        """The principal's role in ``tenant`` if it is at least ``minimum``, else Forbidden.

        A non-member gets the same answer whether or not the tenant exists, so
        nothing about other tenants can be learnt by guessing names."""
        role = self.role_in(tenant)
        if role is None:
            raise Forbidden(f"{self.name} has no access to tenant {tenant!r}")
        if role != OWNER and RANK[role] < RANK[minimum]:
            raise Forbidden(
                f"{self.name} is {role} in tenant {tenant!r}; this needs {minimum} or higher",
                role=role, required=minimum,
            )
        return role

    def require_owner(self) -> None:
        if not self.owner or self.scope is not None:
            raise Forbidden(f"{self.name} is not the platform owner; this needs the owner")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """(token id, secret token)."""
    return "tok_" + secrets.token_hex(8), TOKEN_PREFIX + secrets.token_urlsafe(32)


class Authenticator:
    def __init__(self, store: TenancyStore, agent_token: str) -> None:
        self.store = store
        self.agent_token = agent_token
        self.bootstrap = Principal("owner", owner=True)

    def authenticate(self, token: str) -> Principal:
        """The principal behind ``token``, or Unauthorized (blocking: call in a thread
        unless the token is the agent's)."""
        if hmac.compare_digest(token, self.agent_token):
            return self.bootstrap
        if not token.startswith(TOKEN_PREFIX):
            raise Unauthorized("missing or invalid API token (Authorization: Bearer …)")
        record = self.store.token_by_hash(hash_token(token))
        if record is None or record.revoked_at is not None:
            raise Unauthorized("invalid or revoked API token")
        if record.expires_at is not None and record.expires_at <= time.time():
            raise Unauthorized(f"API token {record.id} expired")
        user = self.store.get_user(record.user)
        if user is None:
            raise Unauthorized("the token's user no longer exists")
        return Principal(
            record.user, owner=user["owner"], scope=record.tenant, token_id=record.id,
            roles=user["roles"],
        )
