"""Who is calling, and what they may do.

A *principal* comes from the bearer token: the agent's own token (``DATA_DIR/agent.token``)
is the platform owner's bootstrap token; any other token is looked up by its sha256 in
the store (API tokens are random, 256 bits, shown once and stored only as hashes). A
user has a role per tenant; a token may be scoped to one tenant and may expire.

A token made with another token (``POST /v1/tokens`` authenticated by a stored token)
descends from it: it is scoped no wider, expires no later (asked for no expiry, it gets its
parent's), and stops working when any token it descends from is revoked or expires.

Principals are told apart by kind and id, never by name: ``owner`` (the agent's token) or
``user`` with the user's stable id (``usr_…``). User names that read as the platform or a
system identity (:data:`RESERVED_USER_NAMES`, and any starting with a reserved prefix) are
refused, compared case-insensitively after NFKC normalisation (``Owner``, ``ｏｗｎｅｒ``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import unicodedata
from dataclasses import dataclass, field

from hyac_agent.tenancy.store import TenancyStore
from hyac_common.errors import Forbidden, InvalidInput, Unauthorized
from hyac_common.names import validate_name

ROLES = ("viewer", "developer", "admin")
RANK = {role: i + 1 for i, role in enumerate(ROLES)}
OWNER = "owner"
TOKEN_PREFIX = "hyac_u_"
#: names no user may have: what the platform or its processes are called
RESERVED_USER_NAMES = frozenset({
    "owner", "admin", "administrator", "root", "system", "agent", "platform", "anonymous",
    "nobody", "superuser", "-",
})
RESERVED_USER_PREFIXES = ("hyac", "system")


def check_user_name(name: str) -> str:
    """``name`` if a user may be called so, else InvalidInput (400)."""
    if isinstance(name, str):
        folded = unicodedata.normalize("NFKC", name).casefold()
        if folded in RESERVED_USER_NAMES or folded.startswith(RESERVED_USER_PREFIXES):
            raise InvalidInput(f"user name {name!r} is reserved (it reads as the platform's own "
                               "identity); choose another")
    return validate_name(name, "user")


@dataclass(frozen=True)
class Principal:
    name: str
    owner: bool = False
    #: the one tenant a scoped token may act in (None: any tenant the user belongs to)
    scope: str | None = None
    token_id: str | None = None
    roles: dict[str, str] = field(default_factory=dict)
    #: "owner" (the agent's token) or "user"; with ``id``, what the audit log records
    kind: str = "user"
    #: the user's stable id (``usr_…``), or "owner"
    id: str = ""
    #: when the token used expires (None: never)
    expires_at: float | None = None

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
        self.bootstrap = Principal(OWNER, owner=True, kind=OWNER, id=OWNER)

    def authenticate(self, token: str) -> Principal:
        """The principal behind ``token``, or Unauthorized (blocking: call in a thread
        unless the token is the agent's)."""
        if hmac.compare_digest(token, self.agent_token):
            return self.bootstrap
        if not token.startswith(TOKEN_PREFIX):
            raise Unauthorized("missing or invalid API token (Authorization: Bearer …)")
        return self.authenticate_hash(hash_token(token))

    def authenticate_hash(self, token_hash: str) -> Principal:
        """The principal behind the stored token with this sha256 (a console session keeps
        the hash, never the token, and asks again on every request: revoking ends it)."""
        record = self.store.token_by_hash(token_hash)
        if record is None or record.revoked_at is not None:
            raise Unauthorized("invalid or revoked API token")
        now = time.time()
        if record.expires_at is not None and record.expires_at <= now:
            raise Unauthorized(f"API token {record.id} expired")
        for ancestor in self.store.ancestors(record):
            if ancestor.revoked_at is not None or (ancestor.expires_at is not None
                                                   and ancestor.expires_at <= now):
                raise Unauthorized(f"API token {record.id} ended with the token that made it "
                                   f"({ancestor.id})")
        user = self.store.get_user(record.user)
        if user is None:
            raise Unauthorized("the token's user no longer exists")
        return Principal(
            record.user, owner=user["owner"], scope=record.tenant, token_id=record.id,
            roles=user["roles"], kind="user", id=user["id"] or "", expires_at=record.expires_at,
        )
