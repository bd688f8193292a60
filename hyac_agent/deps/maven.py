"""Java dependencies: Maven coordinates resolved offline from directory repositories.

Only PyPI-like indexes and npm are reachable from many agents, never Maven Central, so
the java17 runtime resolves from *directory repositories* the operator fills
(``HYAC_MAVEN_REPOS``, a ``:``-separated list; default Debian's ``/usr/share/maven-repo``,
which ``apt-get install libcommons-lang3-java`` and the like fill, then
``~/.m2/repository``). Nothing is downloaded and no package code runs: resolving reads
POM files, installing copies jars whose sha256 the lock records.

A requirement is ``groupId:artifactId:version``. The resolver follows each POM's
compile and runtime dependencies (not test, provided, system or optional ones); two
different versions of one artifact anywhere in the graph are refused
(``dependency_conflict``), as two pins of one Python package are: Maven's own
"nearest wins" would silently pick one. Versions Debian writes as aliases (``debian``,
``3.x``) that are the same jar as a numbered version count as that version.

The lock is one line per jar, sorted: ``group:artifact:version sha256=HEX``.
"""

from __future__ import annotations

import hashlib
import os
import re
import xml.etree.ElementTree as ET  # noqa: S405 - POMs from the operator's own repositories
from dataclasses import dataclass
from pathlib import Path

from hyac_common.errors import DependencyConflict, DependencyRefused, InstallFailed

DEFAULT_REPOS = ("/usr/share/maven-repo", "~/.m2/repository")
_PART = r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}"
_COORD = re.compile(rf"^({_PART}):({_PART}):({_PART})$")
_LOCK_LINE = re.compile(rf"^({_PART}):({_PART}):({_PART}) sha256=([0-9a-f]{{64}})$")
_MAX_ARTIFACTS = 500


@dataclass(frozen=True)
class Artifact:
    group: str
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.group}:{self.name}:{self.version}"

    @property
    def key(self) -> str:
        return f"{self.group}:{self.name}"

    def folder(self, repo: Path) -> Path:
        return repo.joinpath(*self.group.split("."), self.name, self.version)

    @property
    def file_stem(self) -> str:
        return f"{self.name}-{self.version}"


def repositories(setting: str = "") -> list[Path]:
    """The directory repositories, in order (``HYAC_MAVEN_REPOS``, AgentConfig.maven_repos)."""
    names = [p for p in setting.split(":") if p] or list(DEFAULT_REPOS)
    return [Path(os.path.expanduser(n)) for n in names]


def parse_requirement(text: str) -> Artifact:
    """``group:artifact:version``; anything else (URLs, ranges, paths) is refused."""
    match = _COORD.match(text.strip())
    if not match or ".." in text:
        raise DependencyRefused(
            f"{text.strip()[:100]!r} is not a Maven coordinate: use groupId:artifactId:version "
            "(e.g. org.apache.commons:commons-lang3:3.12.0)"
        )
    return Artifact(*match.groups())


def check_requirements(requirements: list[str]) -> list[Artifact]:
    """Parse every requirement; two versions of one artifact are a conflict."""
    found: dict[str, Artifact] = {}
    for text in requirements:
        artifact = parse_requirement(text)
        other = found.get(artifact.key)
        if other is not None and other.version != artifact.version:
            raise DependencyConflict(
                f"conflicting requirements: {other} and {artifact} (one version of an artifact)"
            )
        found[artifact.key] = artifact
    return list(found.values())


def _locate(artifact: Artifact, repos: list[Path]) -> tuple[Path, Path | None]:
    """(jar, pom) of an artifact in the first repository that holds its jar."""
    for repo in repos:
        folder = artifact.folder(repo)
        jar = folder / f"{artifact.file_stem}.jar"
        if jar.is_file():
            pom = folder / f"{artifact.file_stem}.pom"
            return jar, pom if pom.is_file() else None
    where = ", ".join(str(r) for r in repos)
    raise InstallFailed(
        f"{artifact} is not in the agent's Maven repositories ({where}); the agent resolves "
        "offline: the operator adds it there (Debian: apt-get install its lib…-java package)"
    )


def _text(element: ET.Element | None, tag: str, ns: str) -> str:
    found = element.find(f"{ns}{tag}") if element is not None else None
    return (found.text or "").strip() if found is not None else ""


def _unversioned(group: str, name: str, repos: list[Path], pinned: dict[str, str]) -> str:
    """The version of a dependency whose POM leaves it to a parent's dependencyManagement:
    the user's own pin, else the repository's only version (Debian's ``debian`` alias
    when there are several), else ""."""
    if f"{group}:{name}" in pinned:
        return pinned[f"{group}:{name}"]
    for repo in repos:
        folder = repo.joinpath(*group.split("."), name)
        if not folder.is_dir():
            continue
        versions = sorted(v.name for v in folder.iterdir() if v.is_dir())
        if "debian" in versions:
            return "debian"
        if len(versions) == 1:
            return versions[0]
    return ""


def _dependencies(pom: Path, own: Artifact, repos: list[Path] | None = None,
                  pinned: dict[str, str] | None = None) -> list[Artifact]:
    """The compile and runtime dependencies a POM declares, with properties replaced."""
    try:
        root = ET.parse(pom).getroot()  # noqa: S314
    except (ET.ParseError, OSError) as exc:
        raise InstallFailed(f"the POM of {own} cannot be read: {exc}") from None
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    props = {"project.version": own.version, "version": own.version,
             "project.groupId": own.group, "pom.version": own.version}
    parent = root.find(f"{ns}parent")
    if parent is not None:
        props["project.parent.version"] = _text(parent, "version", ns)
    properties = root.find(f"{ns}properties")
    if properties is not None:
        for prop in properties:
            props[prop.tag[len(ns):]] = (prop.text or "").strip()

    def expand(value: str) -> str:
        for _ in range(5):
            value = re.sub(r"\$\{([^}]+)\}", lambda m: props.get(m.group(1), m.group(0)), value)
        return value

    found = []
    deps = root.find(f"{ns}dependencies")
    for dep in deps if deps is not None else []:
        scope = _text(dep, "scope", ns) or "compile"
        if scope not in ("compile", "runtime") or _text(dep, "optional", ns) == "true":
            continue
        group, name = expand(_text(dep, "groupId", ns)), expand(_text(dep, "artifactId", ns))
        version = expand(_text(dep, "version", ns))
        if not version and repos is not None:
            version = _unversioned(group, name, repos, pinned or {})
        if not version or "$" in version or not _COORD.match(f"{group}:{name}:{version}"):
            raise InstallFailed(f"{own} needs {group}:{name} at a version its POM does not "
                                f"state ({version or 'none'}), and the agent's Maven "
                                "repositories do not hold it in a single version: require "
                                "it explicitly (group:artifact:version)")
        found.append(Artifact(group, name, version))
    return found


def resolve(requirements: list[str], repos: list[Path]) -> str:
    """The lock of ``requirements``: every jar of the graph with its sha256."""
    direct = check_requirements(requirements)
    pinned = {a.key: a.version for a in direct}
    queue = [(a, str(a)) for a in direct]
    chosen: dict[str, tuple[Artifact, str, Path]] = {}  # key -> (artifact, via, real jar)
    while queue:
        artifact, via = queue.pop(0)
        jar, pom = _locate(artifact, repos)
        real = jar.resolve()
        seen = chosen.get(artifact.key)
        if seen is not None:
            if seen[2] != real and seen[0].version != artifact.version:
                raise DependencyConflict(
                    f"conflicting versions of {artifact.key}: {seen[0].version} (from {seen[1]}) "
                    f"and {artifact.version} (from {via})"
                )
            continue
        chosen[artifact.key] = (artifact, via, real)
        if len(chosen) > _MAX_ARTIFACTS:
            raise InstallFailed(f"the dependencies need more than {_MAX_ARTIFACTS} jars")
        if pom is not None:
            queue += [(dep, f"{via} -> {dep}")
                      for dep in _dependencies(pom, artifact, repos, pinned)]
    lines = []
    for artifact, _via, real in chosen.values():
        digest = hashlib.sha256(real.read_bytes()).hexdigest()
        lines.append(f"{artifact} sha256={digest}")
    return "".join(f"{line}\n" for line in sorted(lines))


def parse_lock(lock: str) -> list[tuple[Artifact, str]]:
    """(artifact, sha256) of every lock line; anything else is refused."""
    entries = []
    for line in lock.splitlines():
        if not line.strip():
            continue
        match = _LOCK_LINE.match(line.strip())
        if not match:
            raise DependencyRefused(f"invalid Java lock line {line.strip()[:100]!r}: expected "
                                    "group:artifact:version sha256=HEX")
        entries.append((Artifact(*match.groups()[:3]), match.group(4)))
    return entries


def install(lock: str, target: Path, repos: list[Path]) -> None:
    """Copy the lock's jars into ``target/lib``, each checked against its sha256."""
    lib = target / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    for artifact, expected in parse_lock(lock):
        jar, _pom = _locate(artifact, repos)
        data = jar.read_bytes()
        if hashlib.sha256(data).hexdigest() != expected:
            raise InstallFailed(f"{artifact} in the Maven repository is not the jar the lock "
                                "recorded (its sha256 changed)")
        out = lib / f"{artifact.group}.{artifact.file_stem}.jar"
        with open(out, "wb") as fh:
            fh.write(data)
