"""``hyac notify``: notification channels (context.notify), their delivery log and the
platform's alert rules. A channel's URL goes in and never comes back out."""

import sys
import time
from typing import Annotated, Any

import typer

from hyac_cli import options

app = typer.Typer(help="Notifications: channels, the delivery log and platform alert rules.",
                  no_args_is_help=True)
channel_app = typer.Typer(help="Notification channels: add, ls, rm, test.", no_args_is_help=True)
alert_app = typer.Typer(help="Platform alert rules, routed to platform channels (owner only).",
                        no_args_is_help=True)
app.add_typer(channel_app, name="channel")
app.add_typer(alert_app, name="alert")

Platform = Annotated[bool, typer.Option(
    "--platform", help="The platform's channels (the owner's) rather than the tenant's.")]
Name = Annotated[str, typer.Argument(help="The channel's name.", show_default=False)]
#: how long `channel test` waits for the outcome of its test notification
TEST_WAIT = 60.0


def _base(platform: bool) -> str:
    return "/v1/notify/platform" if platform else "/v1/notify"


def _when(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) if value else "-"


@channel_app.command("add")
def channel_add(
    name: Name,
    kind: Annotated[str, typer.Option(
        "--type", help="slack, discord, teams, webhook or email.", show_default=False)],
    url: Annotated[str | None, typer.Option(
        "--url", help="The webhook URL (a secret; '-' reads it from stdin).",
        show_default=False)] = None,
    to: Annotated[list[str] | None, typer.Option(
        "--to", help="An email channel's recipient (repeat for several).",
        show_default=False)] = None,
    shared: Annotated[bool, typer.Option(
        "--shared", help="With --platform: tenants' functions may send to it as "
        "platform/NAME.")] = False,
    platform: Platform = False,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Add a channel. A generic webhook's signing key is printed this once."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    if url == "-":
        url = sys.stdin.readline().strip()
    body = {"name": name, "type": kind, "url": url, "to": to or None, "shared": shared}
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        made = agent.post(f"{_base(platform)}/channels", json=body)
    term = Terminal()
    if as_json:
        term.print_json(made)
        return
    term.say(f"{made['name']}  added ({made['type']} to {made['target']})")
    if made.get("signing_key"):
        term.say(f"signing key: {made['signing_key']}")
        term.note("Keep it now: it is not shown again. Receivers check X-Hyac-Signature "
                  "with it as they check task callbacks.")


@channel_app.command("ls")
def channel_ls(platform: Platform = False, tenant: options.Tenant = None,
               as_json: options.Json = False) -> None:
    """List channels (type and host only; URLs are never shown)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        found = agent.get(f"{_base(platform)}/channels") or []
    term = Terminal()
    if as_json:
        term.print_json(found)
        return
    term.table(("name", "type", "target", "shared"),
               [(c["name"], c["type"], c["target"], "yes" if c["shared"] else "")
                for c in found], empty="No notification channels.")


@channel_app.command("rm")
def channel_rm(name: Name, platform: Platform = False, tenant: options.Tenant = None) -> None:
    """Remove a channel (what is still to be sent to it fails)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        agent.delete(f"{_base(platform)}/channels/{client.segment(name, 'channel name')}")
    Terminal().say(f"{name}  removed")


@channel_app.command("test")
def channel_test(name: Name, platform: Platform = False, tenant: options.Tenant = None,
                 as_json: options.Json = False) -> None:
    """Send a test notification and wait for how its delivery went."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import HyacError

    term = Terminal()
    base = _base(platform)
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        sent = agent.post(f"{base}/channels/{client.segment(name, 'channel name')}/test")
        row = _wait(agent, term, base, sent["id"], name)
    if as_json:
        term.print_json(row)
    if row["status"] == "delivered":
        if not as_json:
            term.say(f"{name}  delivered ({sent['id']})")
        return
    if row["status"] == "failed":
        raise HyacError(f"test notification to {name} failed: {row['last_error']}")
    raise HyacError(f"test notification to {name} still pending after {TEST_WAIT:g} s "
                    f"(attempt {row['attempts']}: {row['last_error'] or 'not sent yet'}); "
                    f"see hyac notify deliveries --channel {name}")


def _wait(agent: Any, term: Any, base: str, delivery_id: str, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + TEST_WAIT
    with term.status(f"Sending a test notification to {name}…"):
        while True:
            rows = agent.get(f"{base}/deliveries", params={"channel": name, "limit": 50}) or []
            row = next((r for r in rows if r["id"] == delivery_id), None)
            if row is None:
                row = {"id": delivery_id, "status": "pending", "attempts": 0, "last_error": None}
            if row["status"] != "pending" or time.monotonic() > deadline:
                return row  # type: ignore[no-any-return]
            time.sleep(0.3)


@app.command("deliveries")
def deliveries(
    channel: Annotated[str | None, typer.Option(
        "--channel", help="Only those to this channel.", show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 50,
    platform: Platform = False,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """The delivery log: each notification's status, attempts and last error."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    params: dict[str, Any] = {"limit": limit}
    if channel:
        params["channel"] = channel
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        rows = agent.get(f"{_base(platform)}/deliveries", params=params) or []
    term = Terminal()
    if as_json:
        term.print_json(rows)
        return
    term.table(("id", "channel", "status", "attempts", "created", "last error"),
               [(r["id"], r["channel"], r["status"], r["attempts"], _when(r["created_at"]),
                 r["last_error"] or "") for r in rows], empty="No notifications sent.")


@alert_app.command("add")
def alert_add(
    kind: Annotated[str, typer.Argument(
        help="task_dead, error_rate, quota, sandbox_unavailable, vulnerabilities or "
        "agent_restarted.", show_default=False)],
    channel: Annotated[str, typer.Option(
        "--channel", help="The platform channel it goes to.", show_default=False)],
    threshold: Annotated[float | None, typer.Option(
        "--threshold", help="error_rate: the failed fraction that fires (default 0.5).",
        show_default=False)] = None,
    window: Annotated[str | None, typer.Option(
        "--window", help="error_rate: the window looked at, e.g. 5m (default).",
        show_default=False)] = None,
    min_calls: Annotated[int | None, typer.Option(
        "--min-calls", help="error_rate: fewer invocations than this never fire (default 10).",
        show_default=False)] = None,
    as_json: options.Json = False,
) -> None:
    """Route an alert kind to a platform channel."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    given = {"threshold": threshold, "window": window, "min_calls": min_calls}
    body = {"kind": kind, "channel": channel,
            "options": {k: v for k, v in given.items() if v is not None}}
    with client.connect() as agent:
        made = agent.post("/v1/notify/alerts", json=body)
    term = Terminal()
    if as_json:
        term.print_json(made)
    else:
        term.say(f"rule {made['id']}: {made['kind']} -> {made['channel']}")


@alert_app.command("ls")
def alert_ls(as_json: options.Json = False) -> None:
    """The alert rules, and the conditions firing now."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        found = agent.get("/v1/notify/alerts")
    term = Terminal()
    if as_json:
        term.print_json(found)
        return
    term.table(("id", "kind", "channel", "options"),
               [(r["id"], r["kind"], r["channel"],
                 ", ".join(f"{k}={v:g}" for k, v in r["options"].items()))
                for r in found["rules"]], empty="No alert rules.")
    for active in found["active"]:
        term.say(f"firing since {_when(active['since'])}: {active['title']}")


@alert_app.command("rm")
def alert_rm(rule_id: Annotated[int, typer.Argument(help="The rule's id.", show_default=False)]
             ) -> None:
    """Remove an alert rule (its conditions are forgotten)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        agent.delete(f"/v1/notify/alerts/{rule_id}")
    Terminal().say(f"rule {rule_id}  removed")
