"""Deploy, list, roll back and remove functions."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from hyac_agent.bundles import BundleStore, bundle_sha256, decode_bundle, pack
from hyac_agent.runtimes import Runtime, resolve
from hyac_agent.services.syntax import SyntaxChecks
from hyac_agent.store import FunctionRecord, Store, VersionRecord, owned_elsewhere
from hyac_common.errors import (
    HyacError,
    InvalidInput,
    NotFound,
    RuntimeChanged,
)
from hyac_common.names import validate_name
from hyac_common.wire import (
    DependencyInfo,
    DeployRequest,
    DeployResult,
    FunctionSummary,
    VersionInfo,
)

if TYPE_CHECKING:
    from hyac_agent.deps import DependencyStore

#: below this no interpreter starts (and Docker refuses limits under 6 MB)
MIN_MEMORY_BYTES = 16 * 1024 * 1024

def _language_of(runtime_name: str) -> str | None:
    """The language of a runtime a version was deployed on (None: no longer known here)."""
    try:
        return resolve(runtime_name).language
    except HyacError:
        return None


class FunctionService:
    def __init__(
        self,
        store: Store,
        bundles: BundleStore,
        deps: DependencyStore,
        default_runtime: Callable[[], str],
        max_bundle_bytes: int,
    ) -> None:
        self.store = store
        self.bundles = bundles
        #: dependency environments: a version's requirements are installed at deploy
        self.deps = deps
        #: the agent's default runtime (``hyac runtime default``), for deploys naming none
        self.default_runtime = default_runtime
        self.max_bundle_bytes = max_bundle_bytes
        #: compiles new Python bundles with their runtime's interpreter before they deploy
        self.syntax = SyntaxChecks()
        # Active versions cached for the invoke path; every change below goes through here.
        self._active: dict[tuple[str, str], VersionRecord] = {}
        # Counts the changes of active versions: a store read that overlapped one may be
        # stale (concurrent deploys end in any order), and is then not cached.
        self._changes = 0

    async def deploy(self, tenant: str, name: str, request: DeployRequest) -> DeployResult:
        validate_name(name)
        memory = request.config.memory
        if memory is not None and memory < MIN_MEMORY_BYTES:
            raise InvalidInput(f"memory {memory} bytes is too little: a sandbox needs at least "
                               f"{MIN_MEMORY_BYTES // (1024 * 1024)} MiB")
        files = decode_bundle(request, self.max_bundle_bytes)
        if "runtime" not in request.config.model_fields_set:
            # No runtime named: the agent's default (`hyac runtime default`) is pinned.
            request.config.runtime = self.default_runtime()
        runtime = await asyncio.to_thread(resolve, request.config.runtime)
        await asyncio.to_thread(self._check_owner, tenant, name, request, runtime)
        sha = bundle_sha256(files, request)
        existing = await asyncio.to_thread(self.store.version_with, tenant, name, sha)
        if not self.bundles.exists(sha) and runtime.language == "python":
            await asyncio.to_thread(self.syntax.check, runtime.interpreter, files)
        # Dependencies are resolved and installed before anything is recorded: a conflict
        # or a failing install leaves the active version as it was. Redeploying a version
        # reuses its stored lock, so it gets exactly the same environment.
        config = request.config
        from hyac_agent.deps import check_client_lock, collect_requirements
        from hyac_agent.vulns import check_deploy, check_pins

        # A stored lock is the agent's own; a client's is held to pins of the index.
        lock = existing.config.lock if existing is not None else (
            check_client_lock(runtime, config.lock) if config.lock else None
        )
        requirements, package_json = collect_requirements(
            runtime, request.entry, files, config.requirements
        )
        # The advisory database knows PyPI and npm; Maven locks are not scanned (yet).
        scanned_ecosystem = runtime.installer in ("pip", "npm")
        if lock is None and scanned_ecosystem:
            # Exact pins a vulnerability policy refuses: refused before resolving.
            await check_pins(self.store, tenant, name, runtime.name, requirements,
                             package_json)

        async def scanned(resolved: str) -> None:
            # The whole lock, before any environment is built: the policy may refuse it.
            await check_deploy(self.store, tenant, name, resolved)

        prepared = await self.deps.prepare(runtime, requirements, package_json, lock,
                                           before_install=scanned if scanned_ecosystem else None)
        if prepared is not None:
            config = config.model_copy(update={"lock": prepared.lock})
        if not self.bundles.exists(sha) and runtime.language == "java":
            # Compiled against the resolved jars, in the sandbox: an error deploys nothing.
            from hyac_agent.deps.compile import check_java

            # Its classes travel in the bundle: workers load them without compiling.
            files = {**files, **await asyncio.to_thread(
                check_java, runtime, files, request.entry,
                prepared.path if prepared is not None else None, self.deps.sandboxed)}
        if not self.bundles.exists(sha):
            await asyncio.to_thread(self.bundles.write, sha, files)
        # The bundle is complete on disk before the store points at it, and the shared
        # copy is written in the same transaction as the version: a crash at any moment
        # leaves either the old version active or the new one whole, on every node.
        before = await asyncio.to_thread(self.store.get_function, tenant, name)
        changes = self._changes
        version, created = await asyncio.to_thread(functools.partial(
            self.store.record_deploy, tenant, name, sha, request.entry, config,
            project=request.project, take_over=request.force, bundle=pack(files),
            sample=request.sample,
        ))
        self._changed(tenant, name, version if self._changes == changes else None)
        return DeployResult(
            name=name, version=version.number, sha256=sha, created=created,
            active_version=version.number,
            previous_version=before.active_version if before is not None else None,
            dependencies=DependencyInfo(
                env=prepared.env_id, installed=prepared.installed, packages=prepared.packages
            ) if prepared is not None else None,
        )

    def close(self) -> None:
        self.syntax.close()

    def _check_owner(self, tenant: str, name: str, request: DeployRequest, runtime: Runtime
                     ) -> None:
        """A project's deploy never silently replaces another project's function, nor a
        function in another language (``hello`` in Python by ``hello`` in JavaScript):
        refused before anything is installed, unless ``force``. Deploys naming no
        project (plain API calls) are the caller's own business."""
        if request.project is None or request.force:
            return
        record = self.store.get_function(tenant, name)
        if record is None:
            return
        if record.project is not None and record.project != request.project:
            raise owned_elsewhere(name, record.project, request.project)
        active = self.store.get_version(tenant, name)
        if active is None or active.runtime == runtime.name:
            return
        language = _language_of(active.runtime)
        if language is not None and language != runtime.language:
            raise RuntimeChanged(
                f"function {name!r} runs on {active.runtime}; deploying it on {runtime.name} "
                f"replaces its code with another language's: deploy with --force to do so",
                runtime=active.runtime, new_runtime=runtime.name,
            )

    def runtime_users(self, runtime: str) -> list[str]:
        """``tenant/function`` of every function with a version on ``runtime``."""
        users = []
        for tenant in self.store.function_tenants():
            for record in self.store.list_functions(tenant):
                versions = self.store.list_versions(tenant, record.name)
                if any(v.runtime == runtime for v in versions):
                    users.append(f"{tenant}/{record.name}")
        return sorted(users)

    async def active_version(self, tenant: str, name: str) -> VersionRecord:
        cached = self._active.get((tenant, name))
        if cached is not None:
            return cached
        validate_name(name)
        changes = self._changes
        version = await asyncio.to_thread(self.store.get_version, tenant, name)
        if version is None:
            raise NotFound(f"function {name!r} not found in tenant {tenant!r}")
        if self._changes == changes:
            self._active[(tenant, name)] = version
        return version

    def _changed(self, tenant: str, name: str, active: VersionRecord | None) -> None:
        """The active version of ``tenant/name`` changed to ``active``; None: to one the
        store knows (another change overlapped this one's, so which came last is the
        store's word)."""
        self._changes += 1
        if active is None:
            self._active.pop((tenant, name), None)
        else:
            self._active[(tenant, name)] = active

    def forget(self, tenant: str, name: str) -> None:
        """Drop the cached active version (it changed, maybe on another agent)."""
        self._changed(tenant, name, None)

    def summary(self, record: FunctionRecord, active: VersionRecord | None) -> FunctionSummary:
        return FunctionSummary(
            name=record.name,
            active_version=record.active_version,
            versions=record.versions,
            runtime=active.runtime if active else "",
            sha256=active.sha256 if active else "",
            updated_at=record.updated_at,
            project=record.project,
        )

    def list_functions(self, tenant: str) -> list[FunctionSummary]:
        return [
            self.summary(r, self.store.get_version(tenant, r.name))
            for r in self.store.list_functions(tenant)
        ]

    def get(self, tenant: str, name: str) -> FunctionSummary:
        validate_name(name)
        record = self.store.get_function(tenant, name)
        if record is None:
            raise NotFound(f"function {name!r} not found in tenant {tenant!r}")
        return self.summary(record, self.store.get_version(tenant, name))

    def versions(self, tenant: str, name: str) -> list[VersionInfo]:
        summary = self.get(tenant, name)
        return [
            VersionInfo(
                version=v.number, sha256=v.sha256, runtime=v.runtime, created_at=v.created_at,
                active=v.number == summary.active_version, entry=v.entry, config=v.config,
                sample=v.sample,
            )
            for v in self.store.list_versions(tenant, name)
        ]

    def rollback(self, tenant: str, name: str, number: int) -> VersionRecord:
        validate_name(name)
        version = self.store.set_active_version(tenant, name, number)
        self._changed(tenant, name, None)  # it may run on a thread, beside a deploy
        return version

    def remove(self, tenant: str, name: str) -> list[str]:
        """Remove the function with its versions and edge settings; the hosts of the
        custom domains that were bound to it (removed with it)."""
        validate_name(name)
        self._changed(tenant, name, None)
        domains = self.store.delete_function(tenant, name)
        if domains is None:
            raise NotFound(f"function {name!r} not found in tenant {tenant!r}")
        self._changed(tenant, name, None)
        return domains
