"""/v1/console: sign-in codes and sessions, and the few read-only views the console
needs that the rest of the API does not answer (each checks roles as its API twin)."""

from __future__ import annotations

import asyncio
import difflib
import hmac
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from hyac_agent.api.deps import get_agent, get_principal, get_tenant, require_token
from hyac_agent.console.auth import audit
from hyac_agent.console.sessions import ConsoleSessions, Identity, digest
from hyac_agent.core import Agent
from hyac_agent.tenancy import Principal
from hyac_agent.tenancy.auth import RANK
from hyac_common import __version__
from hyac_common.errors import Forbidden, NotFound
from hyac_common.names import validate_name

router = APIRouter(prefix="/v1/console", dependencies=[Depends(require_token)], tags=["console"])
#: a version's files shown in a diff: larger or binary files are named, not shown
MAX_DIFF_FILE = 256 * 1024
RUNTIMES_TTL = 60.0
MAX_VERSION = 2**31 - 1  # what the store's integer column holds


def sessions_of(request: Request) -> ConsoleSessions:
    return request.app.state.console_sessions  # type: ignore[no-any-return]


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.post("/login-codes", status_code=201)
async def login_code(
    request: Request,
    principal: Principal = Depends(get_principal),
    agent: Agent = Depends(get_agent),
) -> dict[str, Any]:
    """A one-time code (60 s) that signs a browser in as the caller's token."""
    if getattr(request.state, "console_session", None) is not None:
        # A session hands out no codes: a stolen page must not mint sessions elsewhere.
        raise Forbidden("a console sign-in code needs an API token, not a console session")
    token = (request.headers.get("authorization") or "").partition(" ")[2].strip()
    identity = Identity(digest(token), hmac.compare_digest(token, agent.token), principal.name,
                        principal.token_id)
    code = sessions_of(request).issue_code(identity)
    await audit(agent, principal, "console.code", None, 201, client_of(request))
    return {"code": code, "expires_in": 60, "path": f"/console/#code={code}"}


@router.get("/sessions")
async def list_sessions(
    request: Request, principal: Principal = Depends(get_principal)
) -> list[dict[str, object]]:
    """Every session (the owner), or the caller's own."""
    found = sessions_of(request).sessions()
    if not _is_owner(principal):
        found = [s for s in found if _belongs(s.identity, principal)]
    return [s.public() for s in found]


@router.delete("/sessions/{session_id}")
async def revoke_session(
    session_id: str,
    request: Request,
    principal: Principal = Depends(get_principal),
    agent: Agent = Depends(get_agent),
) -> dict[str, object]:
    sessions = sessions_of(request)
    target = next((s for s in sessions.sessions() if s.id == session_id), None)
    if target is None or not (_is_owner(principal) or _belongs(target.identity, principal)):
        raise NotFound(f"no console session {session_id!r}")
    sessions.close(session_id)
    await audit(agent, principal, "console.session.revoke", session_id, 200, client_of(request))
    return {"revoked": session_id}


def _is_owner(principal: Principal) -> bool:
    return principal.owner and principal.scope is None


def _belongs(identity: Identity, principal: Principal) -> bool:
    return identity.name == principal.name and identity.token_id == principal.token_id


@router.get("/overview")
async def overview(
    principal: Principal = Depends(get_principal), agent: Agent = Depends(get_agent)
) -> dict[str, Any]:
    """Health, version, queue depth by status of the caller's tenants; the owner also sees
    the sandbox backend per runtime and the pools."""
    visible = await asyncio.to_thread(agent.tenancy.list_tenants, principal)
    names = {t["name"] for t in visible}
    answer: dict[str, Any] = {"status": "ok", "version": __version__,
                              "tenants": sorted(names), "queue": await _queue(agent, names)}
    if _is_owner(principal):
        answer.update(sandbox=agent.backend.name, pool=agent.pool.stats(),
                      tasks=agent.queue.stats())
    return answer


@router.get("/runtimes")
async def runtimes(
    request: Request, principal: Principal = Depends(get_principal),
    agent: Agent = Depends(get_agent),
) -> list[dict[str, Any]]:
    """The owner's list of runtimes, the backend serving each and the functions using it."""
    if not _is_owner(principal):
        raise Forbidden(f"{principal.name} is not the platform owner; runtimes need the owner")
    return await _runtimes(request, agent)


async def _runtimes(request: Request, agent: Agent) -> list[dict[str, Any]]:
    # Probing every runtime takes seconds: a page view reuses an answer under a minute old.
    cached: tuple[float, list[dict[str, Any]]] | None = getattr(
        request.app.state, "console_runtimes", None)
    if cached is not None and time.monotonic() - cached[0] < RUNTIMES_TTL:
        return cached[1]
    found = await asyncio.to_thread(agent.runtimes.list_runtimes, True)
    listing = [r.model_dump(mode="json") for r in found]
    request.app.state.console_runtimes = (time.monotonic(), listing)
    return listing


async def _queue(agent: Agent, tenants: set[str]) -> dict[str, int]:
    counting = getattr(getattr(agent.metrics, "store", None), "tasks_by_status", None)
    if counting is None:
        return {}
    totals: dict[str, int] = {}
    for tenant, status, count in await asyncio.to_thread(counting):
        if tenant in tenants:
            totals[status] = totals.get(status, 0) + count
    return totals


@router.get("/functions/{name}/versions")
async def versions(
    name: str,
    request: Request,
    tenant: str = Depends(get_tenant),
    principal: Principal = Depends(get_principal),
    agent: Agent = Depends(get_agent),
) -> list[dict[str, Any]]:
    """The versions, each with who deployed it when the caller may read the audit log
    (tenant admins, as ``GET /v1/audit``); ``null`` otherwise."""
    found = await asyncio.to_thread(agent.functions.versions, tenant, name)
    role = principal.role_in(tenant)
    deploys: list[dict[str, Any]] = []
    if role == "owner" or (role is not None and RANK[role] >= RANK["admin"]):
        rows = await asyncio.to_thread(agent.tenancy.store.query_audit, [tenant], None, 10_000)
        deploys = sorted((r for r in rows if r["action"] == "deploy" and r["target"] == name
                          and 200 <= int(r["result"]) < 300), key=lambda r: r["ts"])
    answer = []
    for v in found:
        # The deploy that made a version is the last one answered after it was stored.
        after = [d for d in deploys if d["ts"] >= v.created_at]
        answer.append({**v.model_dump(mode="json"),
                       "deployed_by": after[0]["actor"] if after else None})
    return answer


@router.get("/functions/{name}/diff")
async def diff(
    name: str,
    a: int = Query(ge=1, le=MAX_VERSION, description="the older version"),
    b: int = Query(ge=1, le=MAX_VERSION, description="the newer version"),
    tenant: str = Depends(get_tenant),
    agent: Agent = Depends(get_agent),
) -> dict[str, Any]:
    """A unified diff of two versions' files."""
    validate_name(name)
    old = await asyncio.to_thread(_files, agent, tenant, name, a)
    new = await asyncio.to_thread(_files, agent, tenant, name, b)
    files = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        lines = list(difflib.unified_diff(
            (before or "").splitlines(keepends=True), (after or "").splitlines(keepends=True),
            f"v{a}/{path}" if before is not None else "/dev/null",
            f"v{b}/{path}" if after is not None else "/dev/null",
        ))
        files.append({"path": path, "diff": "".join(lines)})
    return {"a": a, "b": b, "files": files}


def _files(agent: Agent, tenant: str, name: str, number: int) -> dict[str, str]:
    version = agent.store.get_version(tenant, name, number)
    if version is None:
        raise NotFound(f"function {name!r} has no version {number} in tenant {tenant!r}")
    root = agent.bundles.fetch(version.sha256)
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        files[str(path.relative_to(root))] = _text(path)
    return files


def _text(path: Path) -> str:
    if path.stat().st_size > MAX_DIFF_FILE:
        return f"({path.stat().st_size} bytes: too large to show)\n"
    try:
        return path.read_bytes().decode()
    except UnicodeDecodeError:
        return f"(binary, {path.stat().st_size} bytes)\n"


@router.get("/settings")
async def settings(
    request: Request, principal: Principal = Depends(get_principal),
    agent: Agent = Depends(get_agent),
) -> dict[str, Any]:
    """The owner's view of how the platform is set up: sandboxes (``doctor``) and runtimes
    (the integrations are ``/v1/system/integrations``'s)."""
    if not _is_owner(principal):
        raise Forbidden(f"{principal.name} is not the platform owner; settings need the owner")
    from hyac_agent.sandbox.doctor import report

    doctor = await asyncio.to_thread(report, agent.config)
    return {"doctor": doctor, "runtimes": await _runtimes(request, agent)}
