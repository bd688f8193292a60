"""The agent's settings. Each one can be given on the command line or by environment.

They are read and checked in one place, ``AgentConfig`` (pydantic-settings): a value that
cannot work stops the agent at start with one line naming its variable (``config_error``).
An empty variable counts as unset, except for the comma lists and plain strings.

| setting              | environment variable        | default                          |
|----------------------|-----------------------------|----------------------------------|
| host                 | HYAC_HOST                   | 127.0.0.1                        |
| port                 | HYAC_PORT                   | 8040 (0 picks a free port)       |
| data_dir             | HYAC_DATA_DIR               | platformdirs user data dir       |
| database_url         | HYAC_DATABASE_URL           | sqlite:///DATA_DIR/hyac.db       |
| sandbox              | HYAC_SANDBOX                | auto (docker if usable, else bwrap); gvisor |
| worker_idle_timeout  | HYAC_WORKER_IDLE_TIMEOUT    | 300 seconds                      |
| shutdown_grace       | HYAC_SHUTDOWN_GRACE         | 10 seconds for requests in flight on SIGTERM |
| keep_alive_timeout   | HYAC_KEEP_ALIVE_TIMEOUT     | 75 seconds an idle HTTP connection is kept |
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
| maven_repos          | HYAC_MAVEN_REPOS            | /usr/share/maven-repo:~/.m2/repository (java17) |
| agent_threads        | HYAC_AGENT_THREADS          | 32 threads for blocking work (store, SQL, files) |
| tenant_host_calls    | HYAC_TENANT_HOST_CALLS      | 8 of them per tenant's host calls at once |
| streams_per_user     | HYAC_STREAMS_PER_USER       | 16 log or task streams open per user (owner: any) |
| smtp_url             | HYAC_SMTP_URL               | "" (no mail); smtp://user:pass@host:587, smtps://… |
| mail_from            | HYAC_MAIL_FROM              | "" (the SMTP user name, if it is an address) |
| smtp_timeout         | HYAC_SMTP_TIMEOUT           | 20 seconds per SMTP connect, command or reply |
| storage_backend      | HYAC_STORAGE_BACKEND        | builtin (objects in the store's database) or s3 |
| s3_endpoint          | HYAC_S3_ENDPOINT            | "" (AWS); the URL of an S3-compatible service |
| s3_region            | HYAC_S3_REGION              | "" (us-east-1)                   |
| s3_bucket            | HYAC_S3_BUCKET              | "" (the bucket tenants' objects go to) |
| s3_access_key        | HYAC_S3_ACCESS_KEY          | ""                               |
| s3_secret_key        | HYAC_S3_SECRET_KEY          | ""                               |
| s3_path_style        | HYAC_S3_PATH_STYLE          | off (1: host/bucket/key addresses, for MinIO) |
| s3_prefix            | HYAC_S3_PREFIX              | "" (prepended to every key in the bucket) |
| notify_retries       | HYAC_NOTIFY_RETRIES         | 5 more tries after a failed notification |
| notify_backoff       | HYAC_NOTIFY_BACKOFF         | 2 s before the first retry, doubling (to 10 min) |
| notify_timeout       | HYAC_NOTIFY_TIMEOUT         | 10 s to resolve, connect and be answered |
| alert_interval       | HYAC_ALERT_INTERVAL         | 30 s between looks at the alert conditions |
| metrics_retention_days | HYAC_METRICS_RETENTION_DAYS | 7 days of per-invocation records |
| metrics_token        | HYAC_METRICS_TOKEN          | "" (a bearer token that may read /metrics only) |
| metrics_allow        | HYAC_METRICS_ALLOW          | "" (CIDRs that may read /metrics with no token) |
| queue                | HYAC_QUEUE                  | embedded (or celery)             |
| broker_url           | HYAC_BROKER_URL             | redis://127.0.0.1:6379/0 (amqp://… works) |
| celery_queue         | HYAC_CELERY_QUEUE           | hyac                             |
| task_concurrency     | HYAC_TASK_CONCURRENCY       | 4 tasks at once per agent or worker |
| task_lease           | HYAC_TASK_LEASE             | 30 s: a run not renewed this long is lost |
| callback_retries     | HYAC_CALLBACK_RETRIES       | 5 more tries after a failed delivery |
| callback_backoff     | HYAC_CALLBACK_BACKOFF       | 2 s before the first retry, doubling |
| callback_allow_cidrs | HYAC_CALLBACK_ALLOW_CIDRS   | "" (task callbacks reach public addresses only) |
| scheduler_interval   | HYAC_SCHEDULER_INTERVAL     | 1 s between looks for due schedule ticks |
| trigger_max_depth    | HYAC_TRIGGER_MAX_DEPTH      | 5 event-started tasks in a chain, then cut |
| webhook_max_body_bytes | HYAC_WEBHOOK_MAX_BODY_BYTES | 1 MiB: a larger inbound webhook is 413 |
| vulndb_refresh       | HYAC_VULNDB_REFRESH         | 21600 s (6 h) between advisory refreshes; 0: off |
| vulndb_feeds         | HYAC_VULNDB_FEEDS           | "" (OSV zip URLs imported at each refresh) |
| vulndb_max_upload_bytes | HYAC_VULNDB_MAX_UPLOAD_BYTES | 512 MiB: the largest OSV upload |
"""

from __future__ import annotations

import ipaddress
import sys
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from hyac_common.errors import HyacError
from hyac_common.paths import data_dir as default_data_dir

if TYPE_CHECKING:
    from hyac_agent.execution.pool import PoolSettings
    from hyac_agent.mail import MailSettings
    from hyac_agent.metrics import MetricsSettings
    from hyac_agent.notify import NotifySettings
    from hyac_agent.sandbox.base import SandboxSettings
    from hyac_agent.store import LogRetention
    from hyac_agent.tasks.settings import TaskSettings

ENV_PREFIX = "HYAC_"
QUEUE_ENGINES = ("embedded", "celery")
#: settings of the command line only: never read from the environment
COMMAND_LINE_ONLY = frozenset({"insecure_no_sandbox"})


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], BeforeValidator(_comma_list)]


def _own_python() -> list[str]:
    return [f"python{sys.version_info.major}.{sys.version_info.minor}"]


class _Environment(EnvSettingsSource):
    """``HYAC_*`` variables, but none for what only the command line may say."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in COMMAND_LINE_ONLY:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class AgentConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        # Comma lists are read as such, not as JSON.
        enable_decoding=False,
        extra="ignore",
    )

    host: str = "127.0.0.1"
    port: int = Field(8040, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str = ""
    sandbox: str = "auto"
    insecure_no_sandbox: bool = False
    worker_idle_timeout: float = Field(300.0, ge=0)
    max_body_bytes: int = Field(6 * 1024 * 1024, ge=1)
    max_bundle_bytes: int = Field(50 * 1024 * 1024, ge=1)
    # Per tenant, so no tenant's flood trims another's history.
    log_retention: int = Field(100_000, ge=1)
    log_retention_bytes: int = Field(64 * 1024 * 1024, ge=1)
    log_retention_days: float = Field(30.0, gt=0)
    docker_image: str = "hyac/python:{version}"
    oci_runtime: str = ""
    sandbox_uid: int = Field(65534, ge=0)
    default_memory: int = Field(256 * 1024 * 1024, ge=1)
    sandbox_pids: int = Field(128, ge=1)
    sandbox_cpus: float = Field(1.0, gt=0)
    sandbox_tmp_bytes: int = Field(64 * 1024 * 1024, ge=1)
    pool_size: int = Field(1, ge=0)
    pool_runtimes: CommaList = Field(default_factory=_own_python)
    #: "tenant/function=N,…": live workers kept even when idle
    pool_min_warm: dict[str, int] = Field(default_factory=dict)
    deps_dir_setting: Path | None = Field(None, validation_alias="HYAC_DEPS_DIR")
    deps_allow_direct_urls: bool = False
    #: ":"-separated directory Maven repositories java17 dependencies resolve from
    maven_repos: str = ""
    agent_threads: int = 32
    tenant_host_calls: int = 8
    streams_per_user: int = Field(16, ge=1)
    smtp_url: str = ""
    mail_from: str = ""
    smtp_timeout: float = Field(20.0, gt=0)
    # object storage (hyac_agent.integrations.storage); the store's settings apply where
    # these are not set
    storage_backend: Literal["builtin", "s3"] = "builtin"
    s3_endpoint: str = ""
    s3_region: str = ""
    s3_bucket: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_path_style: bool = False
    s3_prefix: str = ""
    # notifications (hyac_agent.notify); their URLs follow HYAC_CALLBACK_ALLOW_CIDRS
    notify_retries: int = Field(5, ge=0)
    notify_backoff: float = Field(2.0, ge=0)
    notify_timeout: float = Field(10.0, gt=0, le=300)
    alert_interval: float = Field(30.0, gt=0)
    shutdown_grace: float = Field(10.0, ge=0)
    # Longer than clients keep an idle connection (httpx 5 s, aiohttp 15 s, proxies
    # 60 s), so the client always closes first: a server closing at the moment a
    # client reuses the connection drops that request unanswered.
    keep_alive_timeout: int = Field(75, ge=1, le=3600)

    metrics_retention_days: float = Field(7.0, gt=0)
    metrics_token: str = ""
    metrics_allow: CommaList = Field(default_factory=list)

    # the task queue (hyac_agent.tasks.settings.TaskSettings)
    queue: str = "embedded"
    broker_url: str = "redis://127.0.0.1:6379/0"
    celery_queue: str = "hyac"
    task_concurrency: int = Field(4, ge=1)
    task_lease: float = Field(30.0, ge=1)
    callback_retries: int = Field(5, ge=0)
    callback_backoff: float = Field(2.0, ge=0)
    callback_allow_cidrs: CommaList = Field(default_factory=list)

    # triggers (hyac_agent.triggers)
    scheduler_interval: float = Field(1.0, gt=0, le=60)
    trigger_max_depth: int = Field(5, ge=1, le=100)
    webhook_max_body_bytes: int = Field(1024 * 1024, ge=1)

    # vulnerability advisories (hyac_agent.vulns)
    vulndb_refresh: float = Field(6 * 3600.0, ge=0)
    vulndb_feeds: CommaList = Field(default_factory=list)
    vulndb_max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # What the command line says wins over the environment; no .env or secret files.
        return init_settings, _Environment(settings_cls)

    # checks --------------------------------------------------------------------------

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any, info: Any) -> Any:
        """An empty number, switch or queue setting is its default (as it always was);
        an empty list is empty and an empty string stays empty."""
        name = info.field_name
        if isinstance(value, str) and not value.strip() and name in _EMPTY_IS_DEFAULT:
            return cls.model_fields[name].get_default(call_default_factory=True)
        return value

    @field_validator("data_dir", "deps_dir_setting")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("queue", "broker_url", "celery_queue", mode="before")
    @classmethod
    def _stripped(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("queue")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        value = value.lower()
        if value not in QUEUE_ENGINES:
            raise ValueError(f"HYAC_QUEUE must be one of {', '.join(QUEUE_ENGINES)}, not {value!r}")
        return value

    @field_validator("pool_min_warm", mode="before")
    @classmethod
    def _min_warm(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        kept: dict[str, int] = {}
        for item in _comma_list(value):
            name, _, count = item.partition("=")
            try:
                kept[name.strip()] = int(count)
            except ValueError:
                raise ValueError(
                    f"HYAC_POOL_MIN_WARM: {item!r} is not tenant/function=N"
                ) from None
        return kept

    @field_validator("metrics_allow", "callback_allow_cidrs")
    @classmethod
    def _networks(cls, value: list[str], info: Any) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if info.field_name == "metrics_allow":
                    raise ValueError(
                        f"HYAC_METRICS_ALLOW: {entry!r} is not an address or CIDR range"
                    ) from None
                raise ValueError(f"HYAC_CALLBACK_ALLOW_CIDRS: {entry!r} is not a CIDR") from None
        return value

    @model_validator(mode="after")
    def _fits_together(self) -> AgentConfig:
        if self.agent_threads < 2 or not 1 <= self.tenant_host_calls < self.agent_threads:
            raise ValueError(
                "HYAC_AGENT_THREADS must be at least 2 and HYAC_TENANT_HOST_CALLS between 1 and "
                f"HYAC_AGENT_THREADS - 1 (got {self.agent_threads} and {self.tenant_host_calls})"
            )
        try:
            self.mail_settings()
        except HyacError as exc:
            raise ValueError(exc.message) from None
        return self

    # what the parts are given --------------------------------------------------------

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'hyac.db'}"

    @property
    def bundles_dir(self) -> Path:
        return self.data_dir / "bundles"

    @property
    def deps_dir(self) -> Path:
        """Dependency environments (HYAC_DEPS_DIR; default DATA_DIR/deps)."""
        return self.deps_dir_setting or self.data_dir / "deps"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @cached_property
    def tasks(self) -> TaskSettings:
        """The task queue's settings (one object: ``hyac-agent worker -c`` sets its
        concurrency)."""
        from hyac_agent.tasks.settings import TaskSettings

        settings = TaskSettings(
            engine=self.queue, broker_url=self.broker_url, celery_queue=self.celery_queue,
            concurrency=self.task_concurrency, lease=self.task_lease,
            callback_retries=self.callback_retries, callback_backoff=self.callback_backoff,
            callback_allow_cidrs=list(self.callback_allow_cidrs),
        )
        settings.heartbeat = min(settings.heartbeat, settings.lease / 3)
        return settings

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
        """What each tenant's log keeps."""
        from hyac_agent.store import LogRetention

        return LogRetention(
            bytes=self.log_retention_bytes, lines=self.log_retention,
            days=self.log_retention_days,
        )

    def pool_settings(self) -> PoolSettings:
        from hyac_agent.execution.pool import PoolSettings

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

    def notify_settings(self) -> NotifySettings:
        from hyac_agent.notify import NotifySettings

        return NotifySettings(
            retries=self.notify_retries, backoff=self.notify_backoff,
            timeout=self.notify_timeout, alert_interval=self.alert_interval,
            allowed=self.tasks.callback_allowed,
        )


#: settings for which an empty variable means the default rather than an empty value
_EMPTY_IS_DEFAULT = frozenset(
    name for name, info in AgentConfig.model_fields.items()
    if info.annotation in (int, float, bool, "int", "float", "bool")
) | {"queue", "broker_url", "celery_queue"}


def config_error(error: ValidationError) -> str:
    """One line naming each setting that cannot work, and why."""
    return "; ".join(_problem(detail) for detail in error.errors())


def _problem(detail: Any) -> str:
    kind, context, value = detail["type"], detail.get("ctx") or {}, detail.get("input")
    if kind == "value_error":  # our own checks say it all, naming the variable
        return str(context.get("error", detail["msg"]))
    location = detail.get("loc") or ()
    name = str(location[0]) if location else ""
    field = AgentConfig.model_fields.get(name)
    alias = field.validation_alias if field is not None else None
    variable = alias if isinstance(alias, str) else ENV_PREFIX + name.upper()
    shown = f", not {value!r}" if isinstance(value, str) else ""
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{variable} must be a whole number{shown}"
    if kind in ("float_parsing", "float_type"):
        return f"{variable} must be a number{shown}"
    if kind in ("bool_parsing", "bool_type"):
        return f"{variable} must be 1 or 0 (true or false){shown}"
    if kind == "greater_than" and context.get("gt") == 0:
        return f"{variable} must be positive{shown}"
    if kind == "greater_than":
        return f"{variable} must be more than {context.get('gt'):g}{shown}"
    if kind == "greater_than_equal":
        return f"{variable} must be at least {context.get('ge'):g}{shown}"
    if kind == "less_than_equal":
        return f"{variable} must be at most {context.get('le'):g}{shown}"
    return f"{variable}: {detail['msg']}{shown}"
