"""Where advisories come from: small pluggable sources, each answering for the packages
it can and saying nothing about the others.

``LocalSource`` is the imported OSV database. ``OsvApiSource`` (the OSV service, or a
mirror at ``HYAC_VULNDB_OSV_URL``) and ``PypiJsonSource`` (the ``vulnerabilities`` of
PyPI's JSON API) are asked only when ``HYAC_VULNDB_SOURCES`` names them: an unreachable
source, a timeout or an answer without the field answers for nothing, so those packages
stay unknown rather than clean.
"""

from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from hyac_agent.vulns import osv
from hyac_agent.vulns.db import AdvisoryDB
from hyac_agent.vulns.versions import Unorderable, affected
from hyac_common.errors import AdvisoryRefused
from hyac_common.wire import VulnAdvisory

log = logging.getLogger("hyac.vulns")

#: a package: (normalized name, version or None)
Package = tuple[str, "str | None"]
SOURCES_ENV = "HYAC_VULNDB_SOURCES"
MAX_AGE_ENV = "HYAC_VULNDB_MAX_AGE_DAYS"
DEFAULT_MAX_AGE_DAYS = 7.0
ONLINE_TIMEOUT = 5.0


class Answer:
    """What a source said: advisories per package it could answer for, and why it could
    not answer for the others."""

    def __init__(self) -> None:
        self.found: dict[str, list[VulnAdvisory]] = {}
        self.unknown: dict[str, str] = {}


class Source(ABC):
    name: str

    @abstractmethod
    def query(self, ecosystem: str, packages: list[Package]) -> Answer: ...


def _matches(ecosystem: str, version: str, advisory: dict[str, Any],
             entries: list[dict[str, Any]]) -> VulnAdvisory | None:
    for entry in entries:
        match = affected(ecosystem, version, entry)  # raises Unorderable
        if match is not None:
            return VulnAdvisory(**advisory, fixed=match.fixed)
    return None


class LocalSource(Source):
    """The imported database: it answers for an ecosystem it has imported, while that
    import is younger than ``max_age_days``."""

    name = "local"

    def __init__(self, db: AdvisoryDB, max_age_days: float | None = None) -> None:
        self.db = db
        if max_age_days is None:
            max_age_days = float(os.environ.get(MAX_AGE_ENV, DEFAULT_MAX_AGE_DAYS))
        self.max_age = max_age_days * 86400

    def query(self, ecosystem: str, packages: list[Package]) -> Answer:
        answer = Answer()
        covered = self.db.coverage().get(ecosystem)
        if covered is None:
            reason = f"the advisory database has no {ecosystem} advisories (hyac-agent vulndb import)"
            answer.unknown = {name: reason for name, _version in packages}
            return answer
        age = time.time() - covered[1]
        if age > self.max_age:
            reason = (f"the advisory database's {ecosystem} data is {age / 86400:.0f} days old, "
                      f"older than {self.max_age / 86400:g} days")
            answer.unknown = {name: reason for name, _version in packages}
            return answer
        affecting = self.db.affecting(ecosystem, sorted({name for name, _ in packages}))
        for name, version in packages:
            if version is None:
                answer.unknown[name] = "no pinned version (a direct URL or an unpinned requirement)"
                continue
            try:
                answer.found[name] = [m for a in affecting.get(name, [])
                                      if (m := _matches(ecosystem, version, a.advisory, a.entries))]
            except Unorderable as exc:
                answer.unknown[name] = f"cannot compare versions: {exc}"
        return answer


class OsvApiSource(Source):
    name = "osv"

    def __init__(self, url: str | None = None) -> None:
        self.url = (url or os.environ.get("HYAC_VULNDB_OSV_URL") or "https://api.osv.dev").rstrip("/")

    def query(self, ecosystem: str, packages: list[Package]) -> Answer:
        import httpx

        answer = Answer()
        asked = [(n, v) for n, v in packages if v is not None]
        try:
            with httpx.Client(timeout=ONLINE_TIMEOUT) as client:
                queries = [{"package": {"ecosystem": ecosystem, "name": n}, "version": v}
                           for n, v in asked]
                response = client.post(f"{self.url}/v1/querybatch", json={"queries": queries})
                response.raise_for_status()
                results = response.json()["results"]
                if len(results) != len(asked):
                    raise ValueError("the answer does not match the query")
                records: dict[str, osv.Advisory] = {}
                for (name, version), result in zip(asked, results, strict=True):
                    hits = []
                    for hit in result.get("vulns") or []:
                        ident = str(hit["id"])
                        if ident not in records:
                            got = client.get(f"{self.url}/v1/vulns/{ident}")
                            got.raise_for_status()
                            records[ident] = osv.parse(got.json(), f"OSV {ident}")
                        hits.append(records[ident])
                    answer.found[name] = _advisories_of(ecosystem, name, version, hits)
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AdvisoryRefused,
                Unorderable) as exc:
            log.warning("OSV source unavailable: %s", exc)
            return _none(packages, f"the OSV source could not answer ({type(exc).__name__})")
        return answer


def _advisories_of(ecosystem: str, name: str, version: str, records: list[osv.Advisory]
                   ) -> list[VulnAdvisory]:
    found = []
    for record in records:
        advisory = {"id": record.id, "aliases": record.aliases, "severity": record.severity,
                    "score": record.score, "summary": record.summary}
        match = _matches(ecosystem, version, advisory, record.affected.get((ecosystem, name), []))
        # the service said it affects this version: trust that even without a range here
        found.append(match or VulnAdvisory(**advisory))
    return found


class PypiJsonSource(Source):
    name = "pypi"

    def __init__(self, url: str | None = None) -> None:
        self.url = (url or os.environ.get("HYAC_VULNDB_PYPI_URL") or "https://pypi.org").rstrip("/")

    def query(self, ecosystem: str, packages: list[Package]) -> Answer:
        import httpx

        answer = Answer()
        if ecosystem != "PyPI":
            return answer
        try:
            with httpx.Client(timeout=ONLINE_TIMEOUT) as client:
                for name, version in packages:
                    if version is None:
                        continue
                    response = client.get(f"{self.url}/pypi/{name}/{version}/json")
                    if response.status_code != 200:
                        answer.unknown[name] = f"PyPI answered {response.status_code}"
                        continue
                    listed = response.json().get("vulnerabilities")
                    if not isinstance(listed, list):  # no such field: no answer
                        answer.unknown[name] = "PyPI's answer lists no vulnerabilities field"
                        continue
                    answer.found[name] = [_pypi_advisory(v) for v in listed
                                          if not v.get("withdrawn")]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("PyPI source unavailable: %s", exc)
            return _none(packages, f"PyPI could not answer ({type(exc).__name__})")
        return answer


def _pypi_advisory(item: dict[str, Any]) -> VulnAdvisory:
    """An entry of PyPI's ``vulnerabilities`` (OSV-like, without a rating)."""
    summary = str(item.get("summary") or item.get("details") or "")
    return VulnAdvisory(id=str(item["id"])[:100], aliases=[str(a)[:100] for a in item.get("aliases") or []],
                        severity="unrated", summary=summary[:500],
                        fixed=(item.get("fixed_in") or [None])[0])


def _none(packages: list[Package], reason: str) -> Answer:
    answer = Answer()
    answer.unknown = {name: reason for name, _version in packages}
    return answer


def configured(db: AdvisoryDB) -> list[Source]:
    """The sources ``HYAC_VULNDB_SOURCES`` names, in order (default: ``local``)."""
    names = [n.strip() for n in os.environ.get(SOURCES_ENV, "local").split(",") if n.strip()]
    makers: dict[str, Callable[[], Source]] = {
        "local": lambda: LocalSource(db), "osv": OsvApiSource, "pypi": PypiJsonSource}
    unknown = [n for n in names if n not in makers]
    if unknown:
        # A deploy is not refused for the operator's typo, nor are its packages called
        # clean: every package is unknown, saying why.
        reason = f"{SOURCES_ENV}: unknown source {unknown[0]!r} (local, osv, pypi)"
        log.error("%s", reason)
        return [Misconfigured(reason)]
    return [makers[n]() for n in names]


class Misconfigured(Source):
    """Stands in for the sources when their setting is wrong: it answers for nothing."""

    name = "misconfigured"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def query(self, ecosystem: str, packages: list[Package]) -> Answer:
        return _none(packages, self.reason)
