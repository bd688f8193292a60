"""``hyac token``: API tokens. A new token is printed once; the agent keeps only its hash."""

from typing import Annotated

import typer

from hyac_cli import options

app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)


@app.command("create")
def create(
    user: Annotated[str | None, typer.Option("--user", "-u", help="For this user (default: you).")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Scope it to this tenant.")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="Lifetime, e.g. 30d, 12h.")] = None,
    name: Annotated[str, typer.Option("--name", help="A label to recognise it by.")] = "",
    as_json: options.Json = False,
) -> None:
    """Create an API token and print it (this is the only time it is shown)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.durations import parse_duration

    payload: dict[str, object] = {"user": user, "tenant": tenant, "name": name}
    if expires:
        payload["expires_in"] = parse_duration(expires, "--expires")
    with client.connect() as agent:
        made = agent.post("/v1/tokens", json=payload)
    term = Terminal()
    if as_json:
        term.print_json(made)
        return
    term.write(made["token"] + "\n")
    term.note(f"{made['id']} for {made['user']}"
              + (f" in tenant {made['tenant']}" if made.get("tenant") else "")
              + ". Store it now: it cannot be shown again.")


@app.command("ls")
def ls(as_json: options.Json = False) -> None:
    """List the tokens you may manage (never their secret part)."""
    from hyac_cli import client
    from hyac_cli.commands.functions import _time
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        tokens = agent.get("/v1/tokens") or []
    term = Terminal()
    if as_json:
        term.print_json(tokens)
        return
    rows = [(t["id"], t["user"], t.get("tenant") or "*", t.get("name") or "",
             _time(t.get("expires_at")), "revoked" if t.get("revoked_at") else "active")
            for t in tokens]
    term.table(("id", "user", "tenant", "name", "expires", "state"), rows, empty="No tokens.")


@app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (tok_…).", show_default=False)],
) -> None:
    """Revoke a token: it stops working at once."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        agent.delete(f"/v1/tokens/{client.segment(token_id, 'token id')}")
    Terminal().say(f"{token_id}  revoked")
