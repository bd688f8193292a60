"""``hyac env``: tenant-wide environment, merged under each function's own env."""

from typing import Annotated

import typer

from hyac_cli import options

app = typer.Typer(help="Tenant env: set for every function of the tenant (a function's own "
                       "env wins).", no_args_is_help=True)


@app.command("set")
def set_(
    values: Annotated[list[str], typer.Argument(help="KEY=VALUE pairs.", show_default=False)],
    tenant: options.Tenant = None,
) -> None:
    """Set tenant env; running workers restart with it."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import InvalidInput

    parsed = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"expected KEY=VALUE, got {item!r}")
        parsed[key] = value
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        agent.put("/v1/env", json={"values": parsed})
    Terminal().say(f"{', '.join(parsed)}  set")


@app.command("ls")
def ls(tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """List the tenant env."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        env = agent.get("/v1/env") or {}
    term = Terminal()
    if as_json:
        term.print_json(env)
    else:
        term.table(("key", "value"), sorted(env.items()), empty="No tenant env.")


@app.command("rm")
def rm(key: Annotated[str, typer.Argument(show_default=False)], tenant: options.Tenant = None) -> None:
    """Remove a tenant env key."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        agent.delete(f"/v1/env/{client.segment(key, 'env name')}")
    Terminal().say(f"{key}  removed")
