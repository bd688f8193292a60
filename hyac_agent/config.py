"""The agent's settings. Each one can be given on the command line or by environment.

| setting              | environment variable        | default                          |
|----------------------|-----------------------------|----------------------------------|
| host                 | HYAC_HOST                   | 127.0.0.1                        |
| port                 | HYAC_PORT                   | 8040 (0 picks a free port)       |
| data_dir             | HYAC_DATA_DIR               | platformdirs user data dir       |
| database_url         | HYAC_DATABASE_URL           | sqlite:///DATA_DIR/hyac.db       |
| sandbox              | HYAC_SANDBOX                | auto (bwrap on Linux)            |
| worker_idle_timeout  | HYAC_WORKER_IDLE_TIMEOUT    | 300 seconds                      |
| max_body_bytes       | HYAC_MAX_BODY_BYTES         | 6 MiB (request and response)     |
| max_bundle_bytes     | HYAC_MAX_BUNDLE_BYTES       | 50 MiB                           |
| log_retention        | HYAC_LOG_RETENTION          | 100000 lines kept                |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hyac_common.paths import data_dir as default_data_dir


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


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
    log_retention: int = field(default_factory=lambda: _env_int("HYAC_LOG_RETENTION", 100_000))

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'hyac.db'}"

    @property
    def bundles_dir(self) -> Path:
        return self.data_dir / "bundles"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"
