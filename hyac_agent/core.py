"""The agent's parts, built once per process and shared by the API routes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hyac_agent.bundles import BundleStore
from hyac_agent.cluster import ChangeFeed, NodeCaches, hold_boot_lock
from hyac_agent.config import AgentConfig
from hyac_agent.deps import DependencyStore
from hyac_agent.editor import EditorService
from hyac_agent.execution.hostcalls import HostCalls
from hyac_agent.execution.pool import WorkerPool
from hyac_agent.integrations import IntegrationService
from hyac_agent.integrations.mail import MailIntegration, mail_settings
from hyac_agent.integrations.storage import StorageIntegration, storage_target
from hyac_agent.logbus import LogBus
from hyac_agent.mail import Mailer
from hyac_agent.metrics import Metrics
from hyac_agent.notify import AlertSources, NotifyService
from hyac_agent.sandbox import SandboxBackend, select_backend
from hyac_agent.services.functions import FunctionService
from hyac_agent.services.invoke import InvokeService
from hyac_agent.services.runtimes import RuntimeService, default_runtime
from hyac_agent.store import SqlStore
from hyac_agent.tasks import ExecutorParts, TaskService, make_queue
from hyac_agent.tasks.callbacks import CallbackKeys
from hyac_agent.tasks.outcomes import TaskOutcomes
from hyac_agent.tenancy import TenancyService
from hyac_agent.tenancy.network import scope_of
from hyac_agent.triggers import Triggers
from hyac_agent.vulns.refresh import VulnRefresher

log = logging.getLogger("hyac.agent")

TOKEN_FILE = "agent.token"


def load_or_create_token(data_dir: Path) -> str:
    """The agent's API token, created on first start and kept in a file only its owner reads."""
    path = data_dir / TOKEN_FILE
    try:
        token = path.read_text().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    token = "hyac_" + secrets.token_urlsafe(32)
    fd = path.parent.joinpath(f".{TOKEN_FILE}.tmp")
    fd.write_text(token)
    fd.chmod(0o600)
    fd.replace(path)
    return token


class Agent:
    """Every part of the agent, built in dependency order: each gets its collaborators
    through its constructor. One cycle remains by nature (the pool's workers make host
    calls that invoke functions on the pool): the pool takes its host call handler at
    one registration point, ``WorkerPool.serve_host_calls``."""

    def __init__(self, config: AgentConfig, backend: SandboxBackend | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """``clock``: the wall clock of the quota windows (a test drives it)."""
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config.data_dir.chmod(0o700)
        self.backend = backend or select_backend(
            config.sandbox, config.insecure_no_sandbox, config.sandbox_settings()
        )
        self.token = load_or_create_token(config.data_dir)
        database_url = config.resolved_database_url()
        self.store = SqlStore(database_url)
        # nodes starting at once on an empty store make their tables one after another
        release_boot = hold_boot_lock(self.store.engine)
        self.store.create_schema()
        #: mail, object storage, …: the environment's settings, else the store's
        self.integrations = IntegrationService(
            self.store.engine, config.data_dir, config,
            [MailIntegration(), StorageIntegration(self.store.engine)],
        )
        self.bundles = BundleStore(config.bundles_dir, self.store)
        self.bundles.sweep_temporary()
        #: set once the agent is stopping: live streams end so their followers reconnect
        self.stopping = asyncio.Event()

        self.tenancy = TenancyService(
            self.store, self.store.engine, config.data_dir, database_url, self.token,
            self.backend.egress_unavailable,
            storage=storage_target(functools.partial(self.integrations.values, "storage")),
            clock=clock,
        )
        self.backend.attach_networks(self.tenancy.egress, scope_of(self.backend.settings.run_dir))
        self.logbus = LogBus(self.store, config.log_retention_policy(), self.tenancy.secrets)
        # Installers run under bubblewrap unless the agent itself runs unsandboxed.
        self.deps = DependencyStore(
            config.deps_dir, sandboxed=self.backend.isolating,
            allow_direct_urls=config.deps_allow_direct_urls, maven_repos=config.maven_repos,
        )
        self.deps.sweep_temporary()
        self.functions = FunctionService(
            self.store, self.bundles, self.deps, default_runtime, config.max_bundle_bytes
        )
        self.runtimes = RuntimeService(self.backend, self.functions)
        #: the console editor's completion, hover and diagnostics (jedi, off the loop)
        self.editor = EditorService(config.data_dir / "editor-stubs")
        self.pool = WorkerPool(
            self.backend, self.bundles, self.logbus, self.tenancy, self.deps,
            config.worker_idle_timeout, config.pool_settings(),
        )
        self.tenancy.subscribe(self.pool.retire_tenant)
        self.metrics = Metrics(
            self.store.engine, config.metrics_settings(), self.pool, self.tenancy,
            self.store.list_functions,
        )
        self.invoker = InvokeService(
            self.functions, self.pool, self.logbus, config.max_body_bytes,
            self.metrics.invocations, self.tenancy.quotas.execution, self.tenancy.request_ended,
        )
        self.callback_keys = CallbackKeys(self.store.engine, config.data_dir)
        outcomes = TaskOutcomes()
        self.queue = make_queue(ExecutorParts(
            self.store, self.functions, self.invoker, config.tasks, self.callback_keys.key,
            outcomes,
        ))
        self.tasks = TaskService(self.store, self.functions, self.queue)
        #: schedules, storage and task events, inbound webhooks: each run is a task
        self.triggers = Triggers(
            self.store.engine, self.store, self.tasks, self.functions, self.logbus,
            config.data_dir, outcomes, self.tenancy.objects,
            interval=config.scheduler_interval, max_depth=config.trigger_max_depth,
        )
        mailer = Mailer(
            mail_settings(functools.partial(self.integrations.values, "mail")),
            self.tenancy.quotas.mail, self._request_log,
        )
        self.notify = NotifyService(
            self.store.engine, config.data_dir, config.notify_settings(),
            self.tenancy.quotas.notification, mailer.settings, AlertSources(
                tenants=lambda: [row["name"] for row in self.tenancy.store.list_tenants()],
                quota_report=lambda tenant: self.tenancy.quotas.report(
                    tenant, len(self.store.list_functions(tenant))),
                sandbox_problem=type(self.backend).unavailable_reason,
                sandbox_name=self.backend.name,
            ),
        )
        self.host_calls = HostCalls(
            self.store, config.tenant_host_calls, self.tenancy, mailer, self.invoker, self.tasks,
            self.notify,
        )
        self.pool.serve_host_calls(self.host_calls)
        #: the advisory database refreshed on a schedule, and everything rescanned
        self.vulndb = VulnRefresher(
            self.store, config.data_dir, config.vulndb_refresh, config.vulndb_feeds,
            config.vulndb_max_upload_bytes,
        )
        #: what other agents change (versions, env, secrets, quotas) reaches this one
        self.feed = ChangeFeed(self.store.engine, self.store, self.bundles,
                               NodeCaches(self.functions, self.pool, self.tenancy))
        release_boot()
        #: what start() started, stopped in reverse order by stop()
        self._running = contextlib.AsyncExitStack()

    def _request_log(self, tenant: str, request_id: str | None, message: str) -> None:
        """A system log line of a request in flight (of its tenant only, if it is over)."""
        function, version = self.invoker.serving(request_id) or ("", 0)
        self.logbus.emit(tenant=tenant, function=function, version=version, stream="system",
                         request_id=request_id, message=message)

    async def start(self) -> None:
        # Blocking work (store, tenant SQL, files) runs on these (HYAC_AGENT_THREADS); each
        # tenant's host calls hold at most HYAC_TENANT_HOST_CALLS of them at once.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(self.config.agent_threads, thread_name_prefix="hyac")
        )
        # Each part is stopped by stop() in the reverse order, or at once if a later
        # part fails to start: the queue first, the store last.
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self.store.close)
            stack.callback(self.functions.close)
            await self.tenancy.start()
            stack.push_async_callback(self.tenancy.stop)
            self.logbus.start()
            stack.push_async_callback(self.logbus.stop)
            self.metrics.start()
            stack.push_async_callback(self.metrics.stop)
            networks = self.backend.networks
            if networks is not None:
                stack.push_async_callback(asyncio.to_thread, networks.close)
            self.pool.start()
            stack.push_async_callback(self.pool.close)
            await self.feed.start()
            stack.push_async_callback(self.feed.stop)
            await self.queue.start()
            stack.push_async_callback(self.queue.stop)
            await self.notify.start()
            stack.push_async_callback(self.notify.stop)
            await self.triggers.start()
            stack.push_async_callback(self.triggers.stop)
            await self.vulndb.start()
            stack.push_async_callback(self.vulndb.stop)
            self._running = stack.pop_all()
        if not self.backend.isolating:
            log.warning(
                "INSECURE: functions run without a sandbox (--insecure-no-sandbox); "
                "they can read everything this agent can. Use this for local development only."
            )

    async def begin_shutdown(self) -> None:
        """SIGTERM, before requests in flight get their grace period: end live streams
        and hand background tasks back to the queue at once (not after a lease)."""
        self.stopping.set()
        await self.queue.hand_back()

    async def stop(self) -> None:
        await self._running.aclose()
