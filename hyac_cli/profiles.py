"""Named agent profiles in ``config_dir()/config.toml`` (written atomically, mode 0600):

```toml
active = "prod"

[profiles.prod]
url = "https://hyac.example.com"
token = "hyac_u_…"
tenant = "team-a"
```

``hyac login URL --token T --profile P`` adds one; ``hyac profile use P`` picks it
(``HYAC_PROFILE`` overrides per command). With no profile chosen the local agent
(``DATA_DIR/agent.json``) is used, as before.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hyac_common.errors import InvalidInput
from hyac_common.paths import config_dir

CONFIG_FILE = "config.toml"


def config_path() -> Path:
    return config_dir() / CONFIG_FILE


def load() -> dict[str, Any]:
    try:
        raw = config_path().read_bytes()
    except FileNotFoundError:
        return {}
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        config = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInput(
            f"{config_path()} is not valid TOML ({reason}); fix it, or delete it and log in again"
        ) from None
    return config


def save(config: dict[str, Any]) -> None:
    import tomli_w

    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            tomli_w.dump(config, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def active() -> tuple[str, dict[str, Any]] | None:
    """(name, profile) chosen by ``HYAC_PROFILE`` or ``active``; None: the local agent."""
    config = load()
    name = os.environ.get("HYAC_PROFILE") or config.get("active")
    if not name or name == "local":
        return None
    profile = (config.get("profiles") or {}).get(name)
    if profile is None:
        raise InvalidInput(f"no profile {name!r} (see `hyac profile ls`)")
    return str(name), dict(profile)
