"""``hyac tenant``: create, list, show and remove tenants (the platform owner)."""

from typing import Annotated

import typer

from hyac_cli import options

app = typer.Typer(help="Tenants: the unit of isolation (data, network, quotas).", no_args_is_help=True)
Name = Annotated[str, typer.Argument(help="The tenant's name.", show_default=False)]
Egress = Annotated[
    str, typer.Option("--egress", help="Network egress: none, allow, or CIDRs/hosts, comma-separated.")
]


@app.command("create")
def create(name: Name, egress: Egress = "none", as_json: options.Json = False) -> None:
    """Create a tenant (platform owner)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        made = agent.post("/v1/tenants", json={"name": name, "egress": _egress(egress)})
    term = Terminal()
    if as_json:
        term.print_json(made)
    else:
        term.say(f"{name}  created")


@app.command("ls")
def ls(as_json: options.Json = False) -> None:
    """List the tenants you can see (all of them for the owner)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        tenants = agent.get("/v1/tenants") or []
    term = Terminal()
    if as_json:
        term.print_json(tenants)
        return
    term.table(("name", "role", "egress"),
               [(t["name"], t.get("role"), _show_egress(t.get("egress"))) for t in tenants],
               empty="No tenants.")


@app.command("show")
def show(name: Name, as_json: options.Json = False) -> None:
    """Show a tenant: members, counts, database, network."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        info = agent.get(f"/v1/tenants/{client.segment(name, 'tenant')}")
    term = Terminal()
    if as_json:
        term.print_json(info)
        return
    for label in ("name", "functions", "secrets", "env", "database"):
        term.styled([(f"{label:<10}", "dim"), (str(info.get(label)), None)])
    term.styled([(f"{'egress':<10}", "dim"), (_show_egress(info.get("egress")), None)])
    members = ", ".join(f"{m['name']} ({m['role']})" for m in info.get("members", [])) or "-"
    term.styled([(f"{'members':<10}", "dim"), (members, None)])


@app.command("egress")
def egress(name: Name, policy: Annotated[str, typer.Argument(help="none, allow, or CIDRs/hosts.")]) -> None:
    """Set a tenant's network egress policy (platform owner; docker sandbox only)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        agent.put(f"/v1/tenants/{client.segment(name, 'tenant')}/egress", json={"egress": _egress(policy)})
    Terminal().say(f"{name}  egress {policy}")


@app.command("rm")
def rm(
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a tenant with all its functions, data, secrets and members (owner)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    term = Terminal()
    if not yes and term.stdin_is_tty:
        if not typer.confirm(f"Remove tenant {name!r} and ALL its data?", default=False):
            raise typer.Exit(1)
    with client.connect() as agent:
        agent.delete(f"/v1/tenants/{client.segment(name, 'tenant')}")
    term.say(f"{name}  removed")


def _egress(value: str) -> object:
    value = value.strip()
    return value if value in ("none", "allow") else [v.strip() for v in value.split(",") if v.strip()]


def _show_egress(value: object) -> str:
    return ",".join(value) if isinstance(value, list) else str(value or "none")
