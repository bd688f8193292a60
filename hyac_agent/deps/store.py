"""Content-addressed dependency environments: one folder per (runtime, lock).

``DEPS_DIR/envs/<sha256>/`` is built in a temporary folder next to it and renamed into
place when complete, so a crash never leaves a half-built environment under its final
name, and concurrent deploys of the same lock build it once (a lock per id). An
environment is never modified after it is complete; any number of functions and
sandboxes share it read-only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hyac_agent.deps import installers, maven, policy
from hyac_agent.runtimes import Runtime
from hyac_common.errors import InvalidInput

REQUIREMENTS_FILE = {"pip": "requirements.txt", "npm": "package.json"}


@dataclass(frozen=True)
class Prepared:
    lock: str  # what the version stores: pinned requirements, or npm's manifest + lock
    env_id: str  # sha256 of (installer, runtime, lock): the environment's folder name
    path: Path
    installed: bool  # False when an existing environment was reused
    packages: int


def collect_requirements(
    runtime: Runtime, entry: str, files: dict[str, bytes], requirements: list[str]
) -> tuple[list[str], bytes | None]:
    """(requirements, package.json bytes) of a function: its settings plus the
    requirements.txt / package.json beside its entry file."""
    folder = PurePosixPath(entry).parent
    found = list(requirements)
    extra: bytes | None = None
    if runtime.installer == "pip":
        text = files.get(str(folder / "requirements.txt"))
        if text is not None:
            for line in text.decode("utf-8", "replace").splitlines():
                line = line.split(" #", 1)[0].strip()
                if line and not line.startswith("#"):
                    found.append(line)  # checked with the settings' own by DependencyStore
    elif runtime.installer == "npm":
        extra = files.get(str(folder / "package.json"))
    return found, extra


def check_client_lock(runtime: Runtime, lock: str) -> str:
    """A lock sent by a client, accepted only as pins of the configured index: Python
    ``name==version`` with hashes, npm packages resolved from the registry (no URLs)."""
    if runtime.installer == "pip":
        policy.parse_lock(lock, allow_urls=False)
    elif runtime.installer == "maven":
        maven.parse_lock(lock)
    elif runtime.installer == "npm":
        policy.check_npm_lock(lock, allow_urls=False)
    return lock


class DependencyStore:
    def __init__(self, root: Path, sandboxed: bool = True, allow_direct_urls: bool = False,
                 maven_repos: str = "") -> None:
        self.root = root
        self.sandboxed = sandboxed
        #: the owner allows direct-URL requirements (HYAC_DEPS_ALLOW_DIRECT_URLS)
        self.allow_direct_urls = allow_direct_urls
        #: directory Maven repositories java17 dependencies resolve from (HYAC_MAVEN_REPOS)
        self.maven_repos = maven.repositories(maven_repos)
        (root / "envs").mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)
        os.chmod(root / "envs", 0o755)
        self._locks: dict[str, asyncio.Lock] = {}
        self.installs = 0  # environments built by this process (tests and /v1/agent read it)

    @staticmethod
    def env_id(runtime: Runtime, lock: str) -> str:
        key = json.dumps([runtime.installer, runtime.name, lock])
        return hashlib.sha256(key.encode()).hexdigest()

    def path(self, env_id: str) -> Path:
        return self.root / "envs" / env_id

    def exists(self, env_id: str) -> bool:
        return (self.path(env_id) / ".complete").exists()

    async def prepare(
        self, runtime: Runtime, requirements: list[str], package_json: bytes | None,
        lock: str | None = None,
        before_install: Callable[[str], Awaitable[None]] | None = None,
    ) -> Prepared | None:
        """Resolve (unless ``lock`` is given) and install; None without dependencies.

        ``before_install`` is awaited with the lock once it is known (given or resolved)
        and before any environment is built: what it raises ends the deploy there.
        Raises DependencyRefused before any installer runs, DependencyConflict or
        InstallFailed before anything is recorded."""
        if not requirements and package_json is None and not lock:
            return None
        if not runtime.installer:
            raise InvalidInput(f"runtime {runtime.name!r} does not support dependencies")
        manifest = self._check(runtime, requirements, package_json)
        if lock is None:
            lock = await asyncio.to_thread(self._resolve, runtime, requirements, manifest)
        if before_install is not None:
            await before_install(lock)
        return await self.ensure(runtime, lock)

    async def ensure(self, runtime: Runtime, lock: str) -> Prepared:
        """The environment of ``lock``: reused when it exists, else built from the lock
        (another agent sharing the store database builds exactly the same one)."""
        # Checked again here: a stored lock may name a URL the owner no longer allows.
        if runtime.installer == "pip":
            policy.parse_lock(lock, self.allow_direct_urls)
        elif runtime.installer == "maven":
            maven.parse_lock(lock)
        else:
            policy.check_npm_lock(lock, self.allow_direct_urls)
        env_id = self.env_id(runtime, lock)
        async with self._locks.setdefault(env_id, asyncio.Lock()):
            installed = False
            if not self.exists(env_id):
                await asyncio.to_thread(self._build, runtime, lock, env_id)
                installed = True
                self.installs += 1
        return Prepared(lock, env_id, self.path(env_id), installed, _count(runtime, lock))

    def _check(
        self, runtime: Runtime, requirements: list[str], package_json: bytes | None
    ) -> dict[str, object] | None:
        """Refuse what this agent does not install from; npm's merged package.json."""
        if runtime.installer == "pip":
            policy.check_requirements(requirements, self.allow_direct_urls)
            return None
        if runtime.installer == "maven":
            maven.check_requirements(requirements)
            return None
        manifest = installers.package_json(requirements, package_json)
        policy.check_npm_manifest(manifest, self.allow_direct_urls)
        return manifest

    def _resolve(
        self, runtime: Runtime, requirements: list[str], manifest: dict[str, object] | None
    ) -> str:
        if runtime.installer == "maven":
            return maven.resolve(requirements, self.maven_repos)
        if manifest is None:
            return installers.python_lock(runtime, requirements, self.sandboxed)
        lock = installers.npm_lock(manifest, self.sandboxed)
        return json.dumps({"package.json": manifest, "package-lock.json": json.loads(lock)},
                          sort_keys=True)

    def _build(self, runtime: Runtime, lock: str, env_id: str) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root / "envs"))
        try:
            os.chmod(tmp, 0o755)
            if runtime.installer == "pip":
                installers.python_install(runtime, lock, tmp, self.sandboxed,
                                          self.allow_direct_urls)
            elif runtime.installer == "maven":
                maven.install(lock, tmp, self.maven_repos)
            else:
                manifest, npm_lock = policy.check_npm_lock(lock, self.allow_direct_urls)
                installers.npm_install(manifest, npm_lock, tmp, self.sandboxed)
            _make_readable(tmp)
            (tmp / ".complete").write_text(env_id)
            final = self.path(env_id)
            if final.exists():  # a leftover of a crashed build
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def sweep_temporary(self) -> None:
        for leftover in (self.root / "envs").glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _count(runtime: Runtime, lock: str) -> int:
    if runtime.installer == "pip":
        return len(policy.parse_lock(lock, allow_urls=True))
    if runtime.installer == "maven":
        return len(maven.parse_lock(lock))
    packages = json.loads(lock)["package-lock.json"].get("packages", {})
    return sum(1 for key in packages if key)


def _make_readable(root: Path) -> None:
    """Sandboxes may run as another uid: everything readable, nothing writable."""
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o644 | (os.stat(path).st_mode & 0o111))
