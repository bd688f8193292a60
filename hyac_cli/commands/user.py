"""``hyac user``: members of a tenant and their roles (tenant admins, the owner)."""

from typing import Annotated

import typer

from hyac_cli import options

app = typer.Typer(help="Users and their role per tenant: admin, developer, viewer.",
                  no_args_is_help=True)
Name = Annotated[str, typer.Argument(help="The user's name.", show_default=False)]
Role = Annotated[str, typer.Option("--role", "-r", help="admin, developer or viewer.")]


def _set(name: str, role: str, tenant: str | None, owner: bool = False) -> None:
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    chosen = options.tenant_of(tenant)
    with client.connect(tenant=chosen) as agent:
        agent.put(f"/v1/users/{client.segment(name, 'user name')}", json={"role": role, "owner": owner})
    Terminal().say(f"{name}  {role} in {chosen}")


@app.command("add")
def add(
    name: Name, role: Role = "developer", tenant: options.Tenant = None,
    owner: Annotated[bool, typer.Option("--owner", help="Also a platform owner (owner only).")] = False,
) -> None:
    """Add a user to a tenant (creating the user if new). Then: hyac token create --user NAME."""
    _set(name, role, tenant, owner)


@app.command("role")
def role(
    name: Name,
    new_role: Annotated[str, typer.Argument(help="admin, developer or viewer.", show_default=False)],
    tenant: options.Tenant = None,
) -> None:
    """Change a member's role in a tenant."""
    _set(name, new_role, tenant)


@app.command("ls")
def ls(tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """List the members of a tenant."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        members = agent.get("/v1/users") or []
    term = Terminal()
    if as_json:
        term.print_json(members)
    else:
        term.table(("name", "role"), [(m["name"], m["role"]) for m in members], empty="No members.")


@app.command("rm")
def rm(
    name: Name, tenant: options.Tenant = None,
    everywhere: Annotated[bool, typer.Option("--everywhere", help="Delete the user and all "
                                             "its tokens (owner).")] = False,
) -> None:
    """Remove a user from a tenant (its tokens for that tenant are revoked)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        agent.delete(f"/v1/users/{client.segment(name, 'user name')}",
                     params={"everywhere": "true"} if everywhere else None)
    Terminal().say(f"{name}  removed")
