"""Vulnerability scans, the tenant's scan policy, and SBOMs of function versions.

/v1/functions/{name}/scan and /sbom read a version's scan (viewers); /v1/scan scans the
tenant's active versions or a list of packages now; /v1/scan/policy is the tenant's
policy (admins change it); /v1/vulndb is the advisory database's state, and
/v1/system/vulndb/import (the owner) imports OSV advisories into it.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from hyac_agent.api.deps import get_agent, get_principal, require_token, tenant_role
from hyac_agent.core import Agent
from hyac_agent.tenancy import Principal
from hyac_agent.vulns import service_for
from hyac_agent.vulns.sbom import cyclonedx
from hyac_common.errors import AdvisoryRefused, NotFound, PayloadTooLarge
from hyac_common.names import validate_name
from hyac_common.wire import ScanPackagesRequest, ScanPolicy, ScanReport

router = APIRouter(dependencies=[Depends(require_token)], tags=["vulnerabilities"])

viewer = tenant_role("viewer")
admin = tenant_role("admin")
VersionQuery = Query(None, ge=1, le=2**31 - 1, description="default: the active version")


@router.get("/v1/functions/{name}/scan", response_model=ScanReport)
async def version_scan(
    name: str, version: Optional[int] = VersionQuery,
    fresh: bool = Query(False, description="scan now instead of showing the stored scan"),
    tenant: str = Depends(viewer), agent: Agent = Depends(get_agent),
) -> ScanReport:
    return await asyncio.to_thread(service_for(agent.store).report, tenant, name, version, fresh)


@router.get("/v1/functions/{name}/sbom")
async def version_sbom(
    name: str, version: Optional[int] = VersionQuery,
    tenant: str = Depends(viewer), agent: Agent = Depends(get_agent),
) -> dict[str, Any]:
    """The version's CycloneDX 1.5 JSON bill of materials."""

    def build() -> dict[str, Any]:
        validate_name(name)
        record = agent.store.get_version(tenant, name, version)
        if record is None:
            raise NotFound(f"function {name!r} (version {version or 'active'}) not found "
                           f"in tenant {tenant!r}")
        lock = record.config.lock
        result = service_for(agent.store).report(tenant, name, record.number).result
        return cyclonedx(tenant, name, record.number, record.sha256, record.created_at,
                         lock, result)

    return await asyncio.to_thread(build)


@router.post("/v1/scan", response_model=list[ScanReport])
async def scan_tenant(
    function: Optional[str] = Body(None, embed=True, max_length=63),
    tenant: str = Depends(viewer), agent: Agent = Depends(get_agent),
) -> list[ScanReport]:
    """Scan the active version of ``function`` (default: every function) now."""
    return await asyncio.to_thread(service_for(agent.store).scan_tenant, tenant, function)


@router.post("/v1/scan/packages", response_model=ScanReport)
async def scan_packages(
    body: ScanPackagesRequest, tenant: str = Depends(viewer), agent: Agent = Depends(get_agent),
) -> ScanReport:
    """Scan packages before a deploy (``hyac scan --local``); nothing is stored."""
    from hyac_agent.vulns import policy
    from hyac_common.errors import InvalidInput

    packages = []
    for item in body.packages:
        name, version = item.get("name"), item.get("version")
        if not name or len(name) > 214 or (version is not None and len(version) > 128):
            raise InvalidInput("each package is {name, version} (name up to 214 characters)")
        packages.append((name, version))
    service = service_for(agent.store)
    result = await asyncio.to_thread(service.scan_packages, body.ecosystem, packages)
    rules = await asyncio.to_thread(service.policy, tenant)
    why = policy.reasons(rules, result)
    return ScanReport(result=result, blocked=bool(why), reasons=why, policy=rules)


class ScanFilesRequest(BaseModel):
    """Project files to scan before a deploy: what they pin is scanned."""

    model_config = ConfigDict(extra="forbid")

    runtime: str = Field(max_length=32, pattern=r"^[a-z0-9.]+$")
    files: dict[str, str] = Field(max_length=200, description="path -> text: requirements.txt, "
                                  "hyac.toml, package.json, package-lock.json")
    requirements: list[str] = Field(default_factory=list, max_length=1000)


@router.post("/v1/scan/files", response_model=ScanReport)
async def scan_files(
    body: ScanFilesRequest, tenant: str = Depends(viewer), agent: Agent = Depends(get_agent),
) -> ScanReport:
    """Scan what project files pin (``hyac scan --local``); nothing is stored."""
    from hyac_agent.vulns import policy
    from hyac_agent.vulns import scan_files as scan
    from hyac_common.errors import PayloadTooLarge

    if sum(len(text) for text in body.files.values()) > 8 * 1024 * 1024:
        raise PayloadTooLarge("the files to scan hold more than 8 MiB")
    files = {path: text.encode() for path, text in body.files.items()}
    result = await asyncio.to_thread(scan, agent.store, files, body.runtime, body.requirements)
    rules = await asyncio.to_thread(service_for(agent.store).policy, tenant)
    why = policy.reasons(rules, result)
    return ScanReport(result=result, blocked=bool(why), reasons=why, policy=rules)


@router.get("/v1/scan/policy", response_model=ScanPolicy)
async def get_policy(tenant: str = Depends(viewer), agent: Agent = Depends(get_agent)
                     ) -> ScanPolicy:
    return await asyncio.to_thread(service_for(agent.store).policy, tenant)


@router.put("/v1/scan/policy", response_model=ScanPolicy)
async def set_policy(body: ScanPolicy, tenant: str = Depends(admin),
                     agent: Agent = Depends(get_agent)) -> ScanPolicy:
    return await asyncio.to_thread(service_for(agent.store).set_policy, tenant, body)


@router.delete("/v1/scan/policy", response_model=ScanPolicy)
async def reset_policy(tenant: str = Depends(admin), agent: Agent = Depends(get_agent)
                       ) -> ScanPolicy:
    """Back to the platform default."""
    return await asyncio.to_thread(service_for(agent.store).set_policy, tenant, None)


@router.get("/v1/vulndb")
async def vulndb_status(agent: Agent = Depends(get_agent)) -> dict[str, Any]:
    """Sources, advisory counts per ecosystem and the age of each import."""
    return await asyncio.to_thread(service_for(agent.store).status)


_importing = asyncio.Lock()


@router.post("/v1/system/vulndb/import")
async def vulndb_import(
    request: Request,
    name: str = Query("upload", max_length=120, pattern=r"^[A-Za-z0-9._-]+$",
                      description="the uploaded file's name, shown in errors and as the source"),
    principal: Principal = Depends(get_principal), agent: Agent = Depends(get_agent),
) -> dict[str, Any]:
    """Import an OSV JSON file or an OSV ecosystem zip sent as the body (the platform
    owner only), all or nothing, then rescan every tenant's active versions and the
    published templates; new findings raise the ``vulnerabilities`` alert."""
    principal.require_owner()
    limit = agent.config.vulndb_max_upload_bytes
    async with _importing:
        handle, temporary = tempfile.mkstemp(prefix=".vulndb-upload-", dir=agent.config.data_dir)
        path = Path(temporary)
        try:
            received = 0
            with os.fdopen(handle, "wb") as out:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > limit:
                        raise PayloadTooLarge(f"the advisory file is larger than {limit} bytes "
                                              "(HYAC_VULNDB_MAX_UPLOAD_BYTES)")
                    await asyncio.to_thread(out.write, chunk)
            if received == 0:
                raise AdvisoryRefused("the request body is empty: send an OSV JSON file or zip")
            try:
                return await asyncio.to_thread(
                    service_for(agent.store).import_path, path, f"upload {name}"[:64],
                    agent.config.data_dir)
            except AdvisoryRefused as exc:  # named as the caller knows it, not by our path
                raise AdvisoryRefused(exc.message.replace(str(path), name)) from None
        finally:
            path.unlink(missing_ok=True)
