"""Options shared by several commands, declared once."""

from typing import Annotated

import typer

Tenant = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        "-t",
        envvar="HYAC_TENANT",
        show_default=False,
        help="Tenant to act in (default: the project's tenant, else 'default').",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def tenant_of(option: str | None) -> str:
    """The tenant named by --tenant/HYAC_TENANT, else the project's, else 'default'."""
    if option:
        from hyac_common.names import validate_name

        return validate_name(option, kind="tenant")
    from hyac_cli.manifest import project_tenant

    return project_tenant() or "default"
