"""Worker pools: generic pre-started sandboxes per runtime, and one live worker per
function version, specialised from a generic sandbox on first use.

A cold start therefore costs a code load (hard-linking the bundle into the sandbox's own
code directory and sending ``init``), not a sandbox boot; the generic pool is refilled
in the background. A burst of first requests for a version waits on the single
specialisation in flight. A redeploy (a new version of a function that had a live
worker) refills at once: saving under ``hyac dev`` takes one sandbox per save, and the
next save should find its replacement ready. A generic sandbox has never run code when it is specialised,
and a specialised one serves exactly one (tenant, function, content hash) until it is
stopped: sandboxes are never shared across tenants or versions, nor handed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyac_agent.bundles import BundleStore
from hyac_agent.execution.worker import HostCallHandler, Worker
from hyac_agent.logbus import LogBus
from hyac_agent.runtimes import Runtime
from hyac_agent.sandbox import Sandbox, SandboxBackend, SandboxSpec
from hyac_agent.store import VersionRecord
from hyac_agent.waiting import wake_or_timeout
from hyac_common.errors import WorkerCrashed
from hyac_common.protocol import PROTOCOL_VERSION, InitFrame

if TYPE_CHECKING:
    from hyac_agent.deps import DependencyStore
    from hyac_agent.sandbox.limits import ResourceLimits
    from hyac_agent.tenancy import TenancyService

log = logging.getLogger("hyac.pool")

WorkerKey = tuple[str, str, str]  # tenant, function, sha256


@dataclass
class PoolSettings:
    #: generic sandboxes kept ready per warm runtime (0 disables pre-starting)
    size: int = 1
    #: runtimes kept warm from the start; others join once a function asks for them
    runtimes: list[str] = field(default_factory=list)
    #: a generic sandbox older than this is replaced (seconds)
    max_generic_age: float = 3600.0
    #: seconds to wait before refilling, so a refill does not compete with the burst
    #: of work that just took a sandbox (booting one costs a core for a moment)
    refill_delay: float = 1.0
    #: "tenant/function" → live workers kept even when idle (0 or 1: a worker multiplexes)
    min_warm: dict[str, int] = field(default_factory=dict)


@dataclass
class _Generic:
    sandbox: Sandbox
    runtime: Runtime
    started: float


class WorkerPool:
    def __init__(
        self,
        backend: SandboxBackend,
        bundles: BundleStore,
        logbus: LogBus,
        tenancy: TenancyService,
        deps: DependencyStore,
        idle_timeout: float,
        settings: PoolSettings,
    ) -> None:
        self.backend = backend
        self.bundles = bundles
        self.logbus = logbus
        #: the tenancy layer: quota-capped limits, tenant env, per-tenant networks
        self.tenancy = tenancy
        #: dependency environments, mounted into the sandboxes of versions that have some
        self.deps = deps
        self.idle_timeout = idle_timeout
        self.settings = settings
        # Registered by serve_host_calls: the handler is built on the invoke path, which
        # is built on this pool, so it cannot come in through the constructor.
        self._host_calls: HostCallHandler = _not_serving_host_calls
        self._workers: dict[WorkerKey, Worker] = {}
        # Workers taking no new requests, stopped once the requests on them have ended.
        self._draining: set[Worker] = set()
        self._starting: dict[WorkerKey, asyncio.Future[Worker]] = {}
        self._generic: dict[str, list[_Generic]] = {}
        self._warm_runtimes: set[str] = set(self.settings.runtimes)
        self._refilling: dict[str, asyncio.Task[None]] = {}
        # Set to end a refill's wait early (a redeploy took the sandbox, not a burst).
        self._refill_now: dict[str, asyncio.Event] = {}
        # (tenant, function) whose live worker a newer version retired: its next start is
        # a redeploy's, whose sandbox is replaced without the refill delay.
        self._redeployed: set[tuple[str, str]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self.hits = 0
        self.misses = 0

    def serve_host_calls(self, handler: HostCallHandler) -> None:
        """Answer the host calls of every worker started from now on with ``handler``.

        The one collaborator wired in after construction: host calls reach the invoke
        path (``function.invoke``) and the task service, both built on this pool. The
        agent registers the handler before it starts."""
        self._host_calls = handler

    @staticmethod
    def key(version: VersionRecord) -> WorkerKey:
        return (version.tenant, version.function, version.sha256)

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_loop())
        for runtime in sorted(self._warm_runtimes):
            self._schedule_refill(runtime)

    # specialised workers -------------------------------------------------------------

    async def acquire(self, version: VersionRecord) -> Worker:
        """A live worker for ``version``, specialised or started if there is none."""
        key = self.key(version)
        worker = self._workers.get(key)
        if worker is not None and worker.accepting:
            return worker
        starting = self._starting.get(key)
        if starting is not None:
            worker = await asyncio.shield(starting)
            # It may have begun draining before this waiter woke: then ask again.
            return worker if worker.accepting else await self.acquire(version)
        future: asyncio.Future[Worker] = asyncio.get_running_loop().create_future()
        self._starting[key] = future
        try:
            worker = await self._start_worker(version)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # waiters get it; no "never retrieved" warning
            raise
        else:
            self._workers[key] = worker
            future.set_result(worker)
            return worker
        finally:
            self._starting.pop(key, None)

    async def _start_worker(self, version: VersionRecord) -> Worker:
        runtime_name = version.config.runtime
        limits = self.backend.settings.limits.with_memory(version.config.memory)
        limits, env, own_network, state = await self.tenancy.worker_setup(version, limits)
        # A version with dependencies needs its environment mounted from the start.
        deps_dir = await self._deps_dir(version)
        # A tenant with egress needs a sandbox started on its own network, not a generic one.
        dedicated = own_network or deps_dir is not None
        sandbox = None if dedicated else self._take_generic(runtime_name, limits)
        if sandbox is not None:
            runtime = sandbox[1]
            sandbox_ = sandbox[0]
            self.hits += 1
        else:
            self.misses += 1
            runtime = await asyncio.to_thread(self.backend.resolve_runtime, runtime_name)
            sandbox_ = await self.backend.start(
                SandboxSpec(runtime=runtime, limits=limits, tenant=version.tenant, deps_dir=deps_dir)
            )
        if self.settings.size > 0 and runtime_name not in self._warm_runtimes:
            self._warm_runtimes.add(runtime_name)
        redeploy = (version.tenant, version.function) in self._redeployed
        self._redeployed.discard((version.tenant, version.function))
        self._schedule_refill(runtime_name, at_once=redeploy)
        spec = SandboxSpec(
            runtime=runtime,
            limits=limits,
            tenant=version.tenant,
            function=version.function,
            version=version.number,
            env=env,
            deps_dir=deps_dir,
        )
        try:
            await asyncio.to_thread(
                lambda: sandbox_.load_code(self.bundles.fetch(version.sha256), version.sha256)
            )
        except BaseException:
            await sandbox_.kill()
            raise
        worker = Worker(
            spec, version.sha256, sandbox_, self.logbus, self._host_calls, on_drain=self._drain
        )
        worker.tenant_state = state
        await worker.start(self._init_message(version, runtime.name, sandbox_.code_dir, env))
        return worker

    async def _deps_dir(self, version: VersionRecord) -> Path | None:
        """The dependency environment of ``version`` (built from its lock if this agent
        has not got it yet), or None."""
        if not version.config.lock:
            return None
        runtime = await asyncio.to_thread(self.backend.resolve_runtime, version.config.runtime)
        prepared = await self.deps.ensure(runtime, version.config.lock)
        return prepared.path

    @staticmethod
    def _init_message(
        version: VersionRecord, runtime: str, code_dir: str, env: dict[str, str] | None = None
    ) -> InitFrame:
        return {
            "type": "init",
            "protocol": PROTOCOL_VERSION,
            "function": {
                "tenant": version.tenant,
                "name": version.function,
                "version": version.number,
                "sha256": version.sha256,
                "runtime": runtime,
            },
            "code_dir": code_dir,
            "entry": version.entry,
            "handler": version.config.handler,
            "env": dict(version.config.env) if env is None else env,
            "timeout": version.config.timeout,
        }

    # generic sandboxes ---------------------------------------------------------------

    def _take_generic(self, runtime: str, limits: ResourceLimits) -> tuple[Sandbox, Runtime] | None:
        ready = self._generic.get(runtime, [])
        while ready:
            entry = ready.pop(0)
            sandbox = entry.sandbox
            if sandbox.process.returncode is not None:
                self._spawn(sandbox.kill())
                continue
            if entry.runtime.sized_at_start and \
                    limits.memory_bytes != self.backend.settings.limits.memory_bytes:
                # Its heap was sized for the pool's memory (a JVM's -Xmx): a function
                # with other memory gets a worker of its own.
                ready.insert(0, entry)
                return None
            if not sandbox.set_limits(limits):
                # This sandbox cannot take the function's limits: keep it for another.
                ready.insert(0, entry)
                return None
            return sandbox, entry.runtime
        return None

    def _schedule_refill(self, runtime: str, *, at_once: bool = False) -> None:
        """Top the generic sandboxes of ``runtime`` up, after the refill delay unless
        ``at_once`` (which also cuts short the delay of a refill already waiting)."""
        if self._closed or self.settings.size <= 0 or runtime not in self._warm_runtimes:
            return
        now = self._refill_now.setdefault(runtime, asyncio.Event())
        if at_once:
            now.set()
        task = self._refilling.get(runtime)
        if task is not None and not task.done():
            return
        self._refilling[runtime] = asyncio.create_task(self._refill(runtime))

    async def _refill(self, runtime_name: str) -> None:
        now = self._refill_now[runtime_name]
        await wake_or_timeout(now, self.settings.refill_delay)
        # A redeploy's take from here on is covered: the loop below refills up to size.
        now.clear()
        try:
            resolved = await asyncio.to_thread(self.backend.resolve_runtime, runtime_name)
        except Exception as exc:
            log.info("not pre-starting %s sandboxes: %s", runtime_name, exc)
            self._warm_runtimes.discard(runtime_name)
            return
        ready = self._generic.setdefault(runtime_name, [])
        failures = 0
        while not self._closed and len(ready) < self.settings.size and failures < 3:
            try:
                sandbox = await self.backend.start(
                    SandboxSpec(runtime=resolved, limits=self.backend.settings.limits)
                )
            except Exception:
                failures += 1
                log.exception("could not pre-start a %s sandbox", runtime_name)
                await asyncio.sleep(0.5 * failures)
                continue
            if self._closed:
                await sandbox.kill()
                return
            ready.append(_Generic(sandbox, resolved, time.monotonic()))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # retiring and reaping ------------------------------------------------------------

    async def retire(self, tenant: str, function: str, keep_sha: str | None = None) -> None:
        """Stop the workers of ``tenant/function`` (all but ``keep_sha``)."""
        doomed = [
            key for key in self._workers
            if key[0] == tenant and key[1] == function and key[2] != keep_sha
        ]
        for key in doomed:
            self._workers[key].drain("a newer version of the function serves now")
        if doomed and keep_sha is not None:
            self._redeployed.add((tenant, function))

    async def retire_tenant(self, tenant: str, current_state: str | None = None) -> None:
        """Stop every worker of ``tenant`` (its env or network changed); with
        ``current_state`` (``TenancyService.worker_state``), only those that started with
        another: a worker started after the change has what it needs."""
        for key in [key for key in self._workers if key[0] == tenant]:
            worker = self._workers[key]
            if current_state is None or worker.tenant_state != current_state:
                worker.drain("the tenant's settings changed")

    async def stop_tenant(self, tenant: str, reason: str, started_before: float | None = None
                          ) -> None:
        """Stop every worker of ``tenant`` now, draining ones and their requests in flight
        included (those fail with ``reason``): the tenant is gone, and code it left
        running must not go on calling the host under its name, where a tenant made
        again under that name would meet it. With ``started_before`` (a monotonic time),
        only workers started before it: a tenant made again since keeps its own."""
        workers = [w for key, w in self._workers.items() if key[0] == tenant]
        workers += [w for w in self._draining if w.spec.tenant == tenant]
        if started_before is not None:
            workers = [w for w in workers if w.started_at < started_before]
        for worker in workers:
            self.forget(worker)
        await asyncio.gather(*(worker.kill(reason) for worker in workers), return_exceptions=True)

    def _drain(self, worker: Worker) -> None:
        """``worker`` takes no new requests: a fresh one serves its version from now on."""
        self.forget(worker)
        self._draining.add(worker)
        self._spawn(self._drain_and_stop(worker))

    async def _drain_and_stop(self, worker: Worker) -> None:
        # Every request on the worker ends by its own deadline (Worker.invoke), so this
        # wait is bounded by the longest timeout of the function.
        try:
            while worker.in_flight and not worker.dead:
                await asyncio.sleep(0.05)
            await worker.shutdown()
        finally:
            self._draining.discard(worker)

    def forget(self, worker: Worker) -> None:
        key = (worker.spec.tenant, worker.spec.function, worker.sha256)
        if self._workers.get(key) is worker:
            del self._workers[key]

    def stats(self) -> dict[str, int]:
        return {
            "workers": len(self._workers),
            "draining": len(self._draining),
            "starting": len(self._starting),
            "generic": sum(len(v) for v in self._generic.values()),
            "hits": self.hits,
            "misses": self.misses,
        }

    def _kept_warm(self, key: WorkerKey) -> bool:
        return self.settings.min_warm.get(f"{key[0]}/{key[1]}", 0) > 0

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(min(max(self.idle_timeout / 4, 0.05), 5.0))
            now = time.monotonic()
            for key, worker in list(self._workers.items()):
                idle = worker.in_flight == 0 and now - worker.last_used > self.idle_timeout
                if worker.dead or (idle and not self._kept_warm(key)):
                    self._workers.pop(key, None)
                    with contextlib.suppress(Exception):
                        await worker.shutdown()
            for runtime, ready in self._generic.items():
                for entry in list(ready):
                    stale = now - entry.started > self.settings.max_generic_age
                    if stale or entry.sandbox.process.returncode is not None:
                        ready.remove(entry)
                        self._spawn(entry.sandbox.kill())
                self._schedule_refill(runtime)

    async def close(self) -> None:
        self._closed = True
        if self._reaper:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for task in self._refilling.values():
            task.cancel()
        await asyncio.gather(*self._refilling.values(), return_exceptions=True)
        workers, self._workers = [*self._workers.values(), *self._draining], {}
        generic = [e.sandbox for ready in self._generic.values() for e in ready]
        self._generic = {}
        await asyncio.gather(
            *(w.shutdown() for w in workers), *(s.kill() for s in generic),
            return_exceptions=True,
        )
        await asyncio.gather(*self._background, return_exceptions=True)


async def _not_serving_host_calls(
    tenant: str, op: str, args: dict[str, Any], request_id: str | None
) -> Any:
    raise RuntimeError("the pool's host call handler was never registered (serve_host_calls)")


__all__ = ["PoolSettings", "WorkerCrashed", "WorkerPool"]
