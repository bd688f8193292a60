"""The agent's parts, built once per process and shared by the API routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from pathlib import Path

from hyac_agent.bundles import BundleStore
from hyac_agent.config import AgentConfig
from hyac_agent.hostcalls import HostCalls
from hyac_agent.logbus import LogBus
from hyac_agent.pool import WorkerPool
from hyac_agent.sandbox import SandboxBackend, select_backend
from hyac_agent.services.functions import FunctionService
from hyac_agent.services.invoke import InvokeService
from hyac_agent.store import SqlStore

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
    def __init__(self, config: AgentConfig, backend: SandboxBackend | None = None) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config.data_dir.chmod(0o700)
        self.backend = backend or select_backend(
            config.sandbox, config.insecure_no_sandbox, config.sandbox_settings()
        )
        self.token = load_or_create_token(config.data_dir)
        self.store = SqlStore(config.resolved_database_url())
        self.store.create_schema()
        self.bundles = BundleStore(config.bundles_dir)
        self.bundles.sweep_temporary()
        self.logbus = LogBus(self.store, config.log_retention_policy())
        #: set once the agent is stopping: live streams end so their followers reconnect
        self.stopping = asyncio.Event()
        self.host_calls = HostCalls(self.store, config.tenant_host_calls)
        self.pool = WorkerPool(
            self.backend, self.bundles, self.logbus, self.host_calls, config.worker_idle_timeout,
            config.pool_settings(),
        )
        self.functions = FunctionService(self.store, self.bundles, config.max_bundle_bytes)
        self._init_deps()
        from hyac_agent.metrics import Metrics

        self.metrics = Metrics(self.store.engine, config.metrics_settings())
        self.invoker = InvokeService(
            self.functions, self.pool, self.logbus, config.max_body_bytes,
            metrics=self.metrics.invocations,
        )
        self.host_calls.invoker = self.invoker
        self._init_tenancy()
        self._init_tasks()
        self.metrics.observe_platform(self.pool, self.tenancy, self.store.list_functions)

    def _init_deps(self) -> None:
        from hyac_agent.deps import DependencyStore

        # Installers run under bubblewrap unless the agent itself runs unsandboxed.
        self.deps = DependencyStore(
            self.config.deps_dir, sandboxed=self.backend.isolating,
            allow_direct_urls=self.config.deps_allow_direct_urls,
        )
        self.deps.sweep_temporary()
        self.functions.deps = self.deps
        self.pool.deps = self.deps
        from hyac_agent.services.runtimes import RuntimeService

        self.runtimes = RuntimeService(self.backend, self.functions)
        self.functions.default_runtime = self.runtimes.default

    def _init_tenancy(self) -> None:
        from hyac_agent.tenancy import TenancyService

        config = self.config
        self.tenancy = TenancyService(
            self.store, config.data_dir, config.resolved_database_url(), self.token,
            self.backend.egress_unavailable,
        )
        self.host_calls.tenancy = self.tenancy
        self.pool.tenancy = self.tenancy
        self.logbus.redactor = self.tenancy.secrets
        self.invoker.admission = self.tenancy.quotas.execution
        self.invoker.request_ended = self.tenancy.request_ended
        self.tenancy.on_tenant_changed = self._tenant_changed
        from hyac_agent.tenancy.network import scope_of

        self.backend.attach_networks(self.tenancy.egress, scope_of(self.backend.settings.run_dir))
        from hyac_agent.mail import Mailer

        self.host_calls.mailer = Mailer(
            self.config.mail_settings(), self.tenancy.quotas.mail, self._request_log
        )

    def _request_log(self, tenant: str, request_id: str | None, message: str) -> None:
        """A system log line of a request in flight (of its tenant only, if it is over)."""
        function, version = self.invoker.serving(request_id) or ("", 0)
        self.logbus.emit(tenant=tenant, function=function, version=version, stream="system",
                         request_id=request_id, message=message)

    def _tenant_changed(self, tenant: str) -> None:
        import asyncio

        with contextlib.suppress(RuntimeError):  # no loop: nothing is running to retire
            asyncio.get_running_loop().create_task(self.pool.retire_tenant(tenant))

    def _init_tasks(self) -> None:
        from hyac_agent.tasks import TaskExecutor, TaskService, make_queue
        from hyac_agent.tasks.callbacks import CallbackKeys

        settings = self.config.tasks
        self.callback_keys = CallbackKeys(self.store.engine, self.config.data_dir)
        self.task_executor = TaskExecutor(
            self.store, self.functions, self.invoker, settings, self.callback_keys.key
        )
        self.queue = make_queue(self.task_executor)
        self.tasks = TaskService(self.store, self.functions, self.queue)
        self.host_calls.tasks = self.tasks

    async def start(self) -> None:
        # Blocking work (store, tenant SQL, files) runs on these (HYAC_AGENT_THREADS); each
        # tenant's host calls hold at most HYAC_TENANT_HOST_CALLS of them at once.
        from concurrent.futures import ThreadPoolExecutor

        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(self.config.agent_threads, thread_name_prefix="hyac")
        )
        self.logbus.start()
        self.metrics.start()
        self.tenancy.quotas.start()
        self.pool.start()
        await self.queue.start()
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
        await self.queue.stop()
        await self.pool.close()
        if self.backend.networks is not None:
            await asyncio.to_thread(self.backend.networks.close)
        await self.metrics.stop()
        await self.logbus.stop()
        await self.tenancy.quotas.stop()
        self.store.close()
