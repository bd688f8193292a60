"""``hyac webhook``: a signed URL that runs a function as a task on each POST."""

from __future__ import annotations

from typing import Annotated

import typer

from hyac_cli import options

app = typer.Typer(help="Inbound webhooks: a URL per function, signed like GitHub's, Stripe's "
                       "or plain HMAC-SHA256.", no_args_is_help=True)


@app.command("add")
def add(
    function: Annotated[str, typer.Argument(help="The function each POST runs.",
                                            show_default=False)],
    secret: Annotated[str | None, typer.Option(
        "--secret", help="The signing secret the sender uses (default: a new random one).",
    )] = None,
    scheme: Annotated[str, typer.Option(
        "--scheme", help="How requests are signed: github (X-Hub-Signature-256), stripe "
                         "(Stripe-Signature) or hmac-sha256 (X-Hyac-Signature).",
    )] = "hmac-sha256",
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Make a webhook URL for FUNCTION; prints the URL and its secret (shown this once)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    body = {"function": function, "scheme": scheme, "secret": secret}
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        made = agent.post("/v1/webhooks", json=body)
        made["url"] = agent.url + made["path"]
    term = Terminal()
    if as_json:
        term.print_json(made)
        return
    term.say(f"url     {made['url']}")
    term.say(f"secret  {made['secret']}")
    term.note(f"{made['id']}: {scheme} signatures. The secret is not shown again.")


@app.command("ls")
def ls(
    function: Annotated[str | None, typer.Option("--function", "-f",
                                                 help="Only this function's.")] = None,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """List the tenant's webhooks (never their secrets)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    params = {"function": function} if function else {}
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        hooks = agent.get("/v1/webhooks", params=params) or []
        base = agent.url
    term = Terminal()
    if as_json:
        term.print_json(hooks)
        return
    term.table(("id", "function", "scheme", "url", "last task"),
               [(h["id"], h["function"], h["scheme"], base + h["path"],
                 h.get("last_task_id") or "-") for h in hooks],
               empty="No webhooks.")


@app.command("rm")
def rm(
    webhook_id: Annotated[str, typer.Argument(help="The webhook's id (whk_…).",
                                              show_default=False)],
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Remove a webhook: its URL answers 404 from now on."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        answer = agent.delete(f"/v1/webhooks/{client.segment(webhook_id, 'id')}")
    term = Terminal()
    if as_json:
        term.print_json(answer)
    else:
        term.say(f"{webhook_id} removed")
