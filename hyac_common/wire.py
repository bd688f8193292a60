"""Pydantic models for what travels between the CLI and the agent's HTTP API."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_TIMEOUT = 30.0


class FunctionConfig(BaseModel):
    """A function's settings, part of its version: changing them makes a new version."""

    model_config = ConfigDict(extra="forbid")

    runtime: str = "python3.11"
    handler: str = "main"
    timeout: float = Field(DEFAULT_TIMEOUT, gt=0, description="seconds")
    memory: Optional[int] = Field(None, gt=0, description="bytes")
    env: dict[str, str] = Field(default_factory=dict)
    background: bool = False
    retries: int = Field(0, ge=0)
    requirements: list[str] = Field(default_factory=list)


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entry: str = Field(description="path of the entry file inside the bundle")
    files_b64: dict[str, str] = Field(description="bundle: relative path -> base64 content")
    config: FunctionConfig = Field(default_factory=FunctionConfig)


class DeployResult(BaseModel):
    name: str
    version: int
    sha256: str
    created: bool
    active_version: int


class FunctionSummary(BaseModel):
    name: str
    active_version: int
    versions: int
    runtime: str
    sha256: str
    updated_at: float


class VersionInfo(BaseModel):
    version: int
    sha256: str
    runtime: str
    created_at: float
    active: bool
    entry: str
    config: FunctionConfig


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
    running: bool
    url: str
    version: str
    pid: int
    sandbox: str
    data_dir: str
    extra: dict[str, Any] = Field(default_factory=dict)
