"""Scanning a lock: its packages asked of every source, the answers merged.

A package is ``vulnerable`` when any source found an advisory for its version, ``clean``
only when at least one source answered for it and none found anything, and ``unknown``
otherwise (with the reasons): Hyac never calls a package clean that nobody vouched for.
"""

from __future__ import annotations

import hashlib
import json
import time

from hyac_agent.vulns.sources import Package, Source
from hyac_agent.vulns.versions import normalize_name
from hyac_common.errors import InvalidInput
from hyac_common.wire import PackageScan, ScanResult, VulnAdvisory

_RANK = {"unrated": 0, "low": 1, "moderate": 2, "high": 3, "critical": 4}


def ecosystem_of(lock: str) -> str:
    """PyPI for a Python lock (requirement lines), npm for Hyac's npm lock (JSON)."""
    return "npm" if lock.lstrip().startswith("{") else "PyPI"


def packages_of(lock: str) -> tuple[str, list[Package]]:
    """(ecosystem, packages) of a lock a version stores."""
    ecosystem = ecosystem_of(lock)
    found: dict[str, str | None] = {}
    if ecosystem == "PyPI":
        from hyac_agent.deps.policy import parse_lock

        for entry in parse_lock(lock, allow_urls=True):
            found[normalize_name("PyPI", entry.name)] = entry.version
        return ecosystem, sorted(found.items())
    try:
        tree = json.loads(lock)["package-lock.json"].get("packages", {})
    except (ValueError, KeyError, AttributeError):
        raise InvalidInput("the npm lock cannot be read") from None
    pairs = set()
    for key, info in tree.items():
        if not key or not isinstance(info, dict) or info.get("link"):
            continue
        name = key.rsplit("node_modules/", 1)[-1]
        version = info.get("version")
        pairs.add((name, version if isinstance(version, str) else None))
    return ecosystem, sorted(pairs, key=lambda p: (p[0], p[1] or ""))


def lock_key(lock: str) -> str:
    return hashlib.sha256(lock.encode()).hexdigest()


def scan(sources: list[Source], ecosystem: str, packages: list[Package]) -> ScanResult:
    packages = [(normalize_name(ecosystem, n), v) for n, v in packages]
    found: dict[str, list[VulnAdvisory]] = {}
    reasons: dict[str, list[str]] = {}
    answered = []
    for source in sources:
        answer = source.query(ecosystem, packages)
        if answer.found:
            answered.append(source.name)
        for name, advisories in answer.found.items():
            found.setdefault(name, []).extend(advisories)
        for name, reason in answer.unknown.items():
            reasons.setdefault(name, []).append(f"{source.name}: {reason}")
    if not sources:
        reasons = {name: ["no advisory source is configured"] for name, _ in packages}
    rows = []
    for name, version in packages:
        if name in found:
            advisories = _merged(found[name])
            rows.append(PackageScan(name=name, version=version,
                                    status="vulnerable" if advisories else "clean",
                                    advisories=advisories))
        else:
            rows.append(PackageScan(name=name, version=version, status="unknown",
                                    reason="; ".join(reasons.get(name, ["no source answered"]))))
    statuses = {row.status for row in rows}
    status = ("vulnerable" if "vulnerable" in statuses
              else "unknown" if "unknown" in statuses else "clean")
    return ScanResult(ecosystem=ecosystem, status=status, packages=rows, sources=answered,
                      scanned_at=time.time())


def _merged(advisories: list[VulnAdvisory]) -> list[VulnAdvisory]:
    """One advisory per vulnerability: records that share an id or alias (a GHSA and the
    PYSEC of the same CVE) are one, with the most severe rating and every alias."""
    merged: list[VulnAdvisory] = []
    for advisory in advisories:
        names = {advisory.id, *advisory.aliases}
        index = next((i for i, m in enumerate(merged) if names & {m.id, *m.aliases}), None)
        if index is None:
            merged.append(advisory)
            continue
        old = merged[index]
        best = max(old, advisory, key=lambda a: (_RANK[a.severity], a.id.startswith("GHSA")))
        merged[index] = best.model_copy(update={
            "aliases": sorted(({old.id, *old.aliases} | names) - {best.id}),
            "fixed": best.fixed or old.fixed or advisory.fixed})
    return sorted(merged, key=lambda a: (-_RANK[a.severity], a.id))


def rank(severity: str) -> int:
    return _RANK.get(severity, 0)
