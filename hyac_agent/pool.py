"""The worker pool: one live worker per function version, started on first use,
reused while warm, reaped when idle.

A burst of first requests for a version waits on the single start in flight instead of
starting one sandbox each. Workers are keyed by tenant, function and content hash, so
a worker is never shared across tenants or versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from hyac_agent.bundles import BundleStore
from hyac_agent.logbus import LogBus
from hyac_agent.runtimes import resolve
from hyac_agent.sandbox import SandboxBackend, SandboxSpec
from hyac_agent.store import VersionRecord
from hyac_agent.worker import HostCallHandler, Worker
from hyac_common.errors import WorkerCrashed

log = logging.getLogger("hyac.pool")

WorkerKey = tuple[str, str, str]  # tenant, function, sha256


class WorkerPool:
    def __init__(
        self,
        backend: SandboxBackend,
        bundles: BundleStore,
        logbus: LogBus,
        host_calls: HostCallHandler,
        idle_timeout: float,
    ) -> None:
        self.backend = backend
        self.bundles = bundles
        self.logbus = logbus
        self.host_calls = host_calls
        self.idle_timeout = idle_timeout
        self._workers: dict[WorkerKey, Worker] = {}
        self._starting: dict[WorkerKey, asyncio.Future[Worker]] = {}
        self._reaper: asyncio.Task[None] | None = None

    @staticmethod
    def key(version: VersionRecord) -> WorkerKey:
        return (version.tenant, version.function, version.sha256)

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_loop())

    async def acquire(self, version: VersionRecord) -> Worker:
        """A live worker for ``version``, started if there is none."""
        key = self.key(version)
        worker = self._workers.get(key)
        if worker is not None and not worker.dead:
            return worker
        starting = self._starting.get(key)
        if starting is not None:
            return await asyncio.shield(starting)
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
        runtime = await asyncio.to_thread(resolve, version.config.runtime)
        spec = SandboxSpec(
            tenant=version.tenant,
            function=version.function,
            version=version.number,
            runtime=runtime,
            code_dir=self.bundles.code_dir(version.sha256),
            env=dict(version.config.env),
            memory_bytes=version.config.memory,
        )
        sandbox = await self.backend.start(spec)
        worker = Worker(spec, version.sha256, sandbox, self.logbus, self.host_calls)
        await worker.start(self._init_message(version, runtime.name, sandbox.code_dir))
        return worker

    @staticmethod
    def _init_message(version: VersionRecord, runtime: str, code_dir: str) -> dict[str, Any]:
        return {
            "type": "init",
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
            "env": dict(version.config.env),
            "timeout": version.config.timeout,
        }

    async def retire(self, tenant: str, function: str, keep_sha: str | None = None) -> None:
        """Stop the workers of ``tenant/function`` (all but ``keep_sha``)."""
        doomed = [
            key for key in self._workers
            if key[0] == tenant and key[1] == function and key[2] != keep_sha
        ]
        for key in doomed:
            worker = self._workers.pop(key)
            asyncio.create_task(self._drain_and_stop(worker))

    async def _drain_and_stop(self, worker: Worker) -> None:
        # Let requests already running on the old version finish first.
        deadline = time.monotonic() + 60
        while worker.in_flight and time.monotonic() < deadline and not worker.dead:
            await asyncio.sleep(0.05)
        await worker.shutdown()

    def forget(self, worker: Worker) -> None:
        key = (worker.spec.tenant, worker.spec.function, worker.sha256)
        if self._workers.get(key) is worker:
            del self._workers[key]

    def stats(self) -> dict[str, int]:
        return {"workers": len(self._workers), "starting": len(self._starting)}

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(min(max(self.idle_timeout / 4, 0.05), 5.0))
            now = time.monotonic()
            for key, worker in list(self._workers.items()):
                idle = worker.in_flight == 0 and now - worker.last_used > self.idle_timeout
                if worker.dead or idle:
                    self._workers.pop(key, None)
                    with contextlib.suppress(Exception):
                        await worker.shutdown()

    async def close(self) -> None:
        if self._reaper:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        workers, self._workers = list(self._workers.values()), {}
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)


__all__ = ["WorkerCrashed", "WorkerPool"]
