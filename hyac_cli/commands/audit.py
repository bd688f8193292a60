"""``hyac audit``: who changed what, when, from where (tenant admins and the owner)."""

from typing import Annotated

import typer

from hyac_cli import options


def audit(
    tenant: options.Tenant = None,
    since: Annotated[str | None, typer.Option("--since", help="Only the last DUR, e.g. 1h, 7d.")] = None,
    all_tenants: Annotated[bool, typer.Option("--all", help="Every tenant (owner).")] = False,
    as_json: options.Json = False,
) -> None:
    """Show the audit log of a tenant."""
    import time

    from hyac_cli import client
    from hyac_cli.commands.functions import _time
    from hyac_cli.terminal import Terminal
    from hyac_common.durations import parse_duration

    params: dict[str, object] = {}
    if since:
        params["since"] = time.time() - parse_duration(since, "--since")
    if all_tenants:
        params["all"] = "true"
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        records = agent.get("/v1/audit", params=params) or []
    term = Terminal()
    if as_json:
        term.print_json(records)
        return
    rows = [(_time(r["ts"]), r["actor"], _principal(r), r.get("tenant") or "-", r["action"],
             r.get("target") or "-", r["result"], r.get("client") or "-") for r in records]
    term.table(("time", "actor", "principal", "tenant", "action", "target", "result", "client"),
               rows, empty="No audit records.")


def _principal(record: dict[str, object]) -> str:
    """``owner``, ``user:usr_…``, or ``?`` for a record made before kinds were recorded:
    the name alone says nothing certain there."""
    kind, ident = record.get("actor_kind"), record.get("actor_id")
    if not kind:
        return "?"
    return str(kind) if kind == ident else f"{kind}:{ident}"
