"""/v1/functions: deploy, list, versions, rollback, remove, invoke."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from hyac_agent.api.deps import get_agent, get_tenant, require_token
from hyac_agent.core import Agent
from hyac_common.wire import (
    DeployRequest,
    DeployResult,
    FunctionSummary,
    InvokeRequest,
    InvokeResult,
    RollbackRequest,
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
    response: Response,
    tenant: str = Depends(get_tenant),
    agent: Agent = Depends(get_agent),
) -> DeployResult:
    result = await agent.functions.deploy(tenant, name, body)
    response.status_code = 201 if result.created else 200
    await agent.pool.retire(tenant, name, keep_sha=result.sha256)
    return result


@router.delete("/{name}")
async def remove(
    name: str, tenant: str = Depends(get_tenant), agent: Agent = Depends(get_agent)
) -> dict[str, str]:
    agent.functions.remove(tenant, name)
    await agent.pool.retire(tenant, name)
    return {"deleted": name}


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
    version = agent.functions.rollback(tenant, name, body.version)
    await agent.pool.retire(tenant, name, keep_sha=version.sha256)
    return DeployResult(
        name=name, version=version.number, sha256=version.sha256, created=False,
        active_version=version.number,
    )


@router.post("/{name}/invoke", response_model=InvokeResult)
async def invoke(
    name: str,
    body: InvokeRequest,
    request: Request,
    tenant: str = Depends(get_tenant),
    agent: Agent = Depends(get_agent),
) -> InvokeResult:
    client = request.client.host if request.client else ""
    return await agent.invoker.invoke(tenant, name, body, client_ip=client)
