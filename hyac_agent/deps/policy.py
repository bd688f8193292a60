"""What a tenant may ask the installers for, checked before any installer runs.

A requirement names a package of the configured index: ``name[extras] specifiers ;
markers``. Everything else a requirements file can say would let a tenant choose where
code comes from or how the installer behaves: direct URLs (``pkg @ http://…``), VCS
(``git+…``) and local paths (``./pkg``, ``file:``) and option lines (``--index-url``,
``-e``, ``-f``…). Options are always refused; http(s) direct URLs only when the platform
owner allows them (HYAC_DEPS_ALLOW_DIRECT_URLS=1); VCS and local paths always.

A lock sent by a client is never trusted for where packages come from: Python locks are
``name==version`` lines with hashes, npm locks resolve every package from the configured
registry with an integrity hash. Locks the agent made itself (stored with a version) may
also hold the direct URLs the owner allowed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from hyac_common.errors import DependencyRefused

ALLOW_DIRECT_URLS_ENV = "HYAC_DEPS_ALLOW_DIRECT_URLS"

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_EXTRAS = r"(?:\[\s*" + _NAME + r"(?:\s*,\s*" + _NAME + r")*\s*\])?"
_SPEC = r"(?:~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+"
_SPECS = r"(?:\(?\s*" + _SPEC + r"(?:\s*,\s*" + _SPEC + r")*\s*\)?)?"
_MARKER = r"(?:;[\w\s.'\"<>=!~()-]*)?"
_REQUIREMENT = re.compile(rf"\s*({_NAME})\s*{_EXTRAS}\s*{_SPECS}\s*{_MARKER}")
_DIRECT = re.compile(
    rf"\s*(?P<name>{_NAME})\s*(?P<extras>{_EXTRAS})\s*@\s*(?P<url>https?://[^\s;#]+)\s*{_MARKER}")
_PIN = re.compile(rf"({_NAME})==([A-Za-z0-9.+!_-]+)")
_HASH = re.compile(r"--hash=(sha256|sha384|sha512):[0-9a-f]+")
_NPM_NAME = re.compile(r"(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*")
_NPM_SPEC = re.compile(r"[\w.*^~<>=|+ -]*")
_NPM_REGISTRY = "https://registry.npmjs.org/"
_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".egg")


@dataclass(frozen=True)
class LockEntry:
    """One package of a Python lock: pinned from the index, or a direct URL."""

    name: str
    version: str | None
    url: str | None
    hashes: tuple[str, ...]

    def line(self) -> str:
        head = f"{self.name} @ {self.url}" if self.url else f"{self.name}=={self.version}"
        return " \\\n    ".join([head, *self.hashes]) + "\n"


def check_requirement(line: str, allow_urls: bool) -> str | None:
    """The direct URL of ``line`` (None for an index requirement); DependencyRefused when
    the line is not a requirement this agent accepts."""
    if "\n" in line or "\\" in line or "--" in line or line.lstrip().startswith("-"):
        word = next((w for w in line.split() if w.startswith("-")), line.strip())
        raise DependencyRefused(f"requirement {word!r}: options are not allowed in "
                                "requirements; list package requirements only")
    match = _REQUIREMENT.fullmatch(line)
    # pip and uv take "x.tar.gz" or "x.whl" for a file beside them, not a project name
    if match is not None and not match.group(1).lower().endswith(_ARCHIVE_SUFFIXES):
        return None
    direct = _DIRECT.fullmatch(line)
    if direct is not None:
        if allow_urls:
            return direct["url"]
        raise DependencyRefused(
            f"requirement {line.strip()!r}: direct URL requirements are not allowed on this "
            f"agent (its owner can set {ALLOW_DIRECT_URLS_ENV}=1)")
    raise DependencyRefused(
        f"requirement {line.strip()!r}: only 'name[extras] specifiers' from the package index "
        "are allowed (no VCS, local path or file: requirements)")


def direct_name(line: str) -> tuple[str, str]:
    """(name, extras such as "[socks]") of a direct-URL requirement."""
    match = _DIRECT.fullmatch(line)
    assert match is not None, line
    return match["name"], match["extras"].replace(" ", "")


def check_requirements(requirements: list[str], allow_urls: bool) -> None:
    for line in requirements:
        check_requirement(line, allow_urls)


def parse_lock(text: str, allow_urls: bool) -> list[LockEntry]:
    """The entries of a Python lock (pip-compile format); DependencyRefused on anything but
    pinned packages with hashes (and, when ``allow_urls``, http(s) direct URLs)."""
    logical = re.sub(r"\\\n", " ", text)
    entries: list[LockEntry] = []
    for number, raw in enumerate(logical.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, *rest = re.split(r"\s+--hash=", line.split(" #", 1)[0].strip())
        hashes = tuple(f"--hash={h}" for h in rest)
        hashed = all(_HASH.fullmatch(h) for h in hashes)
        pin = _PIN.fullmatch(head)
        direct = _DIRECT.fullmatch(head) if allow_urls else None
        if hashed and pin is not None:
            entries.append(LockEntry(pin.group(1), pin.group(2), None, hashes))
            continue
        if hashed and hashes and direct is not None:  # a URL's archive is always pinned
            entries.append(LockEntry(direct["name"], None, direct["url"], hashes))
            continue
        raise DependencyRefused(
            f"lock line {number}: only 'name==version' entries with --hash values are "
            "accepted (no URLs, paths or options)")
    if any(e.hashes for e in entries) and not all(e.hashes for e in entries):
        raise DependencyRefused("lock: every entry needs its --hash when one has")
    return entries


# -- npm ----------------------------------------------------------------------------------


def check_npm_dependency(name: str, spec: object, allow_urls: bool) -> None:
    """A registry range (``^1.2``, ``1.x``, ``latest``); URLs, git, file: and
    ``user/repo`` specs only when the owner allows direct URLs."""
    if not isinstance(name, str) or not _NPM_NAME.fullmatch(name):
        raise DependencyRefused(f"dependency name {name!r} is not an npm package name")
    if isinstance(spec, dict):  # overrides nest
        for key, value in spec.items():
            check_npm_dependency(name if key == "." else key, value, allow_urls)
        return
    if not isinstance(spec, str) or not (_NPM_SPEC.fullmatch(spec) or (
            allow_urls and spec.startswith(("https://", "http://")))):
        raise DependencyRefused(
            f"dependency {name}@{spec}: only version ranges from the npm registry are allowed "
            f"(no URL, git, file: or link: specs; its owner can set {ALLOW_DIRECT_URLS_ENV}=1 "
            "for URLs)")


def check_npm_manifest(manifest: dict[str, object], allow_urls: bool) -> None:
    for section in ("dependencies", "overrides"):
        table = manifest.get(section) or {}
        if not isinstance(table, dict):
            raise DependencyRefused(f"package.json: {section!r} must be an object")
        for name, spec in table.items():
            check_npm_dependency(name, spec, allow_urls)


def registry() -> str:
    url = os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY")
    return (url or _NPM_REGISTRY).rstrip("/") + "/"


def check_npm_lock(text: str, allow_urls: bool) -> tuple[dict[str, object], dict[str, object]]:
    """(package.json, package-lock.json) of a stored npm lock; every package must come
    from the registry with an integrity hash (any URL when ``allow_urls``)."""
    try:
        data = json.loads(text)
        manifest, lock = data["package.json"], data["package-lock.json"]
        packages = lock["packages"]
    except (ValueError, KeyError, TypeError):
        raise DependencyRefused("lock: not an npm lock made by this agent (package.json and a "
                                "package-lock.json of lockfileVersion 2 or later)") from None
    check_npm_manifest(manifest, allow_urls)
    allowed = (registry(), "https://", "http://") if allow_urls else (registry(),)
    for path, info in packages.items():
        if not isinstance(info, dict):
            raise DependencyRefused(f"lock: {path!r} is not a package entry")
        if not path or info.get("inBundle"):
            continue  # the root, and files shipped inside an already-checked package
        resolved = info.get("resolved")
        if (info.get("link") or not info.get("integrity") or not isinstance(resolved, str)
                or not resolved.startswith(allowed)):
            raise DependencyRefused(f"lock: {path} does not come from the npm registry "
                                    f"{registry()} with an integrity hash")
    return manifest, lock
