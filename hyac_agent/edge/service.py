"""The edge service: the policy the gateway applies, and the changes made to it.

The gateway consults an in-memory view of the edge's tables, never the store on the
hot path. A change made through this agent takes effect at once; one made through
another agent of a cluster within ``HYAC_EDGE_REFRESH`` seconds (default 2).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from hyac_agent.edge import cors, signing
from hyac_agent.edge.acme import ACME_DEFAULTS, settings_value
from hyac_agent.edge.limits import RateLimiter, ReplayGuard, retry_after
from hyac_agent.edge.net import (
    Address,
    Network,
    client_address,
    matches,
    parse_network,
    rate_key,
)
from hyac_agent.edge.store import Access, EdgeStore, IpRule, Snapshot
from hyac_common.errors import (
    AccessRefused,
    CorsRefused,
    HyacError,
    InvalidInput,
    IpDenied,
    NotFound,
    RateLimited,
)
from hyac_common.names import validate_name

if TYPE_CHECKING:
    from hyac_agent.core import Agent

MODES = ("public", "token", "signed")
KEY_PREFIX = "hyac_k_"
KEY_HEADER = "x-hyac-key"


@dataclass
class View:
    """A snapshot with what the gateway needs worked out once."""

    snap: Snapshot
    trusted: list[Network]
    rules: dict[str, list[tuple[IpRule, Network]]]
    loaded_at: float

    @classmethod
    def of(cls, snap: Snapshot) -> View:
        rules: dict[str, list[tuple[IpRule, Network]]] = {}
        for rule in snap.rules:
            rules.setdefault(rule.tenant, []).append((rule, parse_network(rule.cidr)))
        trusted = [parse_network(c) for c in snap.settings.get("trusted_proxies", [])]
        return cls(snap, trusted, rules, time.monotonic())


@dataclass
class Verdict:
    """What the gateway does with a request it may run: who the client is, the headers
    the function sees (credentials meant for the gateway taken out), and headers to add
    to the answer (CORS)."""

    client_ip: str
    headers: dict[str, str]
    extra: dict[str, str] = field(default_factory=dict)
    response: Any = None  # a Response: the gateway answers with it instead

    def finish(self, response: Any) -> Any:
        for name, value in self.extra.items():
            response.headers[name] = value
        return response


class EdgeService:
    def __init__(self, agent: Agent) -> None:
        from cryptography.fernet import Fernet

        from hyac_agent.tenancy.secrets import load_or_create_key

        self.agent = agent
        self.store = EdgeStore(agent.store.engine)
        self.store.create_schema()
        self._box = Fernet(load_or_create_key(agent.config.data_dir))
        self._view = View.of(self.store.load())
        self._lock = asyncio.Lock()
        self.refresh = float(os.environ.get("HYAC_EDGE_REFRESH") or 2)
        self.limiter = RateLimiter()
        self.replays = ReplayGuard()
        self._secrets: dict[str, str] = {}
        from hyac_agent.edge.domains import Domains

        self.domains = Domains(self)
        from hyac_agent.edge.tls import Certificates

        self.certificates = Certificates(self)
        from hyac_agent.edge.acme import Acme

        self.acme = Acme(self)
        self.decisions = Counter(
            "hyac_edge_decisions", "Requests the gateway answered itself before any worker: "
            "refused by an IP rule, the access mode, a rate limit or CORS, or a CORS preflight",
            ["tenant", "function", "decision"], registry=agent.metrics.registry,
        )

    # the view -------------------------------------------------------------------------

    async def view(self) -> View:
        view = self._view
        if time.monotonic() - view.loaded_at < self.refresh:
            return view
        async with self._lock:
            if self._view is view:
                self._view = View.of(await asyncio.to_thread(self.store.load))
            return self._view

    def encrypt(self, text: str) -> str:
        return self._box.encrypt(text.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._box.decrypt(token.encode()).decode()

    def snapshot(self) -> Snapshot:
        """What the gateway consults now (without a refresh)."""
        return self._view.snap

    async def reload(self) -> None:
        async with self._lock:
            self._view = View.of(await asyncio.to_thread(self.store.load))

    async def forget(self, tenant: str, function: str | None) -> None:
        """What this agent keeps in memory of a removed function (or tenant): dropped,
        after the store dropped its rows (``edge.store.forget``)."""
        gone = {d.host for d in self._view.snap.claims
                if d.tenant == tenant and (function is None or d.function == function)}
        self.limiter.forget((tenant,) if function is None else (tenant, function))
        await self.reload()
        for host in gone - {d.host for d in self._view.snap.claims}:
            self.acme.errors.pop(host, None)

    # the gateway ----------------------------------------------------------------------

    async def admit(self, request: Any, tenant: str, function: str,
                    domain: str | None = None) -> Verdict:
        view = await self.view()
        client = request.client
        peer = client.host if client else ""
        headers = dict(request.headers)
        address = client_address(peer, headers, view.trusted)
        verdict = Verdict(str(address) if address is not None else peer, headers)
        access = view.snap.access.get((tenant, function))
        if tenant not in view.rules and access is None:
            return verdict
        try:
            self._check_ip(view, address, tenant, function, domain)
            if access is None:
                return verdict
            config = access.cors
            origin = headers.get("origin")
            if config is not None and origin and request.method == "OPTIONS" \
                    and "access-control-request-method" in headers:
                answer, why = cors.preflight(config, origin, headers["access-control-request-method"],
                                             headers.get("access-control-request-headers", ""))
                if answer is None:
                    raise CorsRefused(f"CORS preflight refused: {why}")
                self._count(tenant, function, "preflight")
                from starlette.responses import Response

                verdict.response = Response(status_code=204, headers=answer)
                return verdict
            if access.rate_requests and access.rate_per:
                wait = self.limiter.take((tenant, function, rate_key(address, verdict.client_ip)),
                                         access.rate_requests, access.rate_per)
                if wait:
                    raise RateLimited(
                        f"too many requests from {verdict.client_ip} to {function!r}: "
                        f"{access.rate_requests} per {access.rate_per:g} s; retry in "
                        f"{retry_after(wait)} s", retry_after=int(retry_after(wait)))
            if access.mode == "token":
                await self._check_token(view, headers, tenant, function)
            elif access.mode == "signed":
                await self._check_signature(request, access, headers)
            if config is not None and origin and cors.origin_allowed(config, origin):
                verdict.extra = cors.answer_headers(config, origin)
        except HyacError as exc:
            verdict.response = self._refusal(exc, tenant, function)
        return verdict

    async def check_ip(self, request: Any, tenant: str, function: str) -> None:
        """The tenant's and the function's IP rules alone, IpDenied if they refuse the
        client: for inbound webhooks, whose signature stands in for the access mode."""
        view = await self.view()
        peer = request.client.host if request.client else ""
        self._check_ip(view, client_address(peer, dict(request.headers), view.trusted),
                       tenant, function, None)

    def _check_ip(self, view: View, address: Address | None, tenant: str, function: str,
                  domain: str | None) -> None:
        levels: dict[str, list[tuple[IpRule, Network]]] = {}
        for rule, network in view.rules.get(tenant, ()):
            if rule.domain is not None:
                if rule.domain != domain:
                    continue
                level = "domain"
            elif rule.function is not None:
                if rule.function != function:
                    continue
                level = "function"
            else:
                level = "tenant"
            if rule.action == "deny" and address is not None and matches(address, [network]):
                raise IpDenied(f"{address} is denied by rule {rule.id} ({rule.cidr}, "
                               f"{level} {_level_name(rule)})", rule=rule.id, level=level)
            if rule.action == "allow":
                levels.setdefault(level, []).append((rule, network))
        for level, allowed in levels.items():
            if address is None or not matches(address, [net for _, net in allowed]):
                names = _level_name(allowed[0][0])
                raise IpDenied(f"{address or 'this client'} is not in the allow list of "
                               f"{level} {names}", rule=None, level=level,
                               allow_rules=[rule.id for rule, _ in allowed])

    async def _check_token(self, view: View, headers: dict[str, str], tenant: str,
                           function: str) -> None:
        key = headers.pop(KEY_HEADER, None)
        scheme, _, bearer = (headers.get("authorization") or "").partition(" ")
        bearer = bearer.strip() if scheme.lower() == "bearer" else ""
        if bearer:
            headers.pop("authorization", None)
        if key is None and bearer.startswith(KEY_PREFIX):
            key = bearer
        if key:
            digest = hashlib.sha256(key.encode()).hexdigest()
            if view.snap.keys.get(digest) == (tenant, function):
                return
            raise AccessRefused(f"invalid key for function {function!r}")
        if bearer:
            from hyac_agent.tenancy.auth import TOKEN_PREFIX

            auth = self.agent.tenancy.auth
            if hmac.compare_digest(bearer, self.agent.token):
                return
            if bearer.startswith(TOKEN_PREFIX):
                principal = await asyncio.to_thread(auth.authenticate, bearer)
                if principal.role_in(tenant) is not None:
                    return
            raise AccessRefused(f"this token may not invoke functions of tenant {tenant!r}")
        raise AccessRefused(f"function {function!r} needs a token: Authorization: Bearer "
                            f"<API token or function key>, or {KEY_HEADER}")

    async def _check_signature(self, request: Any, access: Access, headers: dict[str, str]) -> None:
        if access.signing_secret is None:
            raise AccessRefused("this function takes signed requests but has no signing secret yet")
        secret = self._secrets.get(access.signing_secret)
        if secret is None:
            secret = self.decrypt(access.signing_secret)
            self._secrets = {access.signing_secret: secret, **self._secrets}
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        window = access.replay_window or signing.DEFAULT_REPLAY_WINDOW
        signature = headers.get(signing.SIGNATURE_HEADER)
        why = signing.check(secret, headers.get(signing.TIMESTAMP_HEADER), signature,
                            request.method, target, await request.body(), time.time(), window)
        if why is not None:
            raise AccessRefused(why)
        assert signature is not None
        if not self.replays.first_use(signature.strip(), window):
            raise AccessRefused("this signature was already used (a replay); sign each "
                                "request anew", replay=True)

    def _refusal(self, exc: HyacError, tenant: str, function: str) -> Any:
        from starlette.responses import JSONResponse

        level = exc.details.get("level")
        # a label per function only where the function has rules or access of its own: a
        # caller cannot grow the metrics with names it makes up
        self._count(tenant, function if level in (None, "function") else "*", exc.code)
        headers = {}
        if "retry_after" in exc.details:
            headers["Retry-After"] = str(exc.details["retry_after"])
        return JSONResponse(exc.to_json(), status_code=exc.status, headers=headers)

    def _count(self, tenant: str, function: str, decision: str) -> None:
        self.decisions.labels(tenant, function, decision).inc()

    # changes --------------------------------------------------------------------------

    async def add_rule(self, tenant: str, action: str, cidr: str, function: str | None,
                       domain: str | None, note: str) -> IpRule:
        if action not in ("allow", "deny"):
            raise InvalidInput(f"action must be allow or deny, not {action!r}")
        if function is not None and domain is not None:
            raise InvalidInput("a rule is for the tenant, a function or a domain: not both")
        if function is not None:
            validate_name(function, "function")
        if domain is not None:
            from hyac_agent.edge.hosts import normalise_host

            domain = normalise_host(domain)
        if len(note) > 200:
            raise InvalidInput("note: at most 200 characters")
        network = parse_network(cidr)
        rule = IpRule("ipr_" + secrets.token_hex(6), tenant, function, domain, action,
                      str(network), note, time.time())
        await asyncio.to_thread(self.store.add_rule, rule)
        await self.reload()
        return rule

    async def rules(self, tenant: str) -> list[IpRule]:
        await self.reload()
        return [rule for rule, _ in self._view.rules.get(tenant, [])]

    async def delete_rule(self, tenant: str, rule_id: str) -> None:
        if not await asyncio.to_thread(self.store.delete_rule, tenant, rule_id):
            raise NotFound(f"no IP rule {rule_id!r} in tenant {tenant!r}")
        await self.reload()

    async def access(self, tenant: str, function: str) -> Access:
        return await asyncio.to_thread(self.store.get_access, tenant,
                                       validate_name(function, "function"))

    async def set_access(self, tenant: str, function: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply ``changes`` (the fields given); the new access, with a signing secret
        when one was made (shown this once)."""
        current = await self.access(tenant, function)
        updated, secret = current, None
        if "mode" in changes:
            if changes["mode"] not in MODES:
                raise InvalidInput(f"mode must be one of {', '.join(MODES)}")
            updated = replace(updated, mode=changes["mode"])
        if "rate_limit" in changes:
            rate = changes["rate_limit"]
            if rate is None:
                updated = replace(updated, rate_requests=None, rate_per=None)
            else:
                requests, per = rate.get("requests"), rate.get("per_seconds", 60)
                if not isinstance(requests, int) or not 1 <= requests <= 1_000_000:
                    raise InvalidInput("rate_limit.requests: a whole number from 1 to 1000000")
                if not isinstance(per, (int, float)) or not 0 < per <= 86400:
                    raise InvalidInput("rate_limit.per_seconds: more than 0, at most 86400")
                updated = replace(updated, rate_requests=requests, rate_per=float(per))
        if "cors" in changes:
            updated = replace(updated, cors=None if changes["cors"] is None
                              else cors.validate(changes["cors"]))
        if "replay_window" in changes:
            window = changes["replay_window"]
            if window is not None and (not isinstance(window, (int, float))
                                       or not 1 <= window <= 3600):
                raise InvalidInput("replay_window: seconds from 1 to 3600")
            updated = replace(updated, replay_window=window)
        if changes.get("rotate_signing_secret") or (updated.mode == "signed"
                                                   and updated.signing_secret is None):
            secret = "hyac_s_" + secrets.token_urlsafe(32)
            updated = replace(updated, signing_secret=self.encrypt(secret))
        await asyncio.to_thread(self.store.put_access, updated)
        await self.reload()
        answer = updated.public()
        if secret is not None:
            answer["signing_secret"] = secret
        return answer

    async def add_key(self, tenant: str, function: str, name: str) -> dict[str, Any]:
        validate_name(function, "function")
        if len(name) > 128:
            raise InvalidInput("name: at most 128 characters")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = "fk_" + secrets.token_hex(6)
        await asyncio.to_thread(self.store.add_key, key_id, tenant, function, name,
                                hashlib.sha256(key.encode()).hexdigest())
        await self.reload()
        return {"id": key_id, "function": function, "name": name, "key": key}

    async def keys(self, tenant: str, function: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.store.list_keys, tenant,
                                       validate_name(function, "function"))

    async def delete_key(self, tenant: str, function: str, key_id: str) -> None:
        if not await asyncio.to_thread(self.store.delete_key, tenant, function, key_id):
            raise NotFound(f"no key {key_id!r} for function {function!r}")
        await self.reload()

    def settings(self) -> dict[str, Any]:
        values = self._view.snap.settings
        return {"trusted_proxies": values.get("trusted_proxies", []),
                "domain_suffixes": values.get("domain_suffixes", []),
                "domain_verification": values.get("domain_verification", "none"),
                "reserved_hosts": values.get("reserved_hosts", []),
                **{key: values.get(key, default) for key, default in ACME_DEFAULTS.items()}}

    async def set_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        from hyac_agent.edge.hosts import normalise_host

        checked: dict[str, Any] = {}
        if "trusted_proxies" in changes:
            proxies = changes["trusted_proxies"]
            if not isinstance(proxies, list):
                raise InvalidInput("trusted_proxies: a list of networks")
            checked["trusted_proxies"] = [str(parse_network(p)) for p in proxies]
        for key in ("domain_suffixes", "reserved_hosts"):
            if key in changes:
                names = changes[key]
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                    raise InvalidInput(f"{key}: a list of domain names")
                checked[key] = [normalise_host(n.lstrip(".")) for n in names]
        if "domain_verification" in changes:
            if changes["domain_verification"] not in ("none", "http", "dns"):
                raise InvalidInput("domain_verification: none, http or dns")
            checked["domain_verification"] = changes["domain_verification"]
        for key in ACME_DEFAULTS:
            if key in changes:
                checked[key] = settings_value(key, changes[key])
        for key, value in checked.items():
            await asyncio.to_thread(self.store.put_setting, key, value)
        await self.reload()
        return self.settings()


def _level_name(rule: IpRule) -> str:
    return rule.domain or (repr(rule.function) if rule.function else repr(rule.tenant))
