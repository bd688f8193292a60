"""/v1/templates: the template registry (publish, review, browse, install, rate) and
its remote sources. ``/v1/templates/public`` is the read-only face other agents read."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from typing import Any, Optional

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from hyac_agent.api.deps import get_agent, get_principal
from hyac_agent.core import Agent
from hyac_agent.templates import registry_of, remote
from hyac_agent.templates.builtin import seed
from hyac_agent.templates.service import (
    APPROVED,
    REJECTED,
    TemplateRegistry,
    Viewer,
    viewer_id,
)
from hyac_agent.tenancy import Principal
from hyac_common.errors import HyacError, NotFound

router = APIRouter(prefix="/v1/templates", tags=["templates"])
_opening = threading.Lock()


class TemplatePublish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files_b64: dict[str, str] = Field(description="the template: relative path -> base64 content")


class TemplateInstall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Optional[str] = Field(None, max_length=64, description="default: the newest")


class TemplateRating(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stars: int = Field(ge=1, le=5)


class TemplateSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=512)


def _open(request: Request, agent: Agent) -> TemplateRegistry:
    """The registry, made (and the built-in templates published) on first use."""
    with _opening:
        registry = getattr(request.app.state, "templates", None)
        if registry is None:
            registry = registry_of(agent.store, agent.config.data_dir)
            seed(registry)
            request.app.state.templates = registry
    return registry  # type: ignore[no-any-return]


async def get_registry(request: Request, agent: Agent = Depends(get_agent)) -> TemplateRegistry:
    registry: TemplateRegistry | None = getattr(request.app.state, "templates", None)
    if registry is None:
        registry = await asyncio.to_thread(_open, request, agent)
    return registry


async def get_viewer(principal: Principal = Depends(get_principal)) -> Viewer:
    owner = principal.owner and principal.scope is None
    moderator = owner or (principal.kind == "user" and principal.name in moderators())
    return Viewer(id=viewer_id(principal.id, principal.name), name=principal.name, owner=owner,
                  moderator=moderator)


def moderators() -> set[str]:
    """HYAC_TEMPLATE_MODERATORS: user names (comma-separated) who review templates."""
    return {name.strip() for name in os.environ.get("HYAC_TEMPLATE_MODERATORS", "").split(",")
            if name.strip()}


@router.get("")
async def list_templates(
    q: str = Query("", max_length=200, description="words every result contains"),
    viewer: Viewer = Depends(get_viewer), registry: TemplateRegistry = Depends(get_registry),
) -> dict[str, Any]:
    """The newest visible version of each template, then those of the remote sources."""
    found = await asyncio.to_thread(registry.listing, viewer, q)
    names = {item["name"] for item in found}
    unreachable: list[dict[str, str]] = []
    words = q.lower().split()
    for source in await asyncio.to_thread(registry.sources):
        try:
            listed = await remote.listing(source)
        except (HyacError, OSError, ValueError) as exc:
            unreachable.append({"source": source, "reason": str(exc)[:300]})
            continue
        for item in listed:
            text = " ".join(str(item.get(key) or "") for key in ("name", "title", "description"))
            text += " " + " ".join(str(tag) for tag in item.get("tags") or [])
            if item["name"] not in names and all(word in text.lower() for word in words):
                names.add(item["name"])
                found.append(item)
    return {"templates": found, "unreachable": unreachable}


@router.post("", status_code=201)
async def publish_template(
    body: TemplatePublish, viewer: Viewer = Depends(get_viewer),
    registry: TemplateRegistry = Depends(get_registry),
) -> dict[str, Any]:
    return await asyncio.to_thread(registry.publish, body.files_b64, viewer)


@router.get("/sources")
async def list_sources(_viewer: Viewer = Depends(get_viewer),
                       registry: TemplateRegistry = Depends(get_registry)) -> list[str]:
    return await asyncio.to_thread(registry.sources)


@router.post("/sources", status_code=201)
async def add_source(body: TemplateSource, viewer: Viewer = Depends(get_viewer),
                     registry: TemplateRegistry = Depends(get_registry)) -> list[str]:
    url = remote.check_source_url(body.url)
    return await asyncio.to_thread(registry.add_source, url, viewer)


@router.delete("/sources", status_code=204)
async def remove_source(url: str = Query(max_length=512), viewer: Viewer = Depends(get_viewer),
                        registry: TemplateRegistry = Depends(get_registry)) -> Response:
    if not await asyncio.to_thread(registry.remove_source, url.rstrip("/"), viewer):
        raise NotFound(f"no template source {url[:200]!r}")
    return Response(status_code=204)


_PUBLIC_VIEWER = Viewer(id="public", name="public")


def _require_public() -> None:
    if not remote.public_enabled():
        raise NotFound("this agent does not share its templates (HYAC_TEMPLATES_PUBLIC is not set)")


@router.get("/public")
async def public_listing(registry: TemplateRegistry = Depends(get_registry)) -> list[dict[str, Any]]:
    """Approved templates, without a token, when the owner shares them."""
    _require_public()
    found = await asyncio.to_thread(registry.listing, _PUBLIC_VIEWER, "")
    return [item for item in found if item["status"] == APPROVED]


@router.get("/public/{name}")
async def public_files(name: str, version: Optional[str] = Query(None, max_length=64),
                       registry: TemplateRegistry = Depends(get_registry)) -> dict[str, Any]:
    _require_public()
    # Not counted as an install here: the agent that installs it counts its own.
    shown = await asyncio.to_thread(registry.show, name, _PUBLIC_VIEWER, version, readme=False)
    if shown["status"] != APPROVED:
        raise NotFound(f"no template {name!r}")
    return await asyncio.to_thread(registry.files_of, shown)


@router.get("/{name}")
async def show_template(name: str, version: Optional[str] = Query(None, max_length=64),
                        fresh: bool = Query(False, description="scan it again now (and store it)"),
                        viewer: Viewer = Depends(get_viewer),
                        registry: TemplateRegistry = Depends(get_registry)) -> dict[str, Any]:
    """A template's details and README; one this registry does not hold is looked up in
    the remote sources (no scan of this agent's: the source's files, checked)."""
    try:
        if fresh:
            return await asyncio.to_thread(registry.rescan, name, version, viewer)
        return await asyncio.to_thread(registry.show, name, viewer, version)
    except NotFound:
        found = await _from_sources(registry, name, version)
        found["readme"] = base64.b64decode(found.pop("files_b64").get("README.md", "")).decode(
            "utf-8", "replace")
        return found


@router.post("/{name}/install")
async def install_template(name: str, body: TemplateInstall, viewer: Viewer = Depends(get_viewer),
                           registry: TemplateRegistry = Depends(get_registry)) -> dict[str, Any]:
    """The template's files (for ``hyac init --template``); counts one install. A name this
    registry does not hold is looked up in the remote sources, in the order they were added."""
    try:
        return await asyncio.to_thread(registry.install, name, body.version, viewer)
    except NotFound:
        return await _from_sources(registry, name, body.version)


async def _from_sources(registry: TemplateRegistry, name: str, version: str | None) -> dict[str, Any]:
    """The first remote source's copy of ``name``; NotFound if none has it."""
    for source in await asyncio.to_thread(registry.sources):
        try:
            found = await remote.install(source, name, version)
        except (NotFound, remote.SourceUnreachable):
            continue  # the next source may have it
        files = {path: base64.b64decode(data) for path, data in found["files_b64"].items()}
        # scanned here, by this agent's scanner: a source's word about its scan is not taken
        found["scan"] = await asyncio.to_thread(registry.scan, files, found["runtime"])
        return {**found, "status": "approved", "publisher": source, "builtin": False,
                "installs": None, "rating": {"average": None, "count": 0},
                "versions": [found["version"]]}
    raise NotFound(f"no template {name!r}: `hyac template ls` lists them")


@router.post("/{name}/versions/{version}/approve")
async def approve_template(name: str, version: str, viewer: Viewer = Depends(get_viewer),
                           registry: TemplateRegistry = Depends(get_registry)) -> dict[str, Any]:
    return await asyncio.to_thread(registry.review, name, version, APPROVED, viewer)


@router.post("/{name}/versions/{version}/reject")
async def reject_template(name: str, version: str, viewer: Viewer = Depends(get_viewer),
                          registry: TemplateRegistry = Depends(get_registry)) -> dict[str, Any]:
    return await asyncio.to_thread(registry.review, name, version, REJECTED, viewer)


@router.put("/{name}/rating")
async def rate_template(name: str, body: TemplateRating, viewer: Viewer = Depends(get_viewer),
                        registry: TemplateRegistry = Depends(get_registry)) -> dict[str, Any]:
    return await asyncio.to_thread(registry.rate, name, body.stars, viewer)
