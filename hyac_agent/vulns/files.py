"""The packages a set of project files pins, for scans before anything is resolved:
``hyac scan --local`` and published templates.

Python: ``requirements`` lists of hyac.toml and every ``requirements.txt``; a
requirement pinned with ``==`` has its version, any other has none (the deploy's
resolver picks it) and scans as unknown. npm: every ``package-lock.json``, else the
``dependencies`` of ``package.json`` (exact versions only). Lines that are not
requirements (options, URLs) are left to the deploy, which refuses them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

from hyac_agent.vulns.sources import Package

_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:==\s*([A-Za-z0-9.+!_-]+))?")
_NAME = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXACT = re.compile(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?")


def ecosystem_of_runtime(runtime: str) -> str:
    return "PyPI" if runtime.startswith("python") else "npm"


def pinned_packages(files: dict[str, bytes], runtime: str,
                    requirements: Iterable[str] = ()) -> tuple[str, list[Package]]:
    """(ecosystem, packages) the files pin; no packages: nothing to scan."""
    ecosystem = ecosystem_of_runtime(runtime)
    found: dict[str, str | None] = {}
    if ecosystem == "PyPI":
        lines = list(requirements) + _toml_requirements(files.get("hyac.toml"))
        for path, data in sorted(files.items()):
            if PurePosixPath(path).name == "requirements.txt":
                lines += data.decode("utf-8", "replace").splitlines()
        for line in lines:
            line = line.split("#", 1)[0].split(";", 1)[0].strip()
            match = _PIN.fullmatch(line)
            if match is None:
                loose = _NAME.match(line)
                if loose and not line.startswith("-") and "://" not in line and "@" not in line:
                    found.setdefault(loose.group(1), None)  # a range: the resolver decides
                continue
            if found.get(match.group(1)) is None:
                found[match.group(1)] = match.group(2)
        return ecosystem, sorted(found.items())
    locks = [data for path, data in sorted(files.items())
             if PurePosixPath(path).name == "package-lock.json"]
    pairs: set[tuple[str, str | None]] = set()
    for data in locks:
        for key, info in _json(data).get("packages", {}).items():
            if key and isinstance(info, dict) and not info.get("link"):
                version = info.get("version")
                pairs.add((key.rsplit("node_modules/", 1)[-1],
                           version if isinstance(version, str) else None))
    if not locks:
        for path, data in sorted(files.items()):
            if PurePosixPath(path).name == "package.json":
                for name, spec in (_json(data).get("dependencies") or {}).items():
                    spec = str(spec)
                    pairs.add((str(name), spec if _EXACT.fullmatch(spec) else None))
        pairs |= {(name, None) for name in requirements}
    return ecosystem, sorted(pairs, key=lambda p: (p[0], p[1] or ""))


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _toml_requirements(data: bytes | None) -> list[str]:
    if not data:
        return []
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        manifest = tomllib.loads(data.decode("utf-8", "replace"))
    except ValueError:
        return []
    found: list[str] = []
    tables = [manifest.get("project") or {}, *(manifest.get("functions") or {}).values()]
    for table in tables:
        if isinstance(table, dict) and isinstance(table.get("requirements"), list):
            found += [str(r) for r in table["requirements"]]
    return found
