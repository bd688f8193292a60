"""``hyac trigger``: run a function on events — the tenant's storage puts and deletes, or
the outcomes of another function's tasks — and list every trigger of the functions."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hyac_cli import options

app = typer.Typer(help="Event triggers (storage, task outcomes), and every trigger of the "
                       "tenant's functions.", no_args_is_help=True)


@app.command("add")
def add(
    function: Annotated[str, typer.Argument(help="The function the events run.",
                                            show_default=False)],
    source: Annotated[str, typer.Argument(
        help="'storage' (objects of the tenant) or 'task' (outcomes of --of's tasks).",
        show_default=False)],
    event: Annotated[list[str] | None, typer.Option(
        "--event", "-e", help="storage: put, delete; task: succeeded, dead. Repeat it; "
                              "default: all of the source's.")] = None,
    prefix: Annotated[str, typer.Option("--prefix",
                                        help="storage: only keys that start with it.")] = "",
    of: Annotated[str | None, typer.Option(
        "--of", help="task: the function (of this tenant) whose task outcomes it takes.")] = None,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Run FUNCTION as a task, with the event as its body, on each event of SOURCE."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    body = {"function": function, "source": source, "events": event or [], "prefix": prefix,
            "watched": of}
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        made = agent.post("/v1/triggers", json=body)
    term = Terminal()
    if as_json:
        term.print_json(made)
    else:
        term.say(f"{made['id']}  {function}  on {_source(made)}")


def _source(subscription: dict[str, Any]) -> str:
    events = "/".join(subscription["events"])
    if subscription["source"] == "task":
        return f"{subscription['watched']} tasks {events}"
    where = f" under {subscription['prefix']!r}" if subscription.get("prefix") else ""
    return f"storage {events}{where}"


@app.command("ls")
def ls(
    function: Annotated[str | None, typer.Option("--function", "-f",
                                                 help="Only this function's.")] = None,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """List every trigger of the tenant's functions: schedules, events, webhooks."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    params = {"function": function} if function else {}
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        found = agent.get("/v1/triggers", params=params) or []
    term = Terminal()
    if as_json:
        term.print_json(found)
        return
    rows: list[tuple[str, ...]] = []
    for entry in found:
        for s in entry["schedules"]:
            rows.append((entry["function"], s["id"], "schedule",
                         f"{s['cron']} ({s['timezone']})" + (" paused" if s["paused"] else ""),
                         s["source"], s.get("last_task_id") or "-"))
        for e in entry["subscriptions"]:
            rows.append((entry["function"], e["id"], "event", _source(e), e["origin"],
                         e.get("last_task_id") or "-"))
        for w in entry["webhooks"]:
            rows.append((entry["function"], w["id"], "webhook", f"{w['scheme']} {w['path']}",
                         "api", w.get("last_task_id") or "-"))
    term.table(("function", "id", "kind", "what", "from", "last task"), rows,
               empty="No triggers: functions run when called.")


@app.command("rm")
def rm(
    subscription_id: Annotated[str, typer.Argument(help="The event trigger's id (sub_…).",
                                                   show_default=False)],
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Remove an event trigger."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        answer = agent.delete(f"/v1/triggers/{client.segment(subscription_id, 'id')}")
    term = Terminal()
    if as_json:
        term.print_json(answer)
    else:
        term.say(f"{subscription_id} removed")
