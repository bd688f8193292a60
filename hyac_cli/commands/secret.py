"""``hyac secret``: a tenant's secrets. Values go in; they never come back out."""

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from hyac_cli import options

if TYPE_CHECKING:
    from hyac_cli.terminal import Terminal

app = typer.Typer(help="Tenant secrets (context.secrets): set, list names, remove.",
                  no_args_is_help=True)


@app.command("set")
def set_(
    assignment: Annotated[str, typer.Argument(
        help="NAME=VALUE, or NAME alone to read the value from stdin.", show_default=False)],
    tenant: options.Tenant = None,
) -> None:
    """Set a secret. Prefer `NAME` with the value on stdin: it stays out of shell history."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import InvalidInput

    name, sep, value = assignment.partition("=")
    if not sep:
        value = _read_value(name, Terminal())
    if not value:
        raise InvalidInput(f"the value of secret {name!r} is empty; nothing was set")
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        agent.put(f"/v1/secrets/{client.segment(name, 'secret name')}", json={"value": value})
    Terminal().say(f"{name}  set")


def _read_value(name: str, term: "Terminal") -> str:
    """The secret's value from stdin: typed without echo on a terminal, else piped in."""
    if term.stdin_is_tty:
        import getpass

        return getpass.getpass(f"Value of {name} (not shown): ")
    return sys.stdin.read().rstrip("\n")


@app.command("ls")
def ls(tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """List the secret names (values are never shown)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        names = agent.get("/v1/secrets") or []
    term = Terminal()
    if as_json:
        term.print_json(names)
    else:
        term.table(("name",), [(n,) for n in names], empty="No secrets.")


@app.command("rm")
def rm(name: Annotated[str, typer.Argument(show_default=False)], tenant: options.Tenant = None) -> None:
    """Remove a secret."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        agent.delete(f"/v1/secrets/{client.segment(name, 'secret name')}")
    Terminal().say(f"{name}  removed")
