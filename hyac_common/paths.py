"""Where Hyac keeps things on disk. Each location can be moved by an environment variable.

| setting            | environment variable | default                                 |
|--------------------|----------------------|-----------------------------------------|
| agent data dir     | HYAC_DATA_DIR        | platformdirs ``user_data_dir("hyac")``  |
| CLI config dir     | HYAC_CONFIG_DIR      | platformdirs ``user_config_dir("hyac")``|
| runtimes           | HYAC_RUNTIMES_DIR    | the ``runtimes/`` shipped with Hyac     |
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

AGENT_STATE_FILE = "agent.json"


def data_dir() -> Path:
    env = os.environ.get("HYAC_DATA_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("hyac", appauthor=False))


def config_dir() -> Path:
    env = os.environ.get("HYAC_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("hyac", appauthor=False))


def runtimes_dir() -> Path:
    """The folder holding one sub-folder per runtime (``python/``, …)."""
    env = os.environ.get("HYAC_RUNTIMES_DIR")
    if env:
        return Path(env).expanduser()
    shipped = Path(__file__).resolve().parent / "runtimes"
    if shipped.is_dir():  # installed from a wheel: shipped as package data
        return shipped
    return Path(__file__).resolve().parent.parent / "runtimes"  # a source checkout


def agent_state_path(base: Path | None = None) -> Path:
    return (base or data_dir()) / AGENT_STATE_FILE


def write_private_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically to ``path``, readable by the owner alone."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_agent_state(base: Path | None = None) -> dict[str, Any] | None:
    try:
        return json.loads(agent_state_path(base).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
