"""The tenancy layer's domain logic: tenants, members, tokens, env, network policy,
and the host calls that reach a tenant's own data (``db.*``, ``secrets.*``,
``storage.*``)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from hyac_agent.tenancy.auth import (
    RANK,
    ROLES,
    Authenticator,
    Principal,
    check_user_name,
    hash_token,
    new_token,
)
from hyac_agent.tenancy.objects import ObjectService, builtin_only
from hyac_agent.tenancy.quotas import QuotaService, exceeded
from hyac_agent.tenancy.secrets import SecretService, check_secret_name
from hyac_agent.tenancy.store import TenancyStore, TokenRecord
from hyac_agent.tenancy.tenantdb import DatabaseFull, TenantDatabases, is_write_free
from hyac_common.errors import Conflict, Forbidden, InvalidInput, NotFound
from hyac_common.names import validate_name

if TYPE_CHECKING:
    from hyac_agent.integrations.storage import StorageTarget
    from hyac_agent.sandbox.limits import ResourceLimits
    from hyac_agent.store import Store, VersionRecord

DEFAULT_TENANT = "default"
MAX_ENV_VALUE = 32 * 1024

#: told the name of a tenant whose env or network changed (its workers must restart)
TenantListener = Callable[[str], Coroutine[Any, Any, None]]


def parse_egress(value: Any) -> str | list[str]:
    """``none``, ``allow``, or a list (or comma-separated string) of CIDRs and host names."""
    if isinstance(value, str):
        if value.strip() in ("none", "allow"):
            return value.strip()
        value = [v for v in (p.strip() for p in value.split(",")) if v]
    if not isinstance(value, list) or not value:
        raise InvalidInput("egress is 'none', 'allow' or a list of CIDRs and host names")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item:
            raise InvalidInput(f"invalid egress entry {item!r}")
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            if not all(part and (part.isalnum() or "-" in part) for part in item.split(".")):
                raise InvalidInput(f"invalid egress entry {item!r}: not a CIDR or host name") from None
            out.append(item.lower())
    return out


class TenancyService:
    """``store`` holds the functions; ``engine`` is the same database, where the
    tenancy keeps its own tables (tenants, users, tokens, quotas, objects)."""

    def __init__(self, store: Store, engine: Engine, data_dir: Path, store_url: str,
                 agent_token: str, egress_unavailable: Callable[[], str | None],
                 storage: Callable[[], StorageTarget] = builtin_only,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = TenancyStore(engine)
        self.store.create_schema()
        self.main_store = store
        self.auth = Authenticator(self.store, agent_token)
        self.secrets = SecretService(self.store, data_dir)
        self.databases = TenantDatabases(data_dir, store_url)
        #: ``clock``: the wall clock of the quota windows (a test drives it)
        self.quotas = QuotaService(self.store, self.storage_use, clock)
        #: objects' bytes go where ``storage`` says at each put (the storage integration)
        self.objects = ObjectService(engine, self.quotas, storage)
        #: why tenants cannot have egress on this agent's sandbox (None: they can)
        self.egress_unavailable = egress_unavailable
        self._env: dict[str, dict[str, str]] = {}
        self._known: set[str] = set()
        self._listeners: list[TenantListener] = []
        #: the agent's event loop once started: listeners run there, whichever thread
        #: made the change
        self._loop: asyncio.AbstractEventLoop | None = None
        self.store.create_tenant(DEFAULT_TENANT)

    def subscribe(self, listener: TenantListener) -> None:
        """Call ``listener(tenant)`` on the agent's event loop whenever a tenant's env or
        network changes (its workers must restart to see it)."""
        self._listeners.append(listener)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.quotas.start()

    async def stop(self) -> None:
        await self.quotas.stop()
        self._loop = None

    # tenants --------------------------------------------------------------------------

    def exists(self, tenant: str) -> bool:
        if tenant in self._known:
            return True
        if self.store.get_tenant(tenant) is not None:
            self._known.add(tenant)
            return True
        return False

    def exists_cached(self, tenant: str) -> bool:
        return tenant in self._known

    def ensure_tenant(self, tenant: str) -> None:
        """The owner acting in a tenant that does not exist yet creates it (as before
        tenants were explicit, a deploy to a new tenant name just worked)."""
        if tenant not in self._known:
            self.store.create_tenant(tenant)
            self._known.add(tenant)

    def create_tenant(self, name: str, egress: Any = "none") -> dict[str, Any]:
        validate_name(name, "tenant")
        policy = self.check_egress(parse_egress(egress))
        if not self.store.create_tenant(name, "none"):
            raise Conflict(f"tenant {name!r} already exists")
        if policy != "none":
            self.store.set_egress(name, policy)
        self._known.add(name)
        return self.describe(name)

    def check_egress(self, policy: str | list[str]) -> str | list[str]:
        if policy != "none":
            reason = self.egress_unavailable()
            if reason:
                raise InvalidInput(f"egress {policy!r} is not possible on this agent: {reason} "
                                   "(only egress 'none' is)")
        return policy

    def set_egress(self, name: str, egress: Any) -> dict[str, Any]:
        self.require_tenant(name)
        policy = self.check_egress(parse_egress(egress))
        self.store.set_egress(name, policy)
        self._changed(name)
        return self.describe(name)

    def egress(self, tenant: str) -> str | list[str]:
        info = self.store.get_tenant(tenant) if tenant else None
        return info["egress"] if info else "none"

    def require_tenant(self, name: str) -> dict[str, Any]:
        info = self.store.get_tenant(name)
        if info is None:
            raise NotFound(f"tenant {name!r} not found")
        return info

    def describe(self, name: str) -> dict[str, Any]:
        info = self.require_tenant(name)
        return {
            **info,
            "functions": len(self.main_store.list_functions(name)),
            "members": self.store.members(name),
            "secrets": len(self.store.secrets_of(name)),
            "env": len(self.store.env_of(name)),
            "database": (f"postgresql database {self.databases.database(name)}"
                         if self.databases.postgres else str(self.databases.sqlite_path(name))),
        }

    def list_tenants(self, principal: Principal) -> list[dict[str, Any]]:
        tenants = self.store.list_tenants()
        if not principal.owner:
            tenants = [t for t in tenants if principal.role_in(t["name"])]
        elif principal.scope is not None:
            tenants = [t for t in tenants if t["name"] == principal.scope]
        return [{**t, "role": principal.role_in(t["name"])} for t in tenants]

    def delete_tenant(self, name: str) -> None:
        if name == DEFAULT_TENANT:
            raise InvalidInput("the default tenant cannot be removed")
        self.require_tenant(name)
        for function in self.main_store.list_functions(name):
            self.main_store.delete_function(name, function.name)
        # kv, objects, secrets, env, quotas and counters, members, its tokens, tasks (with
        # their results), logs and audit records: a tenant made again under the name
        # starts empty
        in_s3 = self.objects.store.held_in_s3(name)
        # Its counts not stored yet are dropped before the stored ones are deleted: a
        # store of them in flight would otherwise write them back.
        self.quotas.forget(name, usage=True)
        self.store.delete_tenant(name)
        self.objects.store.discard_all(name, in_s3)  # and the bytes its objects had in S3
        self.databases.drop(name)
        self.secrets.forget(name)
        self._env.pop(name, None)
        self._known.discard(name)

    # members --------------------------------------------------------------------------

    def set_member(self, actor: Principal, tenant: str, user: str, role: str,
                   owner: bool = False) -> dict[str, Any]:
        check_user_name(user)
        if role not in ROLES:
            raise InvalidInput(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
        if owner:
            actor.require_owner()
        self.require_tenant(tenant)
        if not actor.owner and actor.name == user and RANK[role] > RANK[actor.roles.get(tenant, "viewer")]:
            raise Forbidden("you cannot raise your own role")
        self.store.ensure_user(user, owner=owner)
        self.store.set_role(user, tenant, role)
        return {"name": user, "tenant": tenant, "role": role, "owner": owner}

    def remove_member(self, tenant: str, user: str) -> None:
        if not self.store.remove_member(user, tenant):
            raise NotFound(f"user {user!r} is not a member of tenant {tenant!r}")

    def delete_user(self, user: str) -> None:
        if not self.store.delete_user(user):
            raise NotFound(f"user {user!r} not found")

    # tokens ---------------------------------------------------------------------------

    def create_token(self, actor: Principal, user: str | None, tenant: str | None,
                     expires_in: float | None, name: str) -> tuple[TokenRecord, str]:
        user = user or actor.name
        if actor.scope is not None:
            if tenant not in (None, actor.scope):
                raise Forbidden(f"this token is scoped to tenant {actor.scope!r}")
            tenant = actor.scope
        if not actor.owner and user != actor.name:
            # An admin may issue tokens for members of the tenant they administer.
            if tenant is None:
                raise Forbidden("a token for another user must be scoped to a tenant (--tenant)")
            actor.require(tenant, "admin")
            if tenant not in self.store.tenants_of(user):
                raise Forbidden(f"you can issue tokens only for members of tenant {tenant!r}")
        target = self.store.get_user(user)
        if user == "owner" and actor.owner and target is None:
            self.store.ensure_user("owner", owner=True)
            target = self.store.get_user(user)
        if target is None:
            raise NotFound(f"user {user!r} not found (add it with `hyac user add`)")
        if tenant is not None:
            self.require_tenant(tenant)
            if not target["owner"] and tenant not in target["roles"]:
                raise InvalidInput(f"user {user!r} is not a member of tenant {tenant!r}")
        if target["owner"] and not actor.owner:
            raise Forbidden("only the platform owner can issue tokens of an owner")
        if expires_in is not None and expires_in <= 0:
            raise InvalidInput("expires_in must be a positive number of seconds")
        expires_at = self._child_expiry(actor, expires_in)
        token_id, secret = new_token()
        record = self.store.add_token(token_id, hash_token(secret), user, tenant, name,
                                      expires_at, actor.name, actor.token_id)
        return record, secret

    @staticmethod
    def _child_expiry(actor: Principal, expires_in: float | None) -> float | None:
        """When a token made by ``actor`` expires: never later than the token ``actor``
        used (asked for no expiry, it gets that token's; asked for later, refused)."""
        wanted = time.time() + expires_in if expires_in else None
        ceiling = actor.expires_at
        if ceiling is None:
            return wanted
        if wanted is None:
            return ceiling
        if wanted > ceiling:
            raise Forbidden(f"a token cannot outlive the token that makes it (that one expires "
                            f"in {max(ceiling - time.time(), 0):.0f} s)", expires_at=ceiling)
        return wanted

    def visible_tokens(self, actor: Principal) -> list[TokenRecord]:
        tokens = self.store.list_tokens()
        if actor.owner and actor.scope is None:
            return tokens
        return [t for t in tokens if self._may_manage(actor, t)]

    def _may_manage(self, actor: Principal, token: TokenRecord) -> bool:
        if actor.owner and actor.scope is None:
            return True
        if token.user == actor.name and (actor.scope is None or token.tenant == actor.scope):
            return True
        return token.tenant is not None and actor.role_in(token.tenant) in ("admin", "owner")

    def revoke_token(self, actor: Principal, token_id: str) -> TokenRecord:
        token = self.store.get_token(token_id)
        if token is None or not self._may_manage(actor, token):
            raise NotFound(f"token {token_id!r} not found")
        self.store.revoke_token(token_id)
        return self.store.get_token(token_id)  # type: ignore[return-value]

    # env ------------------------------------------------------------------------------

    def env(self, tenant: str) -> dict[str, str]:
        cached = self._env.get(tenant)
        if cached is None:
            cached = self._env[tenant] = self.store.env_of(tenant)
        return cached

    def set_env(self, tenant: str, values: dict[str, str]) -> None:
        for key, value in values.items():
            check_secret_name(key, "env")
            if not isinstance(value, str) or len(value) > MAX_ENV_VALUE:
                raise InvalidInput(f"env {key}: a string of at most {MAX_ENV_VALUE} characters")
        for key, value in values.items():
            self.store.set_env(tenant, key, value)
        self._env.pop(tenant, None)
        self._changed(tenant)

    def delete_env(self, tenant: str, key: str) -> None:
        if not self.store.delete_env(tenant, key):
            raise NotFound(f"no env {key!r} in tenant {tenant!r}")
        self._env.pop(tenant, None)
        self._changed(tenant)

    def reload(self, tenant: str) -> None:
        """Read ``tenant``'s env, secrets and quotas from the store again (another agent
        changed them)."""
        self._known.discard(tenant)  # or removed it
        self._env.pop(tenant, None)
        self.secrets.refresh(tenant)
        self.quotas.forget(tenant)

    def _changed(self, tenant: str) -> None:
        loop = self._loop
        if loop is None:  # not started: no worker runs that could be stale
            return
        for listener in self._listeners:
            # Called from the API's threads as well as from the loop itself.
            asyncio.run_coroutine_threadsafe(listener(tenant), loop)

    # workers --------------------------------------------------------------------------

    async def worker_setup(self, version: VersionRecord, limits: ResourceLimits
                           ) -> tuple[ResourceLimits, dict[str, str], bool, str]:
        """(limits, env, needs a sandbox of its own, state) for a worker of ``version``:
        the tenant's quotas cap the limits, its env is merged under the function's own, a
        tenant with egress needs a sandbox started on its own network, and ``state`` is
        the ``worker_state`` the worker starts with."""
        tenant = version.tenant

        def gather() -> tuple[ResourceLimits, dict[str, str], bool, str]:
            # Read once, digested first: a change after this read is judged stale.
            tenant_env, egress = self.env(tenant), self.egress(tenant)
            state = self._state_digest(tenant, tenant_env, egress)
            return (self.quotas.sandbox_limits(tenant, limits),
                    {**tenant_env, **version.config.env}, egress != "none", state)

        return await asyncio.to_thread(gather)

    def worker_state(self, tenant: str) -> str:
        """A digest of what a worker of ``tenant`` takes at start and keeps: env, egress,
        quotas and secret values (also loads the secrets, so that its log lines can be
        redacted at once). A worker that started with another digest is stale. Blocking."""
        return self._state_digest(tenant, self.env(tenant), self.egress(tenant))

    def _state_digest(self, tenant: str, env: dict[str, str], egress: str | list[str]) -> str:
        secrets = hashlib.sha256()
        for name, value in sorted(self.secrets.values(tenant).items()):
            secrets.update(f"{len(name)}:{name}{len(value)}:{value}".encode())
        state = json.dumps({
            "env": env, "egress": egress,
            "quotas": self.quotas.limits(tenant), "secrets": secrets.hexdigest(),
        }, sort_keys=True, default=str)
        return hashlib.sha256(state.encode()).hexdigest()

    def check_deploy(self, tenant: str, name: str, config: Any) -> None:
        """The function-count, timeout and memory quotas, before a deploy (403)."""
        functions = self.main_store.list_functions(tenant)
        is_new = all(f.name != name for f in functions)
        self.quotas.check_deploy(tenant, is_new, len(functions), config.timeout, config.memory)

    # storage --------------------------------------------------------------------------

    def storage_use(self, tenant: str) -> int:
        return (self.store.kv_bytes(tenant) + self.databases.size(tenant)
                + self.objects.bytes_of(tenant))

    # host calls -----------------------------------------------------------------------

    async def host_call(self, tenant: str, op: str, args: dict[str, Any],
                        request_id: str | None, timeout: float = 60.0) -> Any:
        if op == "secrets.get":
            name = args.get("name")
            if not isinstance(name, str):
                raise InvalidInput("secrets.get needs a name")
            values = await asyncio.to_thread(self.secrets.values, tenant)
            return values.get(name)
        if op == "secrets.list":
            return await asyncio.to_thread(self.secrets.names, tenant)
        if op.startswith("storage."):
            return await self.objects.host_call(tenant, op, args)
        if op in ("db.execute", "db.fetchall"):
            owner = request_id if request_id and self.databases.in_transaction(request_id) else None
            return await asyncio.to_thread(self._sql, tenant, owner, args.get("sql"),
                                           args.get("params"), op == "db.fetchall")
        if op in ("db.begin", "db.commit", "db.rollback"):
            if request_id is None:
                raise InvalidInput("db transactions belong to a request; none is in flight")
            if op == "db.begin":
                await asyncio.to_thread(self.databases.begin, tenant, request_id, timeout)
                return None
            done = await asyncio.to_thread(self.databases.finish, request_id, op == "db.commit")
            if not done:
                raise InvalidInput(f"{op}: no transaction is open")
            return None
        raise InvalidInput(f"unknown host call {op!r}")

    def _sql(self, tenant: str, owner: str | None, sql: Any, params: Any, fetch: bool) -> Any:
        """One statement of ``tenant``, the database held to what its storage quota leaves
        once kv and objects are counted. Statements that may write go one at a time with
        the tenant's kv sets and object puts, so together they cannot pass the quota."""
        limit = self.quotas.limit(tenant, "storage")
        if limit is None:
            return self.databases.run(tenant, owner, sql, params, fetch)
        writes = not (isinstance(sql, str) and is_write_free(sql))
        with self.objects.tenant_lock(tenant) if writes else contextlib.nullcontext():
            other = self.store.kv_bytes(tenant) + self.objects.bytes_of(tenant)
            if writes:  # full already: refused before it runs, as kv sets and puts are
                self.quotas.check_storage(tenant, 1)
            try:
                return self.databases.run(tenant, owner, sql, params, fetch,
                                          room=int(limit) - other)
            except DatabaseFull as full:
                raise exceeded("storage", limit, other + full.size, 413) from None

    async def kv_write(self, tenant: str, key: str, value: Any,
                       write: Callable[[str, str, Any], None]) -> None:
        """``write(tenant, key, value)`` within the storage quota. Quota-checked writes of
        a tenant (kv and objects alike) go one at a time: checked together, each would
        see the room only one of them fits in."""
        def checked_write() -> None:
            if self.quotas.limit(tenant, "storage") is None:
                write(tenant, key, value)
                return
            with self.objects.tenant_lock(tenant):
                growth = len(key) + len(json.dumps(value)) - self.store.kv_key_size(tenant, key)
                self.quotas.check_storage(tenant, growth)
                write(tenant, key, value)

        await asyncio.to_thread(checked_write)

    async def request_ended(self, request_id: str) -> None:
        if self.databases.in_transaction(request_id):
            await asyncio.to_thread(self.databases.finish, request_id, False)
