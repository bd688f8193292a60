"""The agent's settings. Each one can be given on the command line or by environment.

| setting              | environment variable        | default                          |
|----------------------|-----------------------------|----------------------------------|
| host                 | HYAC_HOST                   | 127.0.0.1                        |
| port                 | HYAC_PORT                   | 8040 (0 picks a free port)       |
| data_dir             | HYAC_DATA_DIR               | platformdirs user data dir       |
| database_url         | HYAC_DATABASE_URL           | sqlite:///DATA_DIR/hyac.db       |
| sandbox              | HYAC_SANDBOX                | auto (docker if usable, else bwrap) |
| worker_idle_timeout  | HYAC_WORKER_IDLE_TIMEOUT    | 300 seconds                      |
| shutdown_grace       | HYAC_SHUTDOWN_GRACE         | 10 seconds for requests in flight on SIGTERM |
| max_body_bytes       | HYAC_MAX_BODY_BYTES         | 6 MiB (request and response)     |
| max_bundle_bytes     | HYAC_MAX_BUNDLE_BYTES       | 50 MiB                           |
| log_retention_bytes  | HYAC_LOG_RETENTION_BYTES    | 64 MiB of log per tenant (messages + 128 a line) |
| log_retention_days   | HYAC_LOG_RETENTION_DAYS     | 30 days; older lines are deleted |
| log_retention        | HYAC_LOG_RETENTION          | 100000 lines kept per tenant (was: in all) |
| docker_image         | HYAC_DOCKER_IMAGE           | hyac/python:{version}            |
| oci_runtime          | HYAC_OCI_RUNTIME            | "" (docker's default; runsc, kata-runtime) |
| sandbox_uid          | HYAC_SANDBOX_UID            | 65534 (probe uid; sandbox uids from 2000000000) |
| default_memory       | HYAC_DEFAULT_MEMORY         | 256 MiB per worker (a function's `memory` overrides) |
| sandbox_pids         | HYAC_SANDBOX_PIDS           | 128 processes/threads per worker |
| sandbox_cpus         | HYAC_SANDBOX_CPUS           | 1.0 CPU per worker               |
| sandbox_tmp_bytes    | HYAC_SANDBOX_TMP_BYTES      | 64 MiB of /tmp (and largest file) |
| pool_size            | HYAC_POOL_SIZE              | 1 generic sandbox ready per runtime (0: off) |
| pool_runtimes        | HYAC_POOL_RUNTIMES          | the agent's own python3.X (comma list) |
| pool_min_warm        | HYAC_POOL_MIN_WARM          | "" ("tenant/function=1,…" never idle-reaped) |
| deps_dir             | HYAC_DEPS_DIR               | DATA_DIR/deps (dependency environments) |
| deps_allow_direct_urls | HYAC_DEPS_ALLOW_DIRECT_URLS | off (1: `pkg @ https://…` allowed) |
| agent_threads        | HYAC_AGENT_THREADS          | 32 threads for blocking work (store, SQL, files) |
| tenant_host_calls    | HYAC_TENANT_HOST_CALLS      | 8 of them per tenant's host calls at once |
| smtp_url             | HYAC_SMTP_URL               | "" (no mail); smtp://user:pass@host:587, smtps://… |
| mail_from            | HYAC_MAIL_FROM              | "" (the SMTP user name, if it is an address) |
| smtp_timeout         | HYAC_SMTP_TIMEOUT           | 20 seconds per SMTP connect, command or reply |
| metrics_retention_days | HYAC_METRICS_RETENTION_DAYS | 7 days of per-invocation records |
| metrics_token        | HYAC_METRICS_TOKEN          | "" (a bearer token that may read /metrics only) |
| metrics_allow        | HYAC_METRICS_ALLOW          | "" (CIDRs that may read /metrics with no token) |
| tasks                | HYAC_QUEUE, HYAC_BROKER_URL, HYAC_TASK_* … | see hyac_agent/tasks/settings.py |
| tasks.callback_allow_cidrs | HYAC_CALLBACK_ALLOW_CIDRS | "" (task callbacks reach public addresses only) |
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hyac_common.paths import data_dir as default_data_dir

if TYPE_CHECKING:
    from hyac_agent.mail import MailSettings
    from hyac_agent.metrics import MetricsSettings
    from hyac_agent.pool import PoolSettings
    from hyac_agent.sandbox.base import SandboxSettings
    from hyac_agent.store import LogRetention
    from hyac_agent.tasks.settings import TaskSettings


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_list(name: str, default: str) -> list[str]:
    value = os.environ.get(name, default)
    return [item.strip() for item in value.split(",") if item.strip()]


def _task_settings() -> TaskSettings:
    from hyac_agent.tasks.settings import TaskSettings

    return TaskSettings()


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass
class AgentConfig:
    host: str = field(default_factory=lambda: os.environ.get("HYAC_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: _env_int("HYAC_PORT", 8040))
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str = field(default_factory=lambda: os.environ.get("HYAC_DATABASE_URL", ""))
    sandbox: str = field(default_factory=lambda: os.environ.get("HYAC_SANDBOX", "auto"))
    insecure_no_sandbox: bool = False
    worker_idle_timeout: float = field(
        default_factory=lambda: _env_float("HYAC_WORKER_IDLE_TIMEOUT", 300.0)
    )
    max_body_bytes: int = field(
        default_factory=lambda: _env_int("HYAC_MAX_BODY_BYTES", 6 * 1024 * 1024)
    )
    max_bundle_bytes: int = field(
        default_factory=lambda: _env_int("HYAC_MAX_BUNDLE_BYTES", 50 * 1024 * 1024)
    )
    # Per tenant, so no tenant's flood trims another's history.
    log_retention: int = field(default_factory=lambda: _env_int("HYAC_LOG_RETENTION", 100_000))
    log_retention_bytes: int = field(
        default_factory=lambda: _env_int("HYAC_LOG_RETENTION_BYTES", 64 * 1024 * 1024)
    )
    log_retention_days: float = field(
        default_factory=lambda: _env_float("HYAC_LOG_RETENTION_DAYS", 30.0)
    )
    docker_image: str = field(
        default_factory=lambda: os.environ.get("HYAC_DOCKER_IMAGE", "hyac/python:{version}")
    )
    oci_runtime: str = field(default_factory=lambda: os.environ.get("HYAC_OCI_RUNTIME", ""))
    sandbox_uid: int = field(default_factory=lambda: _env_int("HYAC_SANDBOX_UID", 65534))
    default_memory: int = field(
        default_factory=lambda: _env_int("HYAC_DEFAULT_MEMORY", 256 * 1024 * 1024)
    )
    sandbox_pids: int = field(default_factory=lambda: _env_int("HYAC_SANDBOX_PIDS", 128))
    sandbox_cpus: float = field(default_factory=lambda: _env_float("HYAC_SANDBOX_CPUS", 1.0))
    sandbox_tmp_bytes: int = field(
        default_factory=lambda: _env_int("HYAC_SANDBOX_TMP_BYTES", 64 * 1024 * 1024)
    )
    pool_size: int = field(default_factory=lambda: _env_int("HYAC_POOL_SIZE", 1))
    pool_runtimes: list[str] = field(
        default_factory=lambda: _env_list(
            "HYAC_POOL_RUNTIMES", f"python{sys.version_info.major}.{sys.version_info.minor}"
        )
    )
    pool_min_warm: dict[str, int] = field(
        default_factory=lambda: {
            k: int(v) for k, _, v in (i.partition("=") for i in _env_list("HYAC_POOL_MIN_WARM", ""))
        }
    )
    smtp_url: str = field(default_factory=lambda: os.environ.get("HYAC_SMTP_URL", ""))
    mail_from: str = field(default_factory=lambda: os.environ.get("HYAC_MAIL_FROM", ""))
    smtp_timeout: float = field(default_factory=lambda: _env_float("HYAC_SMTP_TIMEOUT", 20.0))
    agent_threads: int = field(default_factory=lambda: _env_int("HYAC_AGENT_THREADS", 32))
    tenant_host_calls: int = field(default_factory=lambda: _env_int("HYAC_TENANT_HOST_CALLS", 8))
    shutdown_grace: float = field(default_factory=lambda: _env_float("HYAC_SHUTDOWN_GRACE", 10.0))
    deps_allow_direct_urls: bool = field(
        default_factory=lambda: os.environ.get("HYAC_DEPS_ALLOW_DIRECT_URLS", "") in ("1", "true")
    )

    metrics_retention_days: float = field(
        default_factory=lambda: _env_float("HYAC_METRICS_RETENTION_DAYS", 7.0)
    )
    metrics_token: str = field(default_factory=lambda: os.environ.get("HYAC_METRICS_TOKEN", ""))
    metrics_allow: list[str] = field(default_factory=lambda: _env_list("HYAC_METRICS_ALLOW", ""))

    tasks: TaskSettings = field(default_factory=lambda: _task_settings())

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'hyac.db'}"

    @property
    def bundles_dir(self) -> Path:
        return self.data_dir / "bundles"

    @property
    def deps_dir(self) -> Path:
        """Dependency environments (HYAC_DEPS_DIR; default DATA_DIR/deps)."""
        env = os.environ.get("HYAC_DEPS_DIR")
        return Path(env).expanduser() if env else self.data_dir / "deps"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    def sandbox_settings(self) -> SandboxSettings:
        from hyac_agent.sandbox.base import SandboxSettings
        from hyac_agent.sandbox.limits import ResourceLimits

        limits = ResourceLimits(
            memory_bytes=self.default_memory,
            pids=self.sandbox_pids,
            cpus=self.sandbox_cpus,
            tmp_bytes=self.sandbox_tmp_bytes,
            file_bytes=self.sandbox_tmp_bytes,
        )
        return SandboxSettings(
            run_dir=self.run_dir,
            limits=limits,
            docker_image=self.docker_image,
            oci_runtime=self.oci_runtime,
            sandbox_uid=self.sandbox_uid,
        )

    def log_retention_policy(self) -> LogRetention:
        """What each tenant's log keeps; InvalidInput for a limit that keeps nothing."""
        from hyac_agent.store import LogRetention
        from hyac_common.errors import InvalidInput

        if self.log_retention < 1 or self.log_retention_bytes < 1 or self.log_retention_days <= 0:
            raise InvalidInput(
                "HYAC_LOG_RETENTION, HYAC_LOG_RETENTION_BYTES and HYAC_LOG_RETENTION_DAYS "
                "must be positive"
            )
        return LogRetention(
            bytes=self.log_retention_bytes, lines=self.log_retention,
            days=self.log_retention_days,
        )

    def pool_settings(self) -> PoolSettings:
        from hyac_agent.pool import PoolSettings

        return PoolSettings(
            size=self.pool_size, runtimes=list(self.pool_runtimes), min_warm=dict(self.pool_min_warm)
        )

    def metrics_settings(self) -> MetricsSettings:
        from hyac_agent.metrics import MetricsSettings

        return MetricsSettings(
            retention_days=self.metrics_retention_days, scrape_token=self.metrics_token,
            allow=list(self.metrics_allow),
        )

    def mail_settings(self) -> MailSettings | None:
        """How to send mail, or None without HYAC_SMTP_URL; InvalidInput if malformed."""
        from hyac_agent.mail import MailSettings

        return MailSettings.parse(self.smtp_url, self.mail_from, self.smtp_timeout)
