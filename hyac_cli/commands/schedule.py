"""``hyac schedule``: run a function as a background task on a cron schedule."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hyac_cli import options

app = typer.Typer(help="Cron schedules: run a function as a task at each tick, exactly once "
                       "across agents.", no_args_is_help=True)

ScheduleId = Annotated[str, typer.Argument(help="The schedule's id (sch_…, from `hyac schedule ls`).",
                                           show_default=False)]


def _when(at: float | None) -> str:
    from hyac_cli.commands.logs import format_time

    return format_time(at) if at else "-"


def _show(schedule: dict[str, Any], as_json: bool, verb: str) -> None:
    from hyac_cli.terminal import Terminal

    term = Terminal()
    if as_json:
        term.print_json(schedule)
        return
    state = "paused" if schedule["paused"] else f"next {_when(schedule['next_run_at'])}"
    term.say(f"{schedule['id']}  {schedule['function']}  {schedule['cron']} "
             f"({schedule['timezone']})  {verb}, {state}")


@app.command("add")
def add(
    function: Annotated[str, typer.Argument(help="The function to run.", show_default=False)],
    cron: Annotated[str, typer.Argument(
        help='A cron line: 5 fields ("*/5 * * * *"), 6 with seconds first, or @hourly/@daily…',
        show_default=False)],
    timezone: Annotated[str, typer.Option("--timezone", "--tz",
                                          help="IANA timezone of the cron line.")] = "UTC",
    catch_up: Annotated[str, typer.Option(
        "--catch-up", help="Ticks missed while no agent ran: 'once' runs the last one late, "
                           "'skip' runs none.")] = "once",
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Run FUNCTION as a background task at each tick of CRON."""
    from hyac_cli import client

    body = {"function": function, "cron": cron, "timezone": timezone, "catch_up": catch_up}
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        _show(agent.post("/v1/schedules", json=body), as_json, "added")


@app.command("ls")
def ls(
    function: Annotated[str | None, typer.Option("--function", "-f",
                                                 help="Only this function's.")] = None,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """List the tenant's schedules, from hyac.toml and added here."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    params = {"function": function} if function else {}
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        schedules = agent.get("/v1/schedules", params=params) or []
    term = Terminal()
    if as_json:
        term.print_json(schedules)
        return
    term.table(
        ("id", "function", "cron", "timezone", "from", "next run", "last task"),
        [(s["id"], s["function"], s["cron"], s["timezone"], s["source"],
          "paused" if s["paused"] else _when(s["next_run_at"]), s.get("last_task_id") or "-")
         for s in schedules],
        empty="No schedules.",
    )


def _act(path: str, tenant: str | None, as_json: bool, verb: str) -> None:
    from hyac_cli import client

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        _show(agent.post(path), as_json, verb)


@app.command("pause")
def pause(schedule_id: ScheduleId, tenant: options.Tenant = None,
          as_json: options.Json = False) -> None:
    """Stop running a schedule's ticks until it is resumed."""
    _act(f"/v1/schedules/{_segment(schedule_id)}/pause", tenant, as_json, "paused")


@app.command("resume")
def resume(schedule_id: ScheduleId, tenant: options.Tenant = None,
           as_json: options.Json = False) -> None:
    """Run a paused schedule again, from its next tick (paused ticks are not caught up)."""
    _act(f"/v1/schedules/{_segment(schedule_id)}/resume", tenant, as_json, "resumed")


@app.command("run")
def run(schedule_id: ScheduleId, tenant: options.Tenant = None,
        as_json: options.Json = False) -> None:
    """Run a schedule's function now, as a tick would; prints the task id."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        answer = agent.post(f"/v1/schedules/{_segment(schedule_id)}/run")
    term = Terminal()
    if as_json:
        term.print_json(answer)
    else:
        term.say(answer["task_id"])


@app.command("rm")
def rm(schedule_id: ScheduleId, tenant: options.Tenant = None,
       as_json: options.Json = False) -> None:
    """Remove a schedule added with `hyac schedule add` (hyac.toml's: remove it there)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        answer = agent.delete(f"/v1/schedules/{_segment(schedule_id)}")
    term = Terminal()
    if as_json:
        term.print_json(answer)
    else:
        term.say(f"{schedule_id} removed")


def _segment(value: str) -> str:
    from hyac_cli import client

    return client.segment(value, "id")
