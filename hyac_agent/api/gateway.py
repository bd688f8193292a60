"""The gateway: plain HTTP on ``/{tenant}/{function}[/{path}]`` runs the function."""

from __future__ import annotations

import base64
import json

from fastapi import APIRouter, Depends, Request, Response

from hyac_agent.api.deps import get_agent
from hyac_agent.core import Agent
from hyac_common.names import validate_name
from hyac_common.wire import InvokeRequest

router = APIRouter(tags=["gateway"])
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# Hop-by-hop and framing headers are the server's business, not the function's.
_DROP = {"content-length", "transfer-encoding", "connection", "keep-alive", "server", "date"}


async def _run(request: Request, tenant: str, function: str, path: str, agent: Agent) -> Response:
    validate_name(tenant, "tenant")
    body = await request.body()
    invoke = InvokeRequest(
        method=request.method,
        path="/" + path,
        query=dict(request.query_params),
        headers=dict(request.headers),
        body_b64=base64.b64encode(body).decode(),
    )
    client = request.client.host if request.client else ""
    version = await agent.functions.active_version(tenant, function)
    if version.config.background:
        from hyac_agent.api.routes_tasks import submitted

        return submitted(await agent.tasks.submit(tenant, function, invoke, client_ip=client))
    result = await agent.invoker.invoke(tenant, function, invoke, client_ip=client)
    if not result.ok:
        assert result.error is not None
        return Response(
            json.dumps({"error": {
                "code": "function_error",
                "type": result.error.type,
                "message": result.error.message,
                "request_id": result.request_id,
            }}),
            status_code=500,
            media_type="application/json",
            headers={"X-Hyac-Request-Id": result.request_id},
        )
    headers = {k: v for k, v in result.headers.items() if k.lower() not in _DROP}
    headers["X-Hyac-Request-Id"] = result.request_id
    content = base64.b64decode(result.body_b64) if result.body_b64 else b""
    return Response(content, status_code=result.status, headers=headers)


@router.api_route("/{tenant}/{function}", methods=METHODS)
async def gateway_root(
    request: Request, tenant: str, function: str, agent: Agent = Depends(get_agent)
) -> Response:
    return await _run(request, tenant, function, "", agent)


@router.api_route("/{tenant}/{function}/{path:path}", methods=METHODS)
async def gateway_path(
    request: Request, tenant: str, function: str, path: str, agent: Agent = Depends(get_agent)
) -> Response:
    return await _run(request, tenant, function, path, agent)
