"""/v1/editor: the console editor's API, usable by any editor.

``complete``, ``hover`` and ``diagnostics`` analyse a source of one of the tenant's
functions with the shim of ``hyac stubs`` prepended in memory (``hyac_agent.editor``);
a viewer may use them. ``files`` reads the active version's files; ``save`` deploys the
edited files through the ordinary deploy path, refused (409) when the active version moved
since the editor opened it.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from hyac_agent.api.deps import get_agent, get_principal, require_token, tenant_role
from hyac_agent.api.routes_functions import deploy_checked
from hyac_agent.core import Agent
from hyac_agent.editor import MAX_SOURCE_BYTES, Query, check_query
from hyac_agent.store.base import VersionRecord
from hyac_agent.tenancy import Principal
from hyac_agent.tenancy.auth import RANK
from hyac_common.errors import Conflict, InvalidInput, NotFound
from hyac_common.names import validate_name
from hyac_common.stubs import ProjectFacts
from hyac_common.wire import DeployRequest, DeployResult

router = APIRouter(prefix="/v1/editor", dependencies=[Depends(require_token)], tags=["editor"])
viewer = tenant_role("viewer")
developer = tenant_role("developer")
MAX_FILES_SHOWN = 200
_saving: dict[tuple[str, str], asyncio.Lock] = {}


class EditorQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    function: str = Field(max_length=128, description="a function of the tenant")
    file: str = Field("main.py", max_length=512, description="the file's path in the bundle")
    source: str = Field(max_length=MAX_SOURCE_BYTES, description="the file's current text")
    line: int = Field(1, ge=1, le=1_000_000, description="1-based")
    column: int = Field(0, ge=0, le=1_000_000, description="0-based")


class SaveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    function: str = Field(max_length=128)
    files: dict[str, str] = Field(description="edited files: path -> text; the others are "
                                  "kept from the active version", max_length=500)
    expected_active_version: int = Field(ge=1, description="the active version the editor "
                                         "opened: a save is refused (409) if it moved")


async def _active(agent: Agent, tenant: str, name: str) -> VersionRecord:
    validate_name(name)
    version = await asyncio.to_thread(agent.store.get_version, tenant, name)
    if version is None:
        raise NotFound(f"function {name!r} not found in tenant {tenant!r}")
    return version


async def _facts(agent: Agent, tenant: str, principal: Principal, version: VersionRecord
                 ) -> ProjectFacts:
    """The tenant-aware names of ``hyac stubs``: env and secret names only for those who
    may list them (developers), as the API answers."""
    functions = await asyncio.to_thread(agent.functions.list_functions, tenant)
    env: set[str] = set()
    secrets: list[str] = []
    role = principal.role_in(tenant)
    if role == "owner" or (role is not None and RANK[role] >= RANK["developer"]):
        env = set(await asyncio.to_thread(agent.tenancy.env, tenant))
        env.update((version.config.env or {}).keys())
        secrets = await asyncio.to_thread(agent.tenancy.secrets.names, tenant)
    return ProjectFacts(tenant, tuple(sorted(f.name for f in functions)), tuple(sorted(env)),
                        tuple(sorted(secrets)))


async def _prepare(body: EditorQuery, request: Request, tenant: str, agent: Agent
                   ) -> tuple[Query, ProjectFacts]:
    check_query(body.source, body.line, body.column)
    version = await _active(agent, tenant, body.function)
    facts = await _facts(agent, tenant, await get_principal(request), version)
    entry = body.file == version.entry
    return Query(body.source, body.line, body.column, body.file, entry), facts


@router.post("/complete")
async def complete(body: EditorQuery, request: Request, tenant: str = Depends(viewer),
                   agent: Agent = Depends(get_agent)) -> dict[str, Any]:
    """Completion items at ``line``/``column``: label, kind, detail, documentation,
    insert_text, and ``replace`` (characters before the cursor the item replaces)."""
    query, facts = await _prepare(body, request, tenant, agent)
    items = await agent.editor.run(lambda: agent.editor.complete(query, facts))
    return {"items": items}


@router.post("/hover")
async def hover(body: EditorQuery, request: Request, tenant: str = Depends(viewer),
                agent: Agent = Depends(get_agent)) -> dict[str, Any]:
    """The signature (or type) and docs of the name at ``line``/``column``; null: none."""
    query, facts = await _prepare(body, request, tenant, agent)
    return {"hover": await agent.editor.run(lambda: agent.editor.hover(query, facts))}


@router.post("/diagnostics")
async def diagnostics(body: EditorQuery, request: Request, tenant: str = Depends(viewer),
                      agent: Agent = Depends(get_agent)) -> dict[str, Any]:
    """Syntax errors, undefined names, unknown members of ``context``, a handler the
    platform cannot call; each with 1-based lines and 0-based columns."""
    query, facts = await _prepare(body, request, tenant, agent)
    found = await agent.editor.run(lambda: agent.editor.diagnostics(query, facts))
    return {"diagnostics": found}


@router.get("/files/{name}")
async def files(name: str, tenant: str = Depends(viewer), agent: Agent = Depends(get_agent)
                ) -> dict[str, Any]:
    """The active version's text files, for the editor to open."""
    version = await _active(agent, tenant, name)
    raw = await asyncio.to_thread(_bundle_files, agent, version)
    texts = {}
    for path, content in sorted(raw.items())[:MAX_FILES_SHOWN]:
        try:
            texts[path] = content.decode("utf-8")
        except UnicodeDecodeError:
            continue  # binary files are kept as they are on save
    return {"function": name, "version": version.number, "entry": version.entry,
            "runtime": version.runtime, "files": texts,
            "sample": version.sample.model_dump(mode="json") if version.sample else None}


@router.post("/save", response_model=DeployResult)
async def save(body: SaveRequest, tenant: str = Depends(developer),
               agent: Agent = Depends(get_agent)) -> DeployResult:
    """Deploy the edited files as the function's next version (the active version's entry,
    config and sample; unchanged content makes no version)."""
    key = (tenant, body.function)
    lock = _saving.setdefault(key, asyncio.Lock())
    async with lock:
        version = await _active(agent, tenant, body.function)
        if version.number != body.expected_active_version:
            raise Conflict(
                f"function {body.function!r} is at version {version.number} now, not "
                f"{body.expected_active_version} as when the editor opened it: reload to "
                "see the changes", active_version=version.number,
            )
        merged = dict(await asyncio.to_thread(_bundle_files, agent, version))
        for path, text in body.files.items():
            if path not in merged and not path.endswith((".py", ".js", ".ts", ".mjs", ".json",
                                                         ".txt", ".toml", ".md")):
                raise InvalidInput(f"{path!r}: the editor saves the function's text files only")
            merged[path] = text.encode("utf-8")
        record = await asyncio.to_thread(agent.store.get_function, tenant, body.function)
        request = DeployRequest(
            entry=version.entry,
            files_b64={p: base64.b64encode(c).decode() for p, c in merged.items()},
            config=version.config.model_copy(update={"runtime": version.runtime}),
            project=record.project if record is not None else None,
            sample=version.sample,
        )
        return await deploy_checked(agent, tenant, body.function, request)


def _bundle_files(agent: Agent, version: VersionRecord) -> dict[str, bytes]:
    agent.bundles.fetch(version.sha256)
    return agent.bundles.files_of(version.sha256)
