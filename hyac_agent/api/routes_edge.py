"""/v1/edge: who may call a tenant's functions through the gateway (IP rules, access
modes, function keys, rate limits, CORS), and the platform owner's edge settings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from hyac_agent.api.deps import get_principal, require_token, tenant_role
from hyac_agent.edge.service import EdgeService
from hyac_agent.tenancy import Principal

router = APIRouter(prefix="/v1/edge", dependencies=[Depends(require_token)], tags=["edge"])
viewer = tenant_role("viewer")
developer = tenant_role("developer")


async def get_edge(request: Request) -> EdgeService:
    return request.app.state.edge  # type: ignore[no-any-return]


class IpRuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str = Field(description="allow or deny")
    cidr: str = Field(description="an IPv4 or IPv6 network or address")
    function: str | None = Field(None, description="the rule is this function's (default: the tenant's)")
    domain: str | None = Field(None, description="the rule is this domain's")
    note: str = ""


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: int
    per_seconds: float = 60


class AccessUpdate(BaseModel):
    """Only the fields given change; null removes a rate limit or CORS."""

    model_config = ConfigDict(extra="forbid")

    mode: str | None = Field(None, description="public, token or signed")
    rate_limit: RateLimit | None = None
    cors: dict[str, Any] | None = None
    replay_window: float | None = None
    rotate_signing_secret: bool = False


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""


class EdgeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trusted_proxies: list[str] | None = None
    domain_suffixes: list[str] | None = None
    domain_verification: str | None = None
    reserved_hosts: list[str] | None = None
    acme_directory: str | None = None
    acme_email: str | None = None
    acme_ca_bundle: str | None = None
    acme_renew_before_days: float | None = None


@router.get("/ip-rules")
async def list_ip_rules(tenant: str = Depends(viewer),
                        edge: EdgeService = Depends(get_edge)) -> list[dict[str, Any]]:
    return [rule.public() for rule in await edge.rules(tenant)]


@router.post("/ip-rules", status_code=201)
async def add_ip_rule(body: IpRuleCreate, request: Request, tenant: str = Depends(developer),
                      edge: EdgeService = Depends(get_edge)) -> dict[str, Any]:
    rule = await edge.add_rule(tenant, body.action, body.cidr, body.function, body.domain, body.note)
    request.state.audit_target = f"{rule.id} ({rule.action} {rule.cidr})"
    return rule.public()


@router.delete("/ip-rules/{rule_id}", status_code=204)
async def delete_ip_rule(rule_id: str, tenant: str = Depends(developer),
                         edge: EdgeService = Depends(get_edge)) -> Response:
    await edge.delete_rule(tenant, rule_id)
    return Response(status_code=204)


@router.get("/access/{function}")
async def get_access(function: str, tenant: str = Depends(viewer),
                     edge: EdgeService = Depends(get_edge)) -> dict[str, Any]:
    return (await edge.access(tenant, function)).public()


@router.patch("/access/{function}")
async def set_access(function: str, body: AccessUpdate, tenant: str = Depends(developer),
                     edge: EdgeService = Depends(get_edge)) -> dict[str, Any]:
    changes = body.model_dump(include=body.model_fields_set)
    if body.rate_limit is not None:
        changes["rate_limit"] = body.rate_limit.model_dump()
    return await edge.set_access(tenant, function, changes)


@router.get("/access/{function}/keys")
async def list_keys(function: str, tenant: str = Depends(viewer),
                    edge: EdgeService = Depends(get_edge)) -> list[dict[str, Any]]:
    return await edge.keys(tenant, function)


@router.post("/access/{function}/keys", status_code=201)
async def add_key(function: str, body: KeyCreate, tenant: str = Depends(developer),
                  edge: EdgeService = Depends(get_edge)) -> dict[str, Any]:
    return await edge.add_key(tenant, function, body.name)


@router.delete("/access/{function}/keys/{key_id}", status_code=204)
async def delete_key(function: str, key_id: str, tenant: str = Depends(developer),
                     edge: EdgeService = Depends(get_edge)) -> Response:
    await edge.delete_key(tenant, function, key_id)
    return Response(status_code=204)


@router.get("/settings")
async def get_settings(principal: Principal = Depends(get_principal),
                       edge: EdgeService = Depends(get_edge)) -> dict[str, Any]:
    principal.require_owner()
    return edge.settings()


@router.patch("/settings")
async def set_settings(body: EdgeSettings, principal: Principal = Depends(get_principal),
                       edge: EdgeService = Depends(get_edge)) -> dict[str, Any]:
    principal.require_owner()
    return await edge.set_settings(body.model_dump(include=body.model_fields_set))


domains_router = APIRouter(prefix="/v1/domains", dependencies=[Depends(require_token)],
                           tags=["domains"])
admin = tenant_role("admin")


class DomainCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(description="the domain name, e.g. api.example.com")
    function: str | None = Field(None, description="the function it runs (omit with tenant_root)")
    tenant_root: bool = Field(False, description="every function of the tenant, as /{function}/...")
    path_prefix: str = Field("/", description="the function answers under this path only")
    acme: bool = Field(False, description="its certificate comes from the platform's ACME server")


@domains_router.get("")
async def list_domains(tenant: str = Depends(viewer),
                       edge: EdgeService = Depends(get_edge)) -> list[dict[str, Any]]:
    from hyac_agent.edge.domains import public

    return [public(domain, edge) for domain in await edge.domains.list(tenant)]


@domains_router.post("", status_code=201)
async def add_domain(body: DomainCreate, request: Request, tenant: str = Depends(admin),
                     edge: EdgeService = Depends(get_edge)) -> dict[str, Any]:
    from hyac_agent.edge.domains import public
    from hyac_agent.edge.hosts import request_host
    from hyac_common.errors import InvalidInput

    if body.tenant_root == (body.function is not None):
        raise InvalidInput("give either function or tenant_root")
    domain = await edge.domains.add(tenant, body.host, body.function, body.path_prefix,
                                    reserved=request_host(request.headers.get("host")),
                                    acme=body.acme)
    request.state.audit_target = domain.host
    return public(domain)


@domains_router.post("/{host}/verify")
async def verify_domain(host: str, tenant: str = Depends(admin),
                        edge: EdgeService = Depends(get_edge)) -> dict[str, Any]:
    from hyac_agent.edge.domains import public

    return public(await edge.domains.verify(tenant, host))


@domains_router.delete("/{host}", status_code=204)
async def remove_domain(host: str, tenant: str = Depends(admin),
                        edge: EdgeService = Depends(get_edge)) -> Response:
    await edge.domains.remove(tenant, host)
    return Response(status_code=204)


class CertificateUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cert_pem: str = Field(description="the certificate, then its chain, as PEM")
    key_pem: str = Field(description="the private key, unencrypted PEM")


@domains_router.put("/{host}/certificate")
async def put_certificate(host: str, body: CertificateUpload, tenant: str = Depends(admin),
                          edge: EdgeService = Depends(get_edge)) -> dict[str, Any]:
    return (await edge.certificates.put(tenant, host, body.cert_pem, body.key_pem)).public()


@domains_router.get("/{host}/certificate")
async def get_certificate(host: str, tenant: str = Depends(viewer),
                          edge: EdgeService = Depends(get_edge)) -> dict[str, Any]:
    return (await edge.certificates.get(tenant, host)).public()


@domains_router.delete("/{host}/certificate", status_code=204)
async def remove_certificate(host: str, tenant: str = Depends(admin),
                             edge: EdgeService = Depends(get_edge)) -> Response:
    await edge.certificates.remove(tenant, host)
    return Response(status_code=204)


@domains_router.post("/{host}/acme")
async def enable_acme(host: str, tenant: str = Depends(admin),
                      edge: EdgeService = Depends(get_edge)) -> dict[str, Any]:
    from hyac_agent.edge.domains import public

    return public(await edge.domains.set_acme(tenant, host, True), edge)


@domains_router.delete("/{host}/acme")
async def disable_acme(host: str, tenant: str = Depends(admin),
                       edge: EdgeService = Depends(get_edge)) -> dict[str, Any]:
    from hyac_agent.edge.domains import public

    return public(await edge.domains.set_acme(tenant, host, False), edge)
