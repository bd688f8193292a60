"""Custom domains: a host name bound to one function (optionally under a path prefix)
or to a whole tenant (``/{function}/...``), and the ownership check.

A domain belongs to one tenant: claiming a host another tenant holds is refused (409,
without naming the holder). The platform owner can restrict the suffixes tenants may
claim (``domain_suffixes``) and require a check (``domain_verification``):

- ``http``: the domain is pending until ``http://HOST/.well-known/hyac-challenge/TOKEN``
  answers TOKEN. The agent answers that itself for a pending domain, so pointing the
  name at the agent (or at a proxy in front of it) is the proof. The agent fetches it
  from port ``HYAC_DOMAIN_CHECK_PORT`` (80), without following redirects.
- ``dns``: pending until a TXT record ``_hyac-challenge.HOST`` holds TOKEN
  (``HYAC_DOMAIN_DNS_SERVER``, ``addr[:port]``, names the server to ask; default: the
  system's).

``HYAC_EDGE_RESOLVE`` (``host=address,...``) makes the checks connect to a given
address instead of the one DNS gives, as ``curl --resolve`` does (split-horizon DNS,
tests on loopback).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from hyac_agent.edge.hosts import normalise_host
from hyac_agent.edge.store import Domain
from hyac_agent.tasks.destinations import LOOKUPS
from hyac_common.errors import Conflict, DomainUnverified, Forbidden, InvalidInput, NotFound
from hyac_common.names import validate_name

if TYPE_CHECKING:
    from hyac_agent.edge.service import EdgeService

CHALLENGE_PATH = "/.well-known/hyac-challenge/"
#: seconds an ownership check waits for the name's lookup, and then for its answer
CHECK_TIMEOUT = 10.0
#: addresses of a name an ownership check tries, in the resolver's order
MAX_CHECKED_ADDRESSES = 4


def _resolve_overrides() -> dict[str, str]:
    pairs = (item.split("=", 1) for item in (os.environ.get("HYAC_EDGE_RESOLVE") or "").split(",")
             if "=" in item)
    return {host.strip().lower(): address.strip() for host, address in pairs}


def _path_prefix(text: str) -> str:
    value = "/" + text.strip().strip("/") if text else "/"
    if len(value) > 200 or any(part in (".", "..") for part in value.split("/")) \
            or any(c in value for c in "?#% \t\r\n\\"):
        raise InvalidInput(f"invalid path prefix {text!r} (like / or /api)")
    return value


class Domains:
    def __init__(self, edge: EdgeService) -> None:
        self.edge = edge
        self.check_port = int(os.environ.get("HYAC_DOMAIN_CHECK_PORT") or 80)
        self.dns_server = os.environ.get("HYAC_DOMAIN_DNS_SERVER") or ""
        self.resolve = _resolve_overrides()

    async def add(self, tenant: str, host: str, function: str | None, path_prefix: str,
                  reserved: str = "", acme: bool = False) -> Domain:
        """Bind ``host`` to ``function`` (None: the tenant's root). ``reserved`` is the
        name the agent's API was reached by: never a tenant's."""
        host = normalise_host(host)
        if function is not None:
            validate_name(function, "function")
        prefix = _path_prefix(path_prefix)
        if function is None and prefix != "/":
            raise InvalidInput("a tenant-root domain has no path prefix (its paths are /{function}/...)")
        settings = self.edge.settings()
        if acme and not settings["acme_directory"]:
            raise InvalidInput("this platform has no ACME server (the owner sets acme_directory)")
        for name in [*settings["reserved_hosts"], *([reserved] if reserved else [])]:
            if host == name or host.endswith("." + name):
                raise Forbidden(f"{host} is a name of the platform itself (reserved by the "
                                "platform owner): it cannot be a tenant's domain")
        suffixes = settings["domain_suffixes"]
        if suffixes and not any(host == s or host.endswith("." + s) for s in suffixes):
            raise Forbidden(f"{host} is not under a domain this platform lets tenants claim "
                            f"({', '.join(suffixes)})", allowed_suffixes=suffixes)
        status = "active" if settings["domain_verification"] == "none" else "pending"
        await self.edge.reload()
        snap = self.edge.snapshot()
        if host in snap.domains or any(c.host == host and c.tenant == tenant for c in snap.claims):
            raise Conflict(f"the domain {host} is already bound (remove it first, or ask the "
                           "platform owner if it is not yours)", host=host)
        now = time.time()
        domain = Domain(host, tenant, function, prefix, status, secrets.token_urlsafe(24), now,
                        now if status == "active" else None, acme)
        try:
            await asyncio.to_thread(self.edge.store.add_domain, domain)
        except IntegrityError:
            raise Conflict(f"the domain {host} is already bound (remove it first, or ask the "
                           "platform owner if it is not yours)", host=host) from None
        await self.edge.reload()
        if acme:
            self.edge.acme.wake()
        return domain

    async def list(self, tenant: str) -> list[Domain]:
        await self.edge.reload()
        return [d for d in self.edge.snapshot().claims if d.tenant == tenant]

    async def remove(self, tenant: str, host: str) -> None:
        host = normalise_host(host)
        if not await asyncio.to_thread(self.edge.store.delete_domain, tenant, host):
            raise NotFound(f"no domain {host} in tenant {tenant!r}")
        await self.edge.reload()

    async def set_acme(self, tenant: str, host: str, on: bool) -> Domain:
        """Have the domain's certificate come from ACME (or stop: the last one stays)."""
        host = normalise_host(host)
        await self.edge.reload()
        if on and not self.edge.settings()["acme_directory"]:
            raise InvalidInput("this platform has no ACME server (the owner sets acme_directory)")
        if not await asyncio.to_thread(self.edge.store.set_domain_acme, tenant, host, on):
            raise NotFound(f"no domain {host} in tenant {tenant!r}")
        await self.edge.reload()
        self.edge.acme.wake()
        return next(c for c in self.edge.snapshot().claims if c.host == host and c.tenant == tenant)

    async def verify(self, tenant: str, host: str) -> Domain:
        """Run the ownership check of a pending domain; the domain (active if it passed)."""
        host = normalise_host(host)
        await self.edge.reload()
        domain = next((c for c in self.edge.snapshot().claims
                       if c.host == host and c.tenant == tenant), None)
        if domain is None:
            raise NotFound(f"no domain {host} in tenant {tenant!r}")
        if domain.status == "active":
            return domain
        method = self.edge.settings()["domain_verification"]
        why = await (self._check_dns(domain) if method == "dns" else self._check_http(domain))
        if why:
            raise DomainUnverified(f"{host} is not verified yet: {why}", host=host,
                                   method=method, challenge=domain.challenge)
        try:
            await asyncio.to_thread(self.edge.store.activate_domain, tenant, host)
        except IntegrityError:
            raise Conflict(f"the domain {host} is already bound", host=host) from None
        await self.edge.reload()
        self.edge.acme.wake()
        return self.edge.snapshot().domains[host]

    async def _check_http(self, domain: Domain) -> str:
        failed = (f"http://{domain.host}{CHALLENGE_PATH}{domain.challenge} did not answer the "
                  "token: point the name at this agent")
        override = self.resolve.get(domain.host)
        if override is not None:
            addresses = [override]
        else:
            # Looked up on the lookup threads (the name's servers, the tenant's choice,
            # decide how long that takes); httpx is given each address and looks up nothing.
            try:
                addresses = await LOOKUPS.addresses(domain.host, self.check_port,
                                                    tenant=domain.tenant, timeout=CHECK_TIMEOUT)
            except OSError:
                return failed
        for address in addresses[:MAX_CHECKED_ADDRESSES]:
            if await self._answers_token(domain, address):
                return ""
        return failed

    async def _answers_token(self, domain: Domain, address: str) -> bool:
        import httpx

        shown = f"[{address}]" if ":" in address else address
        url = f"http://{shown}:{self.check_port}{CHALLENGE_PATH}{domain.challenge}"
        # What answered is not said, and at most 1 KiB of it is read: the check must not
        # be a probe of other hosts, nor a way to make the agent read without end.
        try:
            async with httpx.AsyncClient(timeout=CHECK_TIMEOUT, follow_redirects=False,
                                         trust_env=False) as client, \
                    client.stream("GET", url, headers={"Host": domain.host}) as answer:
                body = b""
                async for chunk in answer.aiter_bytes():
                    body += chunk
                    if len(body) > 1024:
                        return False
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and \
            body.decode(errors="replace").strip() == domain.challenge

    async def _check_dns(self, domain: Domain) -> str:
        try:
            import dns.asyncresolver
            import dns.exception
        except ImportError:  # pragma: no cover - a dependency of the project
            return "DNS checks need dnspython"
        resolver = dns.asyncresolver.Resolver(configure=not self.dns_server)
        if self.dns_server:
            server, _, port = self.dns_server.rpartition(":") if self.dns_server.count(":") == 1 \
                else (self.dns_server, "", "")
            resolver.nameservers = [server or self.dns_server]
            resolver.port = int(port or 53)
        name = f"_hyac-challenge.{domain.host}"
        try:
            answer = await resolver.resolve(name, "TXT", lifetime=CHECK_TIMEOUT)
        except dns.exception.DNSException as exc:
            return f"no TXT record {name} ({type(exc).__name__})"
        texts = {b"".join(record.strings).decode(errors="replace") for record in answer}
        if domain.challenge not in texts:
            return f"the TXT record {name} does not hold the token"
        return ""


def challenge_answer(edge: EdgeService, host: str, path: str) -> str | None:
    """The token to answer ``GET http://host/.well-known/hyac-challenge/TOKEN`` with, if
    ``host`` is a pending domain with that token."""
    token = path[len(CHALLENGE_PATH):].encode()
    for claim in edge.snapshot().claims:
        if claim.host == host and claim.status == "pending" and secrets.compare_digest(
                token, claim.challenge.encode()):
            return claim.challenge
    return None


def public(domain: Domain, edge: EdgeService | None = None) -> dict[str, Any]:
    answer = domain.public()
    if edge is not None and domain.host in edge.acme.errors:
        answer["acme_error"] = edge.acme.errors[domain.host]
    if domain.status == "pending":
        answer["challenge"] = domain.challenge
        answer["check"] = {
            "http": f"http://{domain.host}{CHALLENGE_PATH}{domain.challenge} (answered by "
                    "this agent once the name points at it)",
            "dns": f"TXT _hyac-challenge.{domain.host} = {domain.challenge}",
        }
    return answer
