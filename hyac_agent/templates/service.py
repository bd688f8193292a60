"""The template registry: publish, review, list, install and rate templates.

Trust rules, in one place:

- Anyone with a token publishes. A version is seen by all tenants only once the platform
  owner or a moderator (a user named in ``HYAC_TEMPLATE_MODERATORS``) approved it; until
  then by its publisher and the reviewers alone.
- A name belongs to its first publisher: another publisher's version of it, or of a name
  that reads the same (``kv-counter`` and ``kvcounter``, ``l``/``1``, ``o``/``0``), is
  refused. The built-in templates hold their names from the start.
- A version never changes: it is stored under the hash of its files, and publishing the
  same name and version again is refused whatever the content.

Blocking (SQL and files): the routes call it from a thread.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from hyac_agent.bundles import BundleStore
from hyac_agent.store import tables as t
from hyac_agent.templates.files import (
    check_template,
    content_sha256,
    decode_files,
    encode_files,
)
from hyac_agent.templates.manifest import TemplateManifest, version_key
from hyac_common.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    TemplateNameTaken,
    TemplateVersionExists,
)

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
BUILTIN = "builtin"
_LOOKALIKE = str.maketrans({"0": "o", "1": "l", "i": "l", "3": "e", "5": "s", "-": None})


@dataclass(frozen=True)
class Viewer:
    """Who asks: a user id (or "owner"), a name to show, and whether it is the owner."""

    id: str
    name: str
    owner: bool = False
    #: the owner, or a user named in HYAC_TEMPLATE_MODERATORS: reviews what others publish
    moderator: bool = False


#: the longest publisher, installer or rater id the store's columns hold
MAX_VIEWER_ID = 64


def viewer_id(user_id: str | None, name: str) -> str:
    """Who a caller is to the registry: their user id, or for a user from before ids
    existed ``user:NAME`` (kept apart from "builtin" and "owner"); a name too long for
    the store's columns (PostgreSQL enforces them) is known by its digest instead."""
    if user_id:
        return user_id
    by_name = f"user:{name}"
    if len(by_name) <= MAX_VIEWER_ID:
        return by_name
    return "user#" + hashlib.sha256(name.encode()).hexdigest()[:40]


def skeleton(name: str) -> str:
    """What a name looks like to a reader: equal skeletons are one name."""
    return name.translate(_LOOKALIKE).replace("rn", "m")


class TemplateRegistry:
    def __init__(self, engine: Engine, root: Path,
                 scan: Callable[[dict[str, bytes], str], dict[str, Any]]) -> None:
        """``scan(files, runtime)``: the vulnerability scan stored with each version."""
        self.engine = engine
        self.files = BundleStore(root)
        self.scan = scan

    # publishing ----------------------------------------------------------------------

    def publish(self, files_b64: dict[str, str], viewer: Viewer) -> dict[str, Any]:
        files = decode_files(files_b64)
        manifest = check_template(files)
        status = APPROVED if viewer.moderator or viewer.id == BUILTIN else PENDING
        return self.add_version(files, manifest, viewer, status)

    def add_version(self, files: dict[str, bytes], manifest: TemplateManifest, viewer: Viewer,
                    status: str) -> dict[str, Any]:
        sha256 = content_sha256(files)
        with self.engine.connect() as conn:  # refused early: nothing is written for it
            self._check_new(conn, manifest, viewer)
        # Before the transaction: the scanner uses connections of its own, which a write
        # lock held here would keep waiting (SQLite).
        self.files.write(sha256, files)
        scan = self.scan(files, manifest.runtime)
        with self.engine.begin() as conn:
            self._check_new(conn, manifest, viewer, claim=True)  # again, now atomically
            try:
                conn.execute(insert(t.template_versions).values(
                    name=manifest.name, version=manifest.version, sha256=sha256,
                    manifest=manifest.model_dump_json(), publisher=viewer.id,
                    publisher_name=viewer.name[:128], status=status, scan=json.dumps(scan),
                    created_at=time.time()))
            except IntegrityError:  # published by a concurrent request a moment ago
                raise TemplateVersionExists(
                    f"{manifest.name}@{manifest.version} is published already") from None
        return self.show(manifest.name, viewer, manifest.version)

    def _check_new(self, conn: Any, manifest: TemplateManifest, viewer: Viewer,
                   *, claim: bool = False) -> None:
        """TemplateVersionExists for a published version, TemplateNameTaken for a name
        (or one reading the same) another publisher holds; with ``claim`` a free name
        becomes the viewer's."""
        name = manifest.name
        key = skeleton(name)
        holder = conn.execute(select(t.template_names)
                              .where(t.template_names.c.skeleton == key)).first()
        if holder is not None and holder.publisher != viewer.id:
            whose = "a built-in template" if holder.publisher == BUILTIN else "another publisher"
            same = "is" if holder.name == name else f"reads the same as {holder.name!r}, which is"
            raise TemplateNameTaken(f"template name {name!r} {same} {whose}'s: pick another name",
                                    name=name, taken_by=holder.name)
        taken = conn.execute(select(t.template_versions.c.sha256).where(
            t.template_versions.c.name == name,
            t.template_versions.c.version == manifest.version)).first()
        if taken is not None:
            raise TemplateVersionExists(
                f"{name}@{manifest.version} is published already; versions never change: "
                "raise the version in template.toml", sha256=taken.sha256)
        if holder is None and claim:
            try:
                conn.execute(insert(t.template_names).values(skeleton=key, name=name,
                                                             publisher=viewer.id))
            except IntegrityError:  # claimed by a concurrent publish a moment ago
                raise TemplateNameTaken(f"template name {name!r} was just taken: pick another "
                                        "name", name=name, taken_by=name) from None

    def review(self, name: str, version: str, status: str, viewer: Viewer) -> dict[str, Any]:
        if not viewer.moderator:
            raise Forbidden("only the platform owner or a template moderator approves or "
                            "rejects templates")
        if status not in (APPROVED, REJECTED):
            raise InvalidInput(f"status must be {APPROVED!r} or {REJECTED!r}")
        with self.engine.begin() as conn:
            done = conn.execute(update(t.template_versions).where(
                t.template_versions.c.name == name, t.template_versions.c.version == version,
            ).values(status=status)).rowcount
        if not done:
            raise NotFound(f"no template {name}@{version}")
        return self.show(name, viewer, version)

    # reading -------------------------------------------------------------------------

    def _rows(self, conn: Any, viewer: Viewer, name: str | None = None) -> list[Any]:
        query = select(t.template_versions)
        if name is not None:
            query = query.where(t.template_versions.c.name == name)
        rows = [row for row in conn.execute(query).all()
                if row.status == APPROVED or viewer.moderator or row.publisher == viewer.id]
        return sorted(rows, key=lambda row: version_key(row.version), reverse=True)

    def _summary(self, conn: Any, row: Any, versions: list[str] | None = None) -> dict[str, Any]:
        manifest = json.loads(row.manifest)
        installs = conn.execute(select(func.count()).select_from(t.template_installs)
                                .where(t.template_installs.c.name == row.name)).scalar() or 0
        average, count = conn.execute(
            select(func.avg(t.template_ratings.c.stars), func.count())
            .where(t.template_ratings.c.name == row.name)).one()
        summary = {
            **manifest, "sha256": row.sha256, "status": row.status,
            "publisher": row.publisher_name, "builtin": row.publisher == BUILTIN,
            "published_at": row.created_at, "scan": json.loads(row.scan), "installs": installs,
            "rating": {"average": round(float(average), 2) if count else None, "count": count},
            "source": "local",
        }
        if versions is not None:
            summary["versions"] = versions
        return summary

    def listing(self, viewer: Viewer, query: str = "") -> list[dict[str, Any]]:
        words = query.lower().split()
        with self.engine.connect() as conn:
            latest: dict[str, Any] = {}
            for row in self._rows(conn, viewer):
                latest.setdefault(row.name, row)  # newest first
            found = []
            for name in sorted(latest):
                summary = self._summary(conn, latest[name])
                if words and not all(word in _haystack(summary) for word in words):
                    continue
                found.append(summary)
        return found

    def show(self, name: str, viewer: Viewer, version: str | None = None,
             *, readme: bool = True) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = self._rows(conn, viewer, name)
            if not rows:
                raise NotFound(f"no template {name!r}: `hyac template ls` lists them")
            chosen = rows[0] if version is None else next(
                (row for row in rows if row.version == version), None)
            if chosen is None:
                raise NotFound(f"template {name!r} has no version {version!r} (it has "
                               f"{', '.join(row.version for row in rows)})")
            summary = self._summary(conn, chosen, [row.version for row in rows])
        if readme:
            readme_path = self.files.code_dir(chosen.sha256) / "README.md"
            summary["readme"] = readme_path.read_text(encoding="utf-8", errors="replace")
        return summary

    def rescan(self, name: str, version: str | None, viewer: Viewer) -> dict[str, Any]:
        """Scan a version again (the advisory database may have grown) and store the result."""
        shown = self.files_of(self.show(name, viewer, version, readme=False))
        files = decode_files(shown["files_b64"])
        scan = self.scan(files, shown["runtime"])
        with self.engine.begin() as conn:
            conn.execute(update(t.template_versions).where(
                t.template_versions.c.name == name,
                t.template_versions.c.version == shown["version"]).values(scan=json.dumps(scan)))
        return self.show(name, viewer, shown["version"])

    def rescan_all(self) -> list[tuple[str, str, list[str]]]:
        """Scan every published version again (the advisory database changed) and store
        the results; (name, version, new advisory ids) of those with new findings."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.template_versions).where(
                t.template_versions.c.status != REJECTED)
                .order_by(t.template_versions.c.id)).all()
        changed = []
        for row in rows:
            code = self.files.code_dir(row.sha256)
            files = {path.relative_to(code).as_posix(): path.read_bytes()
                     for path in code.rglob("*") if path.is_file()}
            if not files:
                continue  # its files are gone from this node: scanned where they are
            runtime = json.loads(row.manifest)["runtime"]
            scan = self.scan(files, runtime)
            new = sorted(_advisory_ids(scan) - _advisory_ids(json.loads(row.scan)))
            with self.engine.begin() as conn:
                conn.execute(update(t.template_versions).where(
                    t.template_versions.c.id == row.id).values(scan=json.dumps(scan)))
            if new:
                changed.append((row.name, row.version, new))
        return changed

    def install(self, name: str, version: str | None, viewer: Viewer) -> dict[str, Any]:
        """The template's files for ``hyac init``; counts an install (one per user)."""
        summary = self.files_of(self.show(name, viewer, version, readme=False))
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.template_installs).values(
                    name=name, installer=viewer.id, installed_at=time.time()))
            summary["installs"] += 1
        except IntegrityError:
            pass  # installed by this user before: counted then
        return summary

    def files_of(self, summary: dict[str, Any]) -> dict[str, Any]:
        """``summary`` with the version's files, checked against its hash."""
        code = self.files.code_dir(summary["sha256"])
        files = {path.relative_to(code).as_posix(): path.read_bytes()
                 for path in code.rglob("*") if path.is_file()}
        if content_sha256(files) != summary["sha256"]:
            raise NotFound(f"the stored files of {summary['name']}@{summary['version']} do not "
                           "match their hash: the template cannot be installed")
        return {**summary, "files_b64": encode_files(files)}

    def rate(self, name: str, stars: int, viewer: Viewer) -> dict[str, Any]:
        if not 1 <= stars <= 5:
            raise InvalidInput("a rating is 1 to 5 stars")
        summary = self.show(name, viewer, readme=False)
        if summary["status"] != APPROVED:
            raise InvalidInput("only an approved template can be rated")
        with self.engine.begin() as conn:
            conn.execute(delete(t.template_ratings).where(t.template_ratings.c.name == name,
                                                          t.template_ratings.c.rater == viewer.id))
            conn.execute(insert(t.template_ratings).values(name=name, rater=viewer.id,
                                                           stars=stars, rated_at=time.time()))
        return self.show(name, viewer, readme=False)["rating"]  # type: ignore[no-any-return]

    # remote sources ------------------------------------------------------------------

    def sources(self) -> list[str]:
        with self.engine.connect() as conn:
            return [row.url for row in conn.execute(
                select(t.template_sources).order_by(t.template_sources.c.added_at)).all()]

    def add_source(self, url: str, viewer: Viewer) -> list[str]:
        if not viewer.owner:
            raise Forbidden("only the platform owner adds template sources")
        with self.engine.begin() as conn:
            if conn.execute(select(t.template_sources).where(t.template_sources.c.url == url)).first():
                return self.sources()
            conn.execute(insert(t.template_sources).values(url=url, added_at=time.time()))
        return self.sources()

    def remove_source(self, url: str, viewer: Viewer) -> bool:
        if not viewer.owner:
            raise Forbidden("only the platform owner removes template sources")
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(t.template_sources)
                                     .where(t.template_sources.c.url == url)).rowcount)


def _haystack(summary: dict[str, Any]) -> str:
    return " ".join([summary["name"], summary["title"], summary["description"],
                     *summary["tags"], summary["runtime"]]).lower()


def _advisory_ids(scan: dict[str, Any]) -> set[str]:
    """The advisories a stored scan result names."""
    return {str(advisory.get("id")) for package in scan.get("packages") or []
            for advisory in package.get("advisories") or []}
