"""/v1/runtimes: list, add and remove runtimes, and the agent's default runtime."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request

from hyac_agent.api.deps import get_agent, get_principal
from hyac_agent.core import Agent
from hyac_common.errors import Forbidden
from hyac_common.wire import RuntimeAdd, RuntimeDefault, RuntimeInfo


async def require_runtime_admin(request: Request) -> None:
    """Managing runtimes changes what every tenant runs: platform owners only (the
    agent's own token, or an owner's API token). The one place to tighten this."""
    principal = await get_principal(request)
    if not getattr(principal, "owner", False):
        raise Forbidden("managing runtimes needs a platform owner (the agent token)")


router = APIRouter(
    prefix="/v1/runtimes", dependencies=[Depends(require_runtime_admin)], tags=["runtimes"]
)


@router.get("", response_model=list[RuntimeInfo])
async def list_runtimes(agent: Agent = Depends(get_agent)) -> list[RuntimeInfo]:
    return await asyncio.to_thread(agent.runtimes.list_runtimes)


@router.post("", response_model=list[RuntimeInfo], status_code=201)
async def add_runtime(body: RuntimeAdd, agent: Agent = Depends(get_agent)) -> list[RuntimeInfo]:
    names = await asyncio.to_thread(agent.runtimes.add, body.name, body.files_b64)
    infos = await asyncio.to_thread(agent.runtimes.list_runtimes)
    return [info for info in infos if info.name in names]


@router.get("/default", response_model=RuntimeDefault)
async def get_default(agent: Agent = Depends(get_agent)) -> RuntimeDefault:
    return RuntimeDefault(name=agent.runtimes.default())


@router.put("/default", response_model=RuntimeDefault)
async def set_default(body: RuntimeDefault, agent: Agent = Depends(get_agent)) -> RuntimeDefault:
    return RuntimeDefault(name=await asyncio.to_thread(agent.runtimes.set_default, body.name))


@router.delete("/{name}")
async def remove_runtime(name: str, agent: Agent = Depends(get_agent)) -> dict[str, str]:
    await asyncio.to_thread(agent.runtimes.remove, name)
    return {"deleted": name}
