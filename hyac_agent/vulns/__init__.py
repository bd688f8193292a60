"""Known vulnerabilities in functions' dependencies: an OSV advisory database in the
store, a scan of every deployed lock (stored with it), tenant policies that warn or
block, rescans when the database changes, and a CycloneDX SBOM per version.

Other features scan a set of packages with ``scan_lock(store, ecosystem, packages)``,
a lock text with ``scan_lock_text``, or project files with ``scan_files(store, files,
runtime)`` (the template registry scans published templates this way).
See ``versions`` for range matching, ``sources`` for where answers
come from, ``importer`` for reading OSV dumps.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hyac_agent.vulns.service import NEW_FINDINGS_HOOKS, VulnService, service_for
from hyac_common.wire import ScanResult


def scan_lock(store: Any, ecosystem: str, packages: list[tuple[str, str | None]]) -> ScanResult:
    """Scan ``packages`` ([(name, version)], ecosystem ``PyPI`` or ``npm``): vulnerable,
    unknown or clean per package. Blocking; nothing is stored."""
    return service_for(store).scan_packages(ecosystem, packages)


def scan_lock_text(store: Any, lock: str) -> ScanResult:
    """Scan a lock as a version stores it (pinned requirements, or Hyac's npm lock)."""
    return service_for(store).scan_lock(lock)


def scan_files(store: Any, files: dict[str, bytes], runtime: str,
               requirements: list[str] | None = None) -> ScanResult | None:
    """Scan what project files pin (requirements.txt, hyac.toml requirements,
    package-lock.json, package.json): None when they pin nothing. Blocking."""
    from hyac_agent.vulns.files import pinned_packages

    ecosystem, packages = pinned_packages(files, runtime, requirements or ())
    if not packages:
        return None
    return service_for(store).scan_packages(ecosystem, packages)


async def check_deploy(store: Any, tenant: str, name: str, lock: str) -> ScanResult:
    """The deploy hook: scan ``lock``, store the result, and raise VulnerableDependencies
    when the tenant's policy refuses it."""
    return await asyncio.to_thread(service_for(store).check_deploy, tenant, name, lock)


async def check_pins(store: Any, tenant: str, name: str, runtime: str,
                     requirements: list[str], package_json: bytes | None) -> None:
    """The deploy hook before resolution: raise VulnerableDependencies when a
    requirement pinned exactly (``==`` or an npm exact version) has an advisory the
    tenant's policy blocks, so nothing is resolved or installed for it."""
    from hyac_agent.vulns.files import pinned_packages

    files = {"package.json": package_json} if package_json is not None else {}
    ecosystem, packages = pinned_packages(files, runtime, requirements)
    if packages:
        await asyncio.to_thread(service_for(store).check_pins, tenant, name, ecosystem,
                                packages)


__all__ = ["NEW_FINDINGS_HOOKS", "VulnService", "check_deploy", "check_pins", "scan_files", "scan_lock",
           "scan_lock_text", "service_for"]
