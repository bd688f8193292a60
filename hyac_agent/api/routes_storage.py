"""/v1/storage: a tenant's objects (``context.storage``). Viewers list and read them;
developers write and delete them. Bodies are the objects' raw bytes."""

from __future__ import annotations

import asyncio
from email.utils import formatdate

from fastapi import APIRouter, Depends, Query, Request, Response

from hyac_agent.api.deps import get_agent, require_token, tenant_role
from hyac_agent.api.errors import ErrorBody
from hyac_agent.core import Agent
from hyac_agent.tenancy.objects import MAX_LIST
from hyac_common.errors import NotFound
from hyac_common.wire import ObjectInfo

# With the bytes in S3 (the storage integration), the service may be unreachable.
router = APIRouter(prefix="/v1/storage", dependencies=[Depends(require_token)], tags=["storage"],
                   responses={503: {"model": ErrorBody, "description": "the S3-compatible "
                                    "object storage cannot be reached (storage_unavailable)"}})
viewer = tenant_role("viewer")
developer = tenant_role("developer")


@router.get("")
async def list_objects(
    prefix: str = "", limit: int = Query(MAX_LIST, ge=1, le=MAX_LIST),
    start_after: str = Query("", description="the last key of the previous page"),
    tenant: str = Depends(viewer), agent: Agent = Depends(get_agent),
) -> list[ObjectInfo]:
    return await asyncio.to_thread(agent.tenancy.objects.list, tenant, prefix, limit, start_after)


@router.head("/{key:path}")
async def head_object(key: str, tenant: str = Depends(viewer), agent: Agent = Depends(get_agent)) -> Response:
    info = await asyncio.to_thread(agent.tenancy.objects.stat, tenant, key)
    if info is None:
        raise NotFound(f"no object {key!r} in tenant {tenant!r}")
    return Response(headers={**_headers(info), "content-length": str(info.size)})


@router.get("/{key:path}")
async def get_object(key: str, tenant: str = Depends(viewer), agent: Agent = Depends(get_agent)) -> Response:
    found = await asyncio.to_thread(agent.tenancy.objects.read, tenant, key)
    if found is None:
        raise NotFound(f"no object {key!r} in tenant {tenant!r}")
    info, data = found
    return Response(data, headers=_headers(info))


def _headers(info: ObjectInfo) -> dict[str, str]:
    return {
        "content-type": info.content_type,
        "etag": f'"{info.sha256}"',
        "last-modified": formatdate(info.updated_at, usegmt=True),
        # A stored text/html must never render as a page of the agent's own origin.
        "content-disposition": "attachment",
        "x-content-type-options": "nosniff",
    }


_RAW_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.put("/{key:path}", openapi_extra=_RAW_BODY)
async def put_object(
    key: str, request: Request, tenant: str = Depends(developer), agent: Agent = Depends(get_agent)
) -> ObjectInfo:
    data = await request.body()
    content_type = request.headers.get("content-type")
    return await asyncio.to_thread(agent.tenancy.objects.put, tenant, key, data, content_type)


@router.delete("/{key:path}", status_code=204)
async def delete_object(
    key: str, tenant: str = Depends(developer), agent: Agent = Depends(get_agent)
) -> Response:
    if not await asyncio.to_thread(agent.tenancy.objects.delete, tenant, key):
        raise NotFound(f"no object {key!r} in tenant {tenant!r}")
    return Response(status_code=204)
