"""The installers: resolve requirements into a lock, install a lock into a folder.

Python: ``uv pip compile`` (pinned, with hashes) and ``uv pip install --target`` where
uv is installed; ``pip install --dry-run --report`` and ``pip install --target``
otherwise. Node: ``npm install --package-lock-only`` and ``npm ci``. Each runs through
``run_sandboxed``; a failure carries the installer's own message.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from hyac_agent.deps.sandbox import run_sandboxed
from hyac_agent.runtimes import Runtime
from hyac_common.errors import HyacError, InvalidInput

_CONFLICT_MARKERS = ("unsatisfiable", "ResolutionImpossible", "conflict", "ERESOLVE",
                     "No solution found", "Cannot install")


class DependencyConflict(InvalidInput):
    """The requirements cannot all be satisfied together."""

    code = "dependency_conflict"


class InstallFailed(HyacError):
    """The installer failed (network, a missing package, a failing build step)."""

    code = "dependency_install_failed"
    status = 422


def _installer_error(what: str, output: str) -> HyacError:
    text = _clean(output)
    if any(marker in text for marker in _CONFLICT_MARKERS):
        return DependencyConflict(f"conflicting requirements: {text}")
    return InstallFailed(f"{what} failed: {text}")


def _clean(output: str) -> str:
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip() for line in output.splitlines()]
    lines = [line for line in lines if line.strip() and not line.startswith("npm notice")]
    return "\n".join(lines[-25:]) or "no output"


def uv_binary() -> str | None:
    found = shutil.which("uv") or shutil.which("uv", path=os.path.dirname(sys.executable))
    return os.path.realpath(found) if found else None


# -- Python -------------------------------------------------------------------------------


def python_lock(runtime: Runtime, requirements: list[str], sandboxed: bool) -> str:
    """Pinned requirements (``name==version`` with hashes under uv) for ``runtime``."""
    text = "".join(f"{line}\n" for line in requirements)
    with tempfile.TemporaryDirectory(prefix="hyac-resolve-") as work:
        uv = uv_binary()
        if uv:
            result = run_sandboxed(
                [uv, "pip", "compile", "-", "--python", str(runtime.interpreter), "--no-header",
                 "--no-annotate", "--generate-hashes", "--quiet", "--cache-dir", "/tmp/uv"],
                writable=Path(work), readable=[Path(uv), runtime.prefix], input_text=text,
                sandboxed=sandboxed,
            )
            if result.returncode != 0:
                raise _installer_error("resolving the requirements", result.stderr + result.stdout)
            return result.stdout
        Path(work, "requirements.txt").write_text(text)
        result = run_sandboxed(
            [str(runtime.interpreter), "-m", "pip", "install", "--dry-run", "--ignore-installed",
             "--quiet", "--report", "-", "-r", f"{work}/requirements.txt"],
            writable=Path(work), readable=[runtime.prefix], sandboxed=sandboxed,
        )
        if result.returncode != 0:
            raise _installer_error("resolving the requirements", result.stderr + result.stdout)
        report = json.loads(result.stdout)
        pins = sorted(
            f"{item['metadata']['name']}=={item['metadata']['version']}"
            for item in report.get("install", [])
        )
        return "".join(f"{pin}\n" for pin in pins)


def python_install(runtime: Runtime, lock: str, target: Path, sandboxed: bool) -> None:
    """Install exactly ``lock`` (no resolution, no extra dependencies) into ``target``."""
    (target / ".hyac-lock.txt").write_text(lock)
    uv = uv_binary()
    if uv:
        argv = [uv, "pip", "install", "--target", str(target / "site"), "--python",
                str(runtime.interpreter), "--no-deps", "--quiet", "--cache-dir", "/tmp/uv",
                "--no-compile", "-r", str(target / ".hyac-lock.txt")]
        if "--hash=" in lock:
            argv.insert(3, "--require-hashes")
        readable = [Path(uv), runtime.prefix]
    else:
        argv = [str(runtime.interpreter), "-m", "pip", "install", "--no-deps", "--quiet",
                "--no-compile", "--target", str(target / "site"), "-r",
                str(target / ".hyac-lock.txt")]
        readable = [runtime.prefix]
    result = run_sandboxed(argv, writable=target, readable=readable, sandboxed=sandboxed)
    if result.returncode != 0:
        raise _installer_error("installing the requirements", result.stderr + result.stdout)


# -- Node ---------------------------------------------------------------------------------


def _npm() -> tuple[str, Path]:
    npm = shutil.which("npm")
    if npm is None:
        raise InstallFailed("npm is not installed on this agent (apt-get install npm)")
    real = Path(os.path.realpath(npm))
    # npm is a script of the node install: bind its whole package (e.g. /usr/share/nodejs).
    return npm, real.parent.parent


def package_json(requirements: list[str], existing: bytes | None) -> dict[str, object]:
    """package.json of the environment: the function's own, plus ``requirements``."""
    data: dict[str, object] = {}
    if existing:
        try:
            loaded = json.loads(existing)
        except ValueError as exc:
            raise InvalidInput(f"package.json is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise InvalidInput("package.json must hold a JSON object")
        data = {k: loaded[k] for k in ("dependencies", "overrides") if k in loaded}
    deps = dict(data.get("dependencies") or {})  # type: ignore[call-overload]
    for requirement in requirements:
        name, version = _split_npm(requirement)
        if name in deps and deps[name] != version:
            raise DependencyConflict(
                f"conflicting requirements: {name}@{deps[name]} and {name}@{version}"
            )
        deps[name] = version
    return {"name": "hyac-deps", "private": True, "dependencies": dict(sorted(deps.items()))}


def _split_npm(requirement: str) -> tuple[str, str]:
    body = requirement[1:] if requirement.startswith("@") else requirement
    name, sep, version = body.partition("@")
    name = ("@" + name) if requirement.startswith("@") else name
    return name, version if sep and version else "*"


def npm_lock(manifest: dict[str, object], sandboxed: bool) -> str:
    npm, npm_home = _npm()
    with tempfile.TemporaryDirectory(prefix="hyac-resolve-") as work:
        Path(work, "package.json").write_text(json.dumps(manifest, indent=2))
        result = run_sandboxed(
            [npm, "install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund",
             "--cache", "/tmp/npm"],
            writable=Path(work), readable=[npm_home], sandboxed=sandboxed,
        )
        if result.returncode != 0:
            raise _installer_error("resolving the dependencies", result.stderr + result.stdout)
        return Path(work, "package-lock.json").read_text()


def npm_install(manifest: dict[str, object], lock: str, target: Path, sandboxed: bool) -> None:
    npm, npm_home = _npm()
    (target / "package.json").write_text(json.dumps(manifest, indent=2))
    (target / "package-lock.json").write_text(lock)
    result = run_sandboxed(
        [npm, "ci", "--no-audit", "--no-fund", "--cache", "/tmp/npm"],
        writable=target, readable=[npm_home], sandboxed=sandboxed,
    )
    if result.returncode != 0:
        raise _installer_error("installing the dependencies", result.stderr + result.stdout)
