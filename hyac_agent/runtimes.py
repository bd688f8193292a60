"""Runtimes: the interpreters that run functions, found from ``runtimes/*/runtime.toml``.

A runtime name is ``<family><version>``, e.g. ``python3.12``. For the process-based
backends the agent needs a host interpreter for that version; it looks, in order, at
``HYAC_PYTHON3_12`` (an explicit path), the agent's own interpreter, ``python3.12`` on
``PATH``, and the usual install prefixes (pyenv, /usr/local, /usr).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from hyac_common.errors import InvalidInput
from hyac_common.paths import runtimes_dir

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

_RUNTIME_RE = re.compile(r"^([a-z]+)(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class Runtime:
    name: str  # python3.12
    family: str  # python
    version: str  # 3.12
    folder: Path  # runtimes/python
    bootstrap: Path
    interpreter: Path  # resolved real path on the host
    prefix: Path  # the interpreter's installation prefix (its stdlib lives here)

    def command(self, runtime_mount: str) -> list[str]:
        """The command that starts the worker, with the runtime folder at ``runtime_mount``."""
        return [str(self.interpreter), "-I", "-B", f"{runtime_mount}/{self.bootstrap.name}"]


def _family_manifest(family: str) -> dict:
    path = runtimes_dir() / family / "runtime.toml"
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InvalidInput(f"unknown runtime family {family!r}") from None


def _candidates(version: str) -> list[str]:
    env = os.environ.get("HYAC_PYTHON" + version.replace(".", "_"))
    found = [env] if env else []
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        found.append(sys.executable)
    which = shutil.which(f"python{version}")
    if which:
        found.append(which)
    for pattern in (
        os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}"),
        f"/root/.pyenv/versions/{version}.*/bin/python{version}",
        f"/usr/local/bin/python{version}",
        f"/usr/bin/python{version}",
    ):
        found.extend(sorted(glob.glob(pattern), reverse=True))
    return found


@lru_cache(maxsize=64)
def _probe(interpreter: str) -> tuple[str, str] | None:
    """(real executable, base prefix) of a working interpreter, else None."""
    try:
        out = subprocess.run(
            [interpreter, "-I", "-c", "import sys; print(sys.executable); print(sys.base_prefix)"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return None
    return os.path.realpath(out[0]), os.path.realpath(out[1])


def resolve(name: str) -> Runtime:
    """The runtime called ``name``, or InvalidInput saying why it cannot run here."""
    match = _RUNTIME_RE.match(name)
    if not match:
        raise InvalidInput(f"invalid runtime {name!r} (expected e.g. 'python3.12')")
    family, version = match.groups()
    manifest = _family_manifest(family)
    versions = [str(v) for v in manifest.get("versions", [])]
    if version not in versions:
        raise InvalidInput(
            f"runtime {name!r} is not supported; {family} versions: {', '.join(versions)}"
        )
    folder = runtimes_dir() / family
    bootstrap = folder / manifest.get("bootstrap", "bootstrap.py")
    for candidate in _candidates(version):
        probed = _probe(candidate)
        if probed:
            return Runtime(name, family, version, folder, bootstrap, Path(probed[0]), Path(probed[1]))
    raise InvalidInput(
        f"runtime {name!r} is not installed on this agent: no python{version} interpreter found "
        f"(install it, or set HYAC_PYTHON{version.replace('.', '_')} to its path)"
    )


def available() -> dict[str, str | None]:
    """Every known runtime name → its interpreter path, or None when missing."""
    result: dict[str, str | None] = {}
    for manifest_path in sorted(runtimes_dir().glob("*/runtime.toml")):
        family = manifest_path.parent.name
        for version in _family_manifest(family).get("versions", []):
            name = f"{family}{version}"
            try:
                result[name] = str(resolve(name).interpreter)
            except InvalidInput:
                result[name] = None
    return result
