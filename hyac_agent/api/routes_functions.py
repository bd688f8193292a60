"""/v1/functions: deploy, list, versions, rollback, remove, invoke."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from hyac_agent.api.checks import sane_numbers, valid_base64
from hyac_agent.api.deps import get_agent, get_principal, get_tenant, require_token
from hyac_agent.api.errors import INVOKE_ERRORS
from hyac_agent.api.limits import body_too_large
from hyac_agent.bundles import check_unique_keys
from hyac_agent.core import Agent
from hyac_agent.edge.install import forget_edge
from hyac_common.errors import PayloadTooLarge
from hyac_common.wire import (
    DeployRequest,
    DeployResult,
    FunctionSummary,
    InvokeRequest,
    InvokeResult,
    RollbackRequest,
    TaskSubmitted,
    VersionInfo,
)

router = APIRouter(prefix="/v1/functions", dependencies=[Depends(require_token)], tags=["functions"])


@router.get("", response_model=list[FunctionSummary])
def list_functions(
    tenant: str = Depends(get_tenant), agent: Agent = Depends(get_agent)
) -> list[FunctionSummary]:
    return agent.functions.list_functions(tenant)


@router.get("/{name}", response_model=FunctionSummary)
def get_function(
    name: str, tenant: str = Depends(get_tenant), agent: Agent = Depends(get_agent)
) -> FunctionSummary:
    return agent.functions.get(tenant, name)


@router.put("/{name}", response_model=DeployResult)
async def deploy(
    name: str,
    body: DeployRequest,
    request: Request,
    response: Response,
    tenant: str = Depends(get_tenant),
    agent: Agent = Depends(get_agent),
) -> DeployResult:
    await asyncio.to_thread(check_unique_keys, await request.body())
    result = await deploy_checked(agent, tenant, name, body)
    response.status_code = 201 if result.created else 200
    return result


async def deploy_checked(agent: Agent, tenant: str, name: str, body: DeployRequest) -> DeployResult:
    """A deploy with the tenant's checks, then triggers and warm workers follow it (the
    API's deploy and the console editor's save)."""
    sane_numbers(body.config, "config")
    agent.tasks.check_callback_url(body.config.callback_url)
    await asyncio.to_thread(agent.tenancy.check_deploy, tenant, name, body.config)
    result = await agent.functions.deploy(tenant, name, body)
    await agent.triggers.service.follow_version(tenant, name, body.config)
    await agent.pool.retire(tenant, name, keep_sha=result.sha256)
    return result


@router.delete("/{name}")
async def remove(
    name: str, request: Request, tenant: str = Depends(get_tenant),
    agent: Agent = Depends(get_agent),
) -> dict[str, str | list[str]]:
    """Remove the function, its versions and its edge settings; ``domains_removed``: the
    custom domains that were bound to it, removed with it."""
    domains = await asyncio.to_thread(agent.functions.remove, tenant, name)
    await forget_edge(request, tenant, name)
    await agent.triggers.service.follow_version(tenant, name, None)
    await agent.pool.retire(tenant, name)
    return {"deleted": name, "domains_removed": domains}


@router.get("/{name}/versions", response_model=list[VersionInfo])
def versions(
    name: str, tenant: str = Depends(get_tenant), agent: Agent = Depends(get_agent)
) -> list[VersionInfo]:
    return agent.functions.versions(tenant, name)


@router.post("/{name}/rollback", response_model=DeployResult)
async def rollback(
    name: str,
    body: RollbackRequest,
    tenant: str = Depends(get_tenant),
    agent: Agent = Depends(get_agent),
) -> DeployResult:
    sane_numbers(body)
    version = agent.functions.rollback(tenant, name, body.version)
    await agent.triggers.service.follow_version(tenant, name, version.config)
    await agent.pool.retire(tenant, name, keep_sha=version.sha256)
    return DeployResult(
        name=name, version=version.number, sha256=version.sha256, created=False,
        active_version=version.number,
    )


@router.post(
    "/{name}/invoke", response_model=InvokeResult,
    responses={202: {"model": TaskSubmitted, "description": "queued as a background task"},
               **INVOKE_ERRORS},
)
async def invoke(
    name: str,
    body: InvokeRequest,
    request: Request,
    mode: Literal["auto", "sync", "async"] = Query(
        "auto", description="async: queue as a task; auto: queue if the function is background"
    ),
    callback_url: str | None = Query(None, description="tasks only: signed POST when it ends"),
    delay: float = Query(0.0, ge=0, description="tasks only: seconds before it may start"),
    tenant: str = Depends(get_tenant),
    agent: Agent = Depends(get_agent),
) -> InvokeResult | JSONResponse:
    from hyac_agent.api.routes_tasks import submitted

    # The API's JSON carries the body in base64, so only the decoded size tells.
    if valid_base64(body.body_b64, "body_b64") > agent.config.max_body_bytes:
        raise PayloadTooLarge(body_too_large(agent.config.max_body_bytes))
    sane_numbers(delay, "delay")
    client = request.client.host if request.client else ""
    if mode == "auto":
        version = await agent.functions.active_version(tenant, name)
        mode = "async" if version.config.background else "sync"
    if callback_url:
        # Invoking is open to viewers; choosing where the agent sends requests is not.
        (await get_principal(request)).require(tenant, "developer")
    if mode == "async":
        record = await agent.tasks.submit(
            tenant, name, body, client_ip=client, delay=delay, callback_url=callback_url
        )
        return submitted(record)
    return await agent.invoker.invoke(tenant, name, body, client_ip=client)
