"""Which tenant a command acts in. Free of Typer, so the fast ``hyac invoke`` path can
use it too."""

from __future__ import annotations


def profile_tenant() -> str | None:
    """The active profile's tenant (None with HYAC_URL set, or none chosen)."""
    from hyac_cli import profiles

    chosen = profiles.active() if not _env_url() else None
    if chosen is not None and chosen[1].get("tenant"):
        return str(chosen[1]["tenant"])
    return None


def tenant_of(option: str | None) -> str:
    """The tenant named by --tenant/HYAC_TENANT, else the project's, else 'default'."""
    if option:
        from hyac_common.names import validate_name

        return validate_name(option, kind="tenant")
    from hyac_cli.manifest import project_tenant

    return project_tenant() or profile_tenant() or "default"


def _env_url() -> bool:
    import os

    return bool(os.environ.get("HYAC_URL"))
