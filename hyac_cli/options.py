"""Options shared by several commands, declared once."""

from typing import Annotated

import typer

from hyac_cli.targets import profile_tenant, tenant_of

__all__ = ["Json", "Tenant", "profile_tenant", "tenant_of"]

Tenant = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        "-t",
        envvar="HYAC_TENANT",
        show_default=False,
        help="Tenant to act in (default: the project's, else the profile's, else 'default').",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
