"""Pydantic models for what travels between the CLI and the agent's HTTP API."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from hyac_common.errors import InvalidInput
from hyac_common.tasks import TaskStatus, TaskStatusName
from hyac_common.triggers import EventSubscriptions, check_cron, check_timezone

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class InManifest:
    """How a FunctionConfig setting is written in a ``[functions.NAME]`` table of hyac.toml.

    Annotation metadata that pydantic ignores: the API and its schema are unchanged. The
    model gives the keys, types, bounds and defaults; this adds what hyac.toml does beyond
    JSON (durations and sizes as text) and where it asks more than the agent does.
    """

    #: "duration": seconds, or text such as "10m"; "size": bytes, or text such as "256Mi"
    form: Literal["duration", "size"] | None = None
    #: a TOML value shown in the error for a value of the wrong shape
    example: str = ""
    #: what a value must be, where the type alone says too little ("an https:// URL")
    expect: str = ""
    #: a further test of a value of the right type, and the refusal if it fails
    #: (``{value!r}`` is filled in; without a refusal: "must be <expect>")
    accepts: Callable[[Any], bool] | None = None
    refusal: str = ""
    #: False where the agent sets the value itself
    settable: bool = True


def _checked(check: Callable[[Any], str], value: Any) -> str:
    """``check(value)``, its InvalidInput turned into the ValueError pydantic reports."""
    try:
        return check(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _http_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


class FunctionConfig(BaseModel):
    """A function's settings, part of its version: changing them makes a new version."""

    model_config = ConfigDict(extra="forbid")

    runtime: str = "python3.11"
    handler: Annotated[str, InManifest(
        accepts=str.isidentifier, refusal="{value!r} is not a Python function name",
    )] = "main"
    timeout: Annotated[float, InManifest("duration")] = Field(
        DEFAULT_TIMEOUT, gt=0, description="seconds"
    )
    memory: Annotated[Optional[int], InManifest("size")] = Field(None, gt=0, description="bytes")
    env: Annotated[dict[str, str], InManifest(example='{ REGION = "eu" }')] = Field(
        default_factory=dict
    )
    background: bool = False
    retries: int = Field(0, ge=0)
    requirements: Annotated[list[str], InManifest(example='["httpx>=0.27"]')] = Field(
        default_factory=list
    )
    retry_backoff: Annotated[float, InManifest("duration")] = Field(
        1.0, ge=0, description="seconds before the first retry of a failed task; doubles each time"
    )
    retry_backoff_max: Annotated[float, InManifest("duration")] = Field(
        300.0, ge=0, description="longest wait between retries, seconds"
    )
    task_max_age: Annotated[Optional[float], InManifest("duration")] = Field(
        None, gt=0, description="seconds a task may wait queued before it is dead without running"
    )
    callback_url: Annotated[Optional[str], InManifest(
        expect="an http:// or https:// URL", accepts=_http_url,
    )] = Field(None, description="URL that receives a signed POST when a task of this function ends")
    schedule: Annotated[Optional[str], InManifest(
        expect='a cron line such as "*/5 * * * *" (5 fields, or 6 with seconds first)',
    )] = Field(None, description="run the function as a task on this cron schedule")
    timezone: Annotated[str, InManifest(expect='an IANA timezone such as "Europe/Paris"')] = Field(
        "UTC", description="the schedule's timezone"
    )
    catch_up: Annotated[Literal["once", "skip"], InManifest(expect='"once" or "skip"')] = Field(
        "once", description="ticks missed while no agent ran: run the last one late, or skip"
    )
    on: Annotated[Optional[EventSubscriptions], InManifest(
        expect='a table of storage = { events = ["put", "delete"], prefix = "…" } and task = '
        '{ function = "NAME", events = ["succeeded", "dead"] }, each one table or a list',
    )] = Field(None, description="events that run the function as a task")
    lock: Annotated[Optional[str], InManifest(settable=False)] = Field(
        None,
        description="the resolved dependency lock (pinned requirements, or npm's package.json "
        "and package-lock.json); set by the agent at deploy and stored with the version",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else _checked(check_cron, value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _checked(check_timezone, value)


#: the most a version's sample request may take, as JSON
MAX_SAMPLE_BYTES = 64 * 1024
_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$"


class SampleRequest(BaseModel):
    """A request to try a function with, kept with the version: the ``sample`` of its
    table in hyac.toml (a JSON body, sent as a POST). The console's invoke panel fills
    itself from it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str = Field("/", max_length=1024, pattern=r"^/[^\x00-\x1f\x7f]*$")
    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: JsonValue = Field(None, description="a JSON value, sent as application/json")

    @field_validator("query")
    @classmethod
    def _query_lines(cls, query: dict[str, str]) -> dict[str, str]:
        for name, value in query.items():
            if not name or "=" in name or not (name + value).isprintable():
                raise ValueError(f"query parameter {name!r}: a name without '=' and printable "
                                 "text only")
        return query

    @field_validator("headers")
    @classmethod
    def _header_lines(cls, headers: dict[str, str]) -> dict[str, str]:
        import re

        for name, value in headers.items():
            if not re.match(_HEADER_NAME, name) or not value.isprintable():
                raise ValueError(f"header {name!r}: a header name, and printable text only")
        return headers

    @field_validator("body")
    @classmethod
    def _finite(cls, body: JsonValue) -> JsonValue:
        pending = [body]
        while pending:  # not recursive: a deeply nested body cannot exhaust the stack
            value = pending.pop()
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("the body is not JSON: it holds NaN or infinity")
            if isinstance(value, dict):
                pending.extend(value.values())
            elif isinstance(value, list):
                pending.extend(value)
        return body

    @model_validator(mode="after")
    def _small(self) -> SampleRequest:
        size = len(self.model_dump_json().encode())
        if size > MAX_SAMPLE_BYTES:
            raise ValueError(f"the sample takes {size} bytes as JSON: at most {MAX_SAMPLE_BYTES}")
        return self


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entry: str = Field(description="path of the entry file inside the bundle")
    files_b64: dict[str, str] = Field(description="bundle: relative path -> base64 content")
    config: FunctionConfig = Field(default_factory=FunctionConfig)
    project: Optional[str] = Field(
        None, max_length=128,
        description="the deploying project; a function another project owns, or one on "
        "another runtime language, is refused (409) unless force",
    )
    force: bool = Field(False, description="take the function over from its owner project")
    sample: Optional[SampleRequest] = Field(
        None, description="a request to try the function with (hyac.toml's sample), kept "
        "with the version; part of its content, as the config is")


class DeployResult(BaseModel):
    name: str
    version: int
    sha256: str
    created: bool
    active_version: int
    dependencies: Optional[DependencyInfo] = None
    previous_version: Optional[int] = Field(
        None, description="the version that was active before this deploy (None: a new function)"
    )


class DependencyInfo(BaseModel):
    """The dependency environment of a deployed version."""

    env: str = Field(description="content hash of (installer, runtime, lock): shared by equal locks")
    installed: bool = Field(description="false when an existing environment was reused")
    packages: int = 0


class FunctionSummary(BaseModel):
    name: str
    active_version: int
    versions: int
    runtime: str
    sha256: str
    updated_at: float
    project: Optional[str] = Field(None, description="the project that owns the function")


class VersionInfo(BaseModel):
    version: int
    sha256: str
    runtime: str
    created_at: float
    active: bool
    entry: str
    config: FunctionConfig
    sample: Optional[SampleRequest] = Field(
        None, description="the request to try this version with (hyac.toml's sample)")


class RollbackRequest(BaseModel):
    version: int = Field(ge=1)


class InvokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = "POST"
    path: str = "/"
    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body_b64: str = ""


class FunctionError(BaseModel):
    type: str
    message: str
    traceback: str = ""


class InvokeResult(BaseModel):
    ok: bool
    request_id: str
    version: int
    duration_ms: float
    status: int = 200
    headers: dict[str, str] = Field(default_factory=dict)
    body_b64: str = ""
    error: Optional[FunctionError] = None


LogStream = Literal["stdout", "stderr", "logger", "system"]


class LogRecord(BaseModel):
    ts: float
    tenant: str
    function: str
    version: int
    request_id: Optional[str] = None
    stream: LogStream
    level: Optional[str] = None
    message: str


class AgentInfo(BaseModel):
    """What ``/v1/agent`` tells: everything to the platform owner; to any other token
    only ``running`` and ``version`` (the rest is left out)."""

    running: bool
    version: str
    url: Optional[str] = None
    pid: Optional[int] = None
    sandbox: Optional[str] = None
    data_dir: Optional[str] = None
    extra: Optional[dict[str, Any]] = None


class TaskError(BaseModel):
    """Why a task's last attempt failed: the function's own exception (with the user's
    traceback), or a platform reason such as ``timeout`` or ``expired``."""

    code: str = Field(description="function_error, timeout, worker_crashed, expired, lost, …")
    type: str = ""
    message: str
    traceback: str = ""


class TaskResult(BaseModel):
    """The response of a task's successful run."""

    status: int = 200
    headers: dict[str, str] = Field(default_factory=dict)
    body_b64: str = ""


class TaskInfo(BaseModel):
    id: str
    tenant: str
    function: str
    version: int
    status: TaskStatusName
    attempt: int = Field(description="runs started so far (the current one included)")
    max_attempts: int = Field(
        description="runs the task may make: retries + 1, one more for each run lost with its "
        "process (those do not count), and the runs before a retry (which renews the retries)")
    created_at: float
    run_at: float = Field(description="not started before this (delay, retry backoff)")
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    progress: Optional[float] = Field(None, description="0.0 to 1.0, from context.task.progress")
    progress_message: str = ""
    result: Optional[TaskResult] = None
    error: Optional[TaskError] = None
    request_id: Optional[str] = Field(None, description="request id of the latest run")
    worker: Optional[str] = Field(None, description="host:pid of the runner of the latest run")
    callback_url: Optional[str] = None
    callback_status: Optional[Literal["pending", "delivered", "failed"]] = None
    callback_attempts: int = 0
    trigger: Optional[dict[str, Any]] = Field(
        None, description='what started the task, if not a call: {"kind": "schedule", '
        '"id", "tick"}, {"kind": "storage"|"task", "id", "depth"} or {"kind": "webhook", "id"}'
    )


class TaskSubmitted(BaseModel):
    """The answer to an invocation that was queued as a background task (HTTP 202)."""

    task_id: str
    status: TaskStatusName = TaskStatus.QUEUED
    location: str


# -- tenancy: tenants, members, tokens, quotas, secrets, env, audit --------------------


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    egress: Any = Field("none", description="'none', 'allow', or a list of CIDRs and host names")


class EgressUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    egress: Any


class MemberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["viewer", "developer", "admin"]
    owner: bool = Field(False, description="also make the user a platform owner (owner only)")


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: Optional[str] = Field(None, description="default: the caller")
    tenant: Optional[str] = Field(None, description="scope the token to this one tenant")
    expires_in: Optional[float] = Field(
        None, gt=0, le=100 * 365 * 86400, allow_inf_nan=False,
        description="seconds until it expires (at most 100 years)",
    )
    name: str = ""


class TokenInfo(BaseModel):
    id: str
    user: str
    tenant: Optional[str] = None
    name: str = ""
    created_at: float
    expires_at: Optional[float] = None
    revoked_at: Optional[float] = None
    created_by: str = ""
    parent: Optional[str] = Field(
        None, description="the token that made it: it ends when that one is revoked or expires")


class TokenCreated(TokenInfo):
    token: str = Field(description="the secret token: shown this once, stored only as a hash")


class QuotaUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    values: dict[str, Any] = Field(description="quota name -> value (null clears it)")


class SecretValue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str


class EnvUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    values: dict[str, str]


class AuditRecord(BaseModel):
    ts: float
    actor: str = Field(description="the actor's name, as shown (not unique over time)")
    actor_kind: Optional[str] = Field(
        None, description="owner (the agent's token) or user; null in records made before "
        "kinds were recorded")
    actor_id: Optional[str] = Field(None, description="owner, or the user's stable id (usr_...)")
    actor_token: Optional[str] = Field(None, description="the id of the API token used")
    tenant: Optional[str] = None
    action: str
    target: Optional[str] = None
    result: int
    client: Optional[str] = None


class ObjectInfo(BaseModel):
    """One object of a tenant's storage (``context.storage``), without its bytes."""

    key: str
    size: int = Field(description="bytes")
    content_type: str
    sha256: str
    updated_at: float = Field(description="Unix time of the last write")


# -- runtimes ---------------------------------------------------------------------------


class RuntimeInfo(BaseModel):
    name: str
    family: str
    language: str = ""
    versions: list[str] = Field(default_factory=list)
    backends: dict[str, str] = Field(
        default_factory=dict, description="backend -> 'ok' or why this runtime cannot run on it"
    )
    available: bool = Field(description="whether the agent's sandbox backend can run it")
    reason: str = ""
    interpreter: Optional[str] = None
    default: bool = False
    added: bool = False
    functions: list[str] = Field(default_factory=list, description="tenant/function using it")


class RuntimeAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Optional[str] = Field(None, description="re-enable a removed runtime by name")
    files_b64: dict[str, str] = Field(
        default_factory=dict, description="a runtime folder: relative path -> base64 content"
    )


class RuntimeDefault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str


# Vulnerability scanning ------------------------------------------------------------


class VulnAdvisory(BaseModel):
    """One advisory that affects a package's version."""

    id: str
    aliases: list[str] = Field(default_factory=list, description="e.g. CVE and GHSA ids")
    severity: str = Field(description="low, moderate, high, critical, or unrated")
    score: Optional[float] = Field(None, description="CVSS v3 base score when known")
    summary: str = ""
    fixed: Optional[str] = Field(None, description="the first version that fixes it")


class PackageScan(BaseModel):
    """One locked package: ``vulnerable``, ``clean``, or ``unknown`` (no source could
    answer, or the database is too old: never reported as clean)."""

    name: str
    version: Optional[str] = None
    status: str
    advisories: list[VulnAdvisory] = Field(default_factory=list)
    reason: str = Field("", description="why the status is unknown")


class ScanResult(BaseModel):
    ecosystem: str = Field(description="PyPI or npm")
    status: str = Field(description="vulnerable, unknown (nothing vulnerable but some "
                                    "packages unknown), or clean")
    packages: list[PackageScan] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list, description="the sources that answered")
    scanned_at: float = 0.0
    new: list[str] = Field(default_factory=list,
                           description="advisory ids found since the previous scan of this lock")


class ScanPolicy(BaseModel):
    """What a tenant's deploys do about findings: ``warn`` (deploy and flag), ``block``
    at or above ``severity``; ``unknown = "block"`` also blocks unknown packages."""

    model_config = ConfigDict(extra="forbid")

    mode: str = Field("warn", pattern="^(off|warn|block)$")
    severity: str = Field("low", pattern="^(low|moderate|high|critical)$")
    unknown: str = Field("allow", pattern="^(allow|block)$")
    inherited: bool = Field(False, description="the platform default (no policy of its own)")


class ScanReport(BaseModel):
    """A scan of one function version (or of packages sent by the CLI)."""

    function: Optional[str] = None
    version: Optional[int] = None
    result: Optional[ScanResult] = Field(None, description="None: the version has no dependencies")
    blocked: bool = Field(False, description="the tenant's policy would block it")
    reasons: list[str] = Field(default_factory=list, description="why it would be blocked")
    policy: ScanPolicy = Field(default_factory=ScanPolicy)


class ScanPackagesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ecosystem: str = Field(pattern="^(PyPI|npm)$")
    packages: list[dict[str, Optional[str]]] = Field(
        max_length=5000, description="[{name, version}]; a version of None is unknown")


class IntegrationSettingView(BaseModel):
    """One setting of an integration as ``show`` sees it: a secret's value is "set" or
    null, never the value; ``source`` is "env" (the agent's configuration, which wins),
    "store" or "default"."""

    name: str
    value: Any = None
    source: Literal["env", "store", "default"]
    secret: bool = False
    env: Optional[str] = None
    help: str = ""
    choices: Optional[list[str]] = None


class IntegrationView(BaseModel):
    """``GET /v1/system/integrations/{kind}``."""

    kind: str
    title: str
    configured: bool
    settings: list[IntegrationSettingView]
    updated_at: Optional[float] = None
    updated_by: Optional[str] = None


class IntegrationChange(BaseModel):
    """``PUT /v1/system/integrations/{kind}``: settings to change; null or "" removes a
    stored value (the configuration or the default applies again)."""

    model_config = ConfigDict(extra="forbid")

    settings: dict[str, Any]


class IntegrationTestResult(BaseModel):
    ok: bool
    message: str
