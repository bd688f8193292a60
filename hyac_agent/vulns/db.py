"""The advisory database, in the agent's store (its own tables, made on first use).

``vuln_advisories`` holds what Hyac keeps of each OSV record; ``vuln_affected`` one row
per (advisory, ecosystem, package) for lookups; ``vuln_coverage`` which ecosystems an
import covered and when: the local database answers for a package only when its
ecosystem was imported, no longer ago than the configured age.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from hyac_agent.vulns.osv import Advisory

metadata = MetaData()

advisories = Table(
    "vuln_advisories",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("modified", String(40), nullable=False),
    Column("aliases", Text, nullable=False),  # JSON list
    Column("summary", Text, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("score", Float),
    Column("withdrawn", Integer, nullable=False),
    Column("source", String(64), nullable=False),
    Column("imported_at", Float, nullable=False),
)

affected = Table(
    "vuln_affected",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("advisory", String(100), nullable=False),
    Column("ecosystem", String(32), nullable=False),
    Column("name", String(214), nullable=False),
    Column("entries", Text, nullable=False),  # JSON list of {"ranges", "versions"}
    Index("ix_vuln_affected_package", "ecosystem", "name"),
    Index("ix_vuln_affected_advisory", "advisory"),
)

coverage = Table(
    "vuln_coverage",
    metadata,
    Column("ecosystem", String(32), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("updated_at", Float, nullable=False),
)

scans = Table(
    "vuln_scans",
    metadata,
    Column("lock_sha", String(64), primary_key=True),  # sha256 of (ecosystem, lock)
    Column("result", Text, nullable=False),  # ScanResult JSON
    Column("scanned_at", Float, nullable=False),
)

policies = Table(
    "vuln_policies",
    metadata,
    Column("tenant", String(63), primary_key=True),
    Column("policy", Text, nullable=False),  # ScanPolicy JSON
)


# When the next scheduled refresh is due, for every agent sharing the store: the agent
# whose guarded update moves it forward is the one that refreshes.
refreshes = Table(
    "vuln_refresh",
    metadata,
    Column("key", String(16), primary_key=True),
    Column("next_at", Float, nullable=False),
)


@dataclass(frozen=True)
class Affecting:
    advisory: dict[str, Any]
    entries: list[dict[str, Any]]


class AdvisoryDB:
    """Blocking calls on the store's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)

    def store(self, found: list[Advisory], source: str, ecosystems: set[str]) -> int:
        """Replace each advisory by its imported version (one transaction) and mark the
        ecosystems covered; the number of advisories stored."""
        now = time.time()
        with self.engine.begin() as conn:
            ids = [a.id for a in found]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                conn.execute(delete(affected).where(affected.c.advisory.in_(chunk)))
                conn.execute(delete(advisories).where(advisories.c.id.in_(chunk)))
            rows: list[dict[str, Any]] = []
            packages: list[dict[str, Any]] = []
            for a in {a.id: a for a in found}.values():  # a later copy of an id wins
                rows.append({"id": a.id, "modified": a.modified, "aliases": json.dumps(a.aliases),
                             "summary": a.summary, "severity": a.severity, "score": a.score,
                             "withdrawn": int(a.withdrawn), "source": source, "imported_at": now})
                packages.extend({"advisory": a.id, "ecosystem": eco, "name": name,
                                 "entries": json.dumps(entries)}
                                for (eco, name), entries in a.affected.items())
            for start in range(0, len(rows), 1000):
                conn.execute(insert(advisories), rows[start:start + 1000])
            for start in range(0, len(packages), 1000):
                conn.execute(insert(affected), packages[start:start + 1000])
            for ecosystem in ecosystems:
                conn.execute(delete(coverage).where(coverage.c.ecosystem == ecosystem))
                conn.execute(insert(coverage).values(ecosystem=ecosystem, source=source,
                                                     updated_at=now))
        return len(rows)

    def affecting(self, ecosystem: str, names: list[str]) -> dict[str, list[Affecting]]:
        """name -> the advisories (not withdrawn) that name it in ``ecosystem``."""
        found: dict[str, list[Affecting]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(names), 500):
                query = (select(affected.c.name, affected.c.entries, advisories)
                         .join(advisories, advisories.c.id == affected.c.advisory)
                         .where(affected.c.ecosystem == ecosystem,
                                affected.c.name.in_(names[start:start + 500]),
                                advisories.c.withdrawn == 0))
                for row in conn.execute(query).mappings():
                    advisory = {k: row[k] for k in ("id", "summary", "severity", "score")}
                    advisory["aliases"] = json.loads(row["aliases"])
                    found.setdefault(row["name"], []).append(
                        Affecting(advisory, json.loads(row["entries"])))
        return found

    def coverage(self) -> dict[str, tuple[str, float]]:
        with self.engine.connect() as conn:
            return {r.ecosystem: (r.source, r.updated_at) for r in conn.execute(select(coverage))}

    def counts(self) -> dict[str, int]:
        """Advisories per ecosystem."""
        query = (select(affected.c.ecosystem, func.count(func.distinct(affected.c.advisory)))
                 .group_by(affected.c.ecosystem))
        with self.engine.connect() as conn:
            return {eco: int(n) for eco, n in conn.execute(query)}

    def total(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(advisories)).scalar() or 0)

    # scans and policies ------------------------------------------------------------

    def previous_scan(self, lock_sha: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(scans.c.result).where(scans.c.lock_sha == lock_sha)).first()
        return json.loads(row.result) if row else None

    def record_scan(self, lock_sha: str, result: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(scans).where(scans.c.lock_sha == lock_sha))
            conn.execute(insert(scans).values(lock_sha=lock_sha, result=json.dumps(result),
                                              scanned_at=result["scanned_at"]))

    def policy(self, tenant: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(policies.c.policy).where(policies.c.tenant == tenant)).first()
        return json.loads(row.policy) if row else None

    def set_policy(self, tenant: str, policy: dict[str, Any] | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(policies).where(policies.c.tenant == tenant))
            if policy is not None:
                conn.execute(insert(policies).values(tenant=tenant, policy=json.dumps(policy)))

    def claim_refresh(self, interval: float, now: float | None = None) -> bool:
        """True for the one caller (across agents) that is due to refresh now; the next
        refresh is then ``interval`` from now. The first call only sets the schedule."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            moved = conn.execute(update(refreshes).where(
                refreshes.c.key == "refresh", refreshes.c.next_at <= now,
            ).values(next_at=now + interval)).rowcount
        if moved:
            return True
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(refreshes).values(key="refresh", next_at=now + interval))
        except IntegrityError:
            pass  # scheduled already (by an earlier start, or another agent)
        return False
