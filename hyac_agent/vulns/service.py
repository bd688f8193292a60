"""Scanning versions: at deploy (the tenant's policy may refuse it), on demand, and again
for every active version when the advisory database changes.

A scan belongs to a lock (the same lock has the same packages, whichever version holds
it), so results are stored by the lock's sha256; a version's scan is its lock's.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from hyac_agent.vulns import importer, policy
from hyac_agent.vulns.db import AdvisoryDB
from hyac_agent.vulns.scan import lock_key, packages_of, scan
from hyac_agent.vulns.sources import Package, configured
from hyac_common.errors import HyacError, NotFound
from hyac_common.names import validate_name
from hyac_common.wire import ScanPolicy, ScanReport, ScanResult

log = logging.getLogger("hyac.vulns")

#: called with (tenant, function, version, new advisory ids) when a rescan finds new
#: advisories; the log line below is the notification until integrations add more
NEW_FINDINGS_HOOKS: list[Callable[[str, str, int, list[str]], None]] = []

_services: weakref.WeakKeyDictionary[Engine, VulnService] = weakref.WeakKeyDictionary()


def service_for(store: Any) -> VulnService:
    """The scanning service of ``store`` (an SqlStore): one per database engine."""
    found = _services.get(store.engine)
    if found is None:
        found = _services[store.engine] = VulnService(store)
    return found


class VulnService:
    """Blocking calls (run them in a thread from async code)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.db = AdvisoryDB(store.engine)
        #: one import, refresh or rescan at a time in this process
        self._changing = threading.RLock()

    # scanning ------------------------------------------------------------------------

    def scan_packages(self, ecosystem: str, packages: list[Package]) -> ScanResult:
        return scan(configured(self.db), ecosystem, packages)

    def scan_lock(self, lock: str) -> ScanResult:
        """Scan ``lock`` now and store the result; ``new`` lists the advisories the last
        change of its findings brought (kept while nothing changes)."""
        return self._scan_and_record(lock, rescan=False)[0]

    def _scan_and_record(self, lock: str, rescan: bool) -> tuple[ScanResult, list[str]]:
        """The stored scan of ``lock``, and the advisories its previous scan did not
        have. With ``rescan`` (the database changed) a lock never scanned before (a
        version deployed before scans were kept) has every finding new."""
        ecosystem, packages = packages_of(lock)
        result = self.scan_packages(ecosystem, packages)
        key = lock_key(lock)
        previous = self.db.previous_scan(key)
        fresh: list[str] = []
        if previous is not None or rescan:
            before = {a["id"] for p in (previous or {"packages": []})["packages"]
                      for a in p["advisories"]}
            now = {a.id for p in result.packages for a in p.advisories}
            fresh = sorted(now - before)
            if previous is not None and now == before:
                # nothing changed: what the last change brought stays marked new
                result.new = [i for i in previous.get("new") or [] if i in now]
            else:
                result.new = fresh
        self.db.record_scan(key, result.model_dump(mode="json"))
        return result, fresh

    def stored(self, lock: str) -> ScanResult | None:
        found = self.db.previous_scan(lock_key(lock))
        return ScanResult.model_validate(found) if found is not None else None

    def check_deploy(self, tenant: str, name: str, lock: str) -> ScanResult:
        """Scan a deploy's lock; VulnerableDependencies when the tenant's policy blocks."""
        rules = self.policy(tenant)
        if rules.mode == "off":
            return self.scan_lock(lock)  # still recorded: `hyac scan` shows it
        result = self.scan_lock(lock)
        policy.enforce(rules, result)
        if result.status != "clean":
            log.warning("deploy of %s/%s: dependencies %s (%s)", tenant, name, result.status,
                        ", ".join(a.id for p in result.packages for a in p.advisories) or "unknown")
        return result

    def check_pins(self, tenant: str, name: str, ecosystem: str, packages: list[Package]
                   ) -> None:
        """Before anything is resolved: refuse a deploy whose pinned requirements
        (``name==version``) already have an advisory the tenant's policy blocks. Packages
        without a pin are left to the scan of the resolved lock (``check_deploy``), which
        also applies ``unknown = "block"``; nothing is stored."""
        rules = self.policy(tenant)
        pinned: list[Package] = [(n, v) for n, v in packages if v is not None]
        if rules.mode != "block" or not pinned:
            return
        result = self.scan_packages(ecosystem, pinned)
        vulnerable = [p for p in result.packages if p.status == "vulnerable"]
        if vulnerable:
            policy.enforce(rules.model_copy(update={"unknown": "allow"}),
                           result.model_copy(update={"packages": vulnerable}))

    def report(self, tenant: str, name: str, version: int | None = None, fresh: bool = False
               ) -> ScanReport:
        """The scan of ``name``'s version (default: the active one): the stored one, or a
        new one with ``fresh`` (also when none is stored)."""
        validate_name(name)
        record = self.store.get_version(tenant, name, version)
        if record is None:
            which = f"version {version} of " if version is not None else ""
            raise NotFound(f"{which}function {name!r} not found in tenant {tenant!r}")
        rules = self.policy(tenant)
        lock = record.config.lock
        result = None
        if lock:
            result = None if fresh else self.stored(lock)
            if result is None:
                result = self.scan_lock(lock)
        return ScanReport(function=name, version=record.number, result=result,
                          blocked=bool(policy.reasons(rules, result)),
                          reasons=policy.reasons(rules, result), policy=rules)

    def scan_tenant(self, tenant: str, function: str | None = None) -> list[ScanReport]:
        """Fresh scans of the active version of ``function``, or of every function."""
        if function is not None:
            return [self.report(tenant, function, fresh=True)]
        return [self.report(tenant, record.name, fresh=True)
                for record in self.store.list_functions(tenant)]

    def rescan_active(self) -> list[tuple[str, str, int, list[str]]]:
        """Rescan every active version with dependencies (after the database changed);
        (tenant, function, version, new advisory ids) for those with new findings."""
        changed = []
        done: dict[str, list[str]] = {}
        for tenant in self._tenants():
            for record in self.store.list_functions(tenant):
                version = self.store.get_version(tenant, record.name)
                lock = version.config.lock if version is not None else None
                if not lock:
                    continue
                key = lock_key(lock)
                if key not in done:
                    done[key] = self._scan_and_record(lock, rescan=True)[1]
                if done[key]:
                    changed.append((tenant, record.name, version.number, done[key]))
        for tenant, name, number, new in changed:
            log.warning("new advisories for %s/%s v%d: %s", tenant, name, number, ", ".join(new))
            self._audit(tenant, f"{name} v{number}: {', '.join(new)}")
            for hook in NEW_FINDINGS_HOOKS:
                hook(tenant, name, number, new)
        return changed

    def rescan_templates(self, data_dir: Path) -> list[tuple[str, str, list[str]]]:
        """Rescan every published template version of the registry under ``data_dir``;
        (name, version, new advisory ids) for those with new findings, each recorded in
        the audit log (no tenant: the platform's) for the vulnerabilities alert."""
        from hyac_agent.templates import registry_of

        changed = registry_of(self.store, data_dir).rescan_all()
        for name, version, new in changed:
            log.warning("new advisories for template %s@%s: %s", name, version, ", ".join(new))
            self._audit(None, f"template {name}@{version}: {', '.join(new)}")
        return changed

    def rescan_all(self, data_dir: Path | None) -> dict[str, list[str]]:
        """After the advisory database changed: every tenant's active versions, then the
        published templates (when the registry's ``data_dir`` is known)."""
        with self._changing:
            functions = self.rescan_active()
            templates = self.rescan_templates(data_dir) if data_dir is not None else []
        return {"rescanned_with_new_findings": [f"{t}/{n} v{v}: {', '.join(ids)}"
                                                for t, n, v, ids in functions],
                "templates_with_new_findings": [f"{n}@{v}: {', '.join(ids)}"
                                                for n, v, ids in templates]}

    def _audit(self, tenant: str | None, target: str) -> None:
        """A record in the tenant's audit log (``hyac audit``), where the agent keeps one."""
        from sqlalchemy import MetaData as Meta
        from sqlalchemy import Table, insert, inspect

        try:
            if not inspect(self.store.engine).has_table("audit_log"):
                return
            audit = Table("audit_log", Meta(), autoload_with=self.store.engine)
            with self.store.engine.begin() as conn:
                conn.execute(insert(audit).values(
                    ts=time.time(), actor="hyac-agent", actor_kind="agent", actor_id="agent",
                    tenant=tenant, action="vulnerabilities_found", target=target[:256],
                    result=200))
        except Exception:  # the finding is logged above; the audit log is a courtesy
            log.exception("could not write the audit record of new advisories")

    def _tenants(self) -> list[str]:
        """Every tenant with a function."""
        from sqlalchemy import select

        from hyac_agent.store.tables import functions

        with self.store.engine.connect() as conn:
            rows = conn.execute(select(functions.c.tenant).distinct()).all()
        return sorted(row[0] for row in rows)

    # the database --------------------------------------------------------------------

    def import_path(self, path: Path, source: str = "import", data_dir: Path | None = None
                    ) -> dict[str, Any]:
        """Import an OSV file, folder or zip, then rescan the active versions (and the
        published templates of the registry under ``data_dir``)."""
        found = importer.read(path)
        ecosystems = importer.ecosystems(found)
        with self._changing:  # the rescan sees this import's findings as new
            stored = self.db.store(found, source, ecosystems)
            return {"advisories": stored, "ecosystems": sorted(ecosystems),
                    **self.rescan_all(data_dir)}

    def refresh(self, feeds: list[str], data_dir: Path | None, max_bytes: int
                ) -> dict[str, Any]:
        """A scheduled refresh: import each OSV zip of ``feeds`` (URLs the operator
        configured), then rescan everything: new advisories of the imports, and what
        the online sources (osv, pypi) answer today. A feed that fails is logged and
        named; the others and the rescan still run."""
        from hyac_agent.vulns.refresh import download

        imported, failed = 0, []
        for url in feeds:
            try:
                with download(url, max_bytes) as path:
                    found = importer.read(path)
                with self._changing:
                    imported += self.db.store(found, f"feed {url}"[:64],
                                              importer.ecosystems(found))
            except (HyacError, OSError, ValueError) as exc:
                log.warning("advisory feed %s: %s", url, exc)
                failed.append(f"{url}: {getattr(exc, 'message', None) or exc}"[:300])
        return {"advisories": imported, "failed_feeds": failed, **self.rescan_all(data_dir)}

    def status(self) -> dict[str, Any]:
        from hyac_agent.vulns.sources import LocalSource

        now = time.time()
        counts = self.db.counts()
        local = LocalSource(self.db)
        return {
            "sources": [s.name for s in configured(self.db)],
            "advisories": self.db.total(),
            "max_age_days": local.max_age / 86400,
            "ecosystems": {
                eco: {"advisories": counts.get(eco, 0), "source": source,
                      "age_days": round((now - at) / 86400, 2),
                      "stale": now - at > local.max_age}
                for eco, (source, at) in sorted(self.db.coverage().items())},
        }

    # policies ------------------------------------------------------------------------

    def policy(self, tenant: str) -> ScanPolicy:
        own = self.db.policy(tenant)
        return ScanPolicy(**own) if own is not None else policy.platform_default()

    def set_policy(self, tenant: str, rules: ScanPolicy | None) -> ScanPolicy:
        self.db.set_policy(tenant, None if rules is None else
                           rules.model_dump(exclude={"inherited"}))
        return self.policy(tenant)
