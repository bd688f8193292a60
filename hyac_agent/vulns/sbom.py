"""A CycloneDX 1.5 JSON software bill of materials for one function version: the version
itself (its bundle's sha256), each locked package with its package URL and hashes, and
the advisories of the version's latest scan."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from hyac_agent.vulns.scan import ecosystem_of, packages_of
from hyac_common import __version__
from hyac_common.wire import ScanResult


def purl(ecosystem: str, name: str, version: str | None) -> str:
    kind = "pypi" if ecosystem == "PyPI" else "npm"
    at = f"@{quote(version, safe='.+-_~!')}" if version else ""
    return f"pkg:{kind}/{quote(name, safe='/.-_~')}{at}"


def _hashes(ecosystem: str, lock: str) -> dict[str, list[dict[str, str]]]:
    """name -> CycloneDX hashes from the lock (pip's --hash, npm's integrity)."""
    found: dict[str, list[dict[str, str]]] = {}
    if ecosystem == "PyPI":
        from hyac_agent.deps.policy import parse_lock
        from hyac_agent.vulns.versions import normalize_name

        names = {"sha256": "SHA-256", "sha384": "SHA-384", "sha512": "SHA-512"}
        for entry in parse_lock(lock, allow_urls=True):
            values = [h.split("=", 1)[1].split(":", 1) for h in entry.hashes]
            found[normalize_name("PyPI", entry.name)] = [
                {"alg": names[alg], "content": value} for alg, value in values if alg in names]
        return found
    tree = json.loads(lock)["package-lock.json"].get("packages", {})
    for key, info in tree.items():
        integrity = info.get("integrity", "") if isinstance(info, dict) else ""
        if key and integrity.startswith("sha512-"):
            digest = base64.b64decode(integrity[7:]).hex()
            found[key.rsplit("node_modules/", 1)[-1]] = [{"alg": "SHA-512", "content": digest}]
    return found


def cyclonedx(tenant: str, name: str, number: int, sha256: str, created_at: float,
              lock: str | None, result: ScanResult | None) -> dict[str, Any]:
    root = f"function:{tenant}/{name}@v{number}"
    components = []
    refs = []
    ecosystem = ecosystem_of(lock) if lock else "PyPI"
    if lock:
        hashes = _hashes(ecosystem, lock)
        for dependency, version in packages_of(lock)[1]:
            ref = purl(ecosystem, dependency, version)
            refs.append(ref)
            component: dict[str, Any] = {"type": "library", "bom-ref": ref, "name": dependency,
                                         "purl": ref}
            if version:
                component["version"] = version
            if hashes.get(dependency):
                component["hashes"] = hashes[dependency]
            components.append(component)
    vulnerabilities = []
    if result is not None:
        for package in result.packages:
            for advisory in package.advisories:
                entry: dict[str, Any] = {
                    "bom-ref": f"{advisory.id}:{package.name}", "id": advisory.id,
                    "source": {"name": "OSV", "url": f"https://osv.dev/vulnerability/{advisory.id}"},
                    "description": advisory.summary,
                    "affects": [{"ref": purl(ecosystem, package.name, package.version)}],
                    "references": [{"id": alias, "source": {"name": "OSV"}}
                                   for alias in advisory.aliases],
                }
                rating: dict[str, Any] = {"severity": "medium" if advisory.severity == "moderate"
                                          else "unknown" if advisory.severity == "unrated"
                                          else advisory.severity}
                if advisory.score is not None:
                    rating.update(score=advisory.score, method="CVSSv3")
                entry["ratings"] = [rating]
                if advisory.fixed:
                    entry["recommendation"] = f"Upgrade {package.name} to {advisory.fixed} or later"
                vulnerabilities.append(entry)
    stamp = datetime.fromtimestamp(created_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'hyac:{root}:{sha256}')}",
        "version": 1,
        "metadata": {
            "timestamp": stamp,
            "tools": {"components": [{"type": "application", "name": "hyac",
                                      "version": __version__}]},
            "component": {"type": "application", "bom-ref": root, "name": name,
                          "version": f"v{number}", "group": tenant,
                          "hashes": [{"alg": "SHA-256", "content": sha256}]},
        },
        "components": components,
        "dependencies": [{"ref": root, "dependsOn": refs}],
        "vulnerabilities": vulnerabilities,
    }
