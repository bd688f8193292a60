"""``hyac quota``: a tenant's limits and how much of each is in use."""

from typing import Annotated

import typer

from hyac_cli import options

app = typer.Typer(help="Tenant quotas: CPU, memory, storage, executions, timeout, functions, mail.",
                  no_args_is_help=True)


@app.command("set")
def set_(
    values: Annotated[list[str], typer.Argument(
        help="NAME=VALUE pairs, e.g. memory=512Mi executions_per_minute=100 timeout=5m "
             "(VALUE 'none' clears it).", show_default=False)],
    platform: Annotated[bool, typer.Option("--platform", help="Set the platform's defaults "
                                           "and ceilings (owner).")] = False,
    tenant: options.Tenant = None,
) -> None:
    """Set quotas of a tenant (admin, within the platform's limits) or of the platform."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import InvalidInput

    parsed = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InvalidInput(f"expected NAME=VALUE, got {item!r}")
        parsed[name.strip()] = None if value.strip().lower() in ("none", "") else value.strip()
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        path = "/v1/platform/quotas" if platform else "/v1/quotas"
        agent.put(path, json={"values": parsed})
    Terminal().say("quotas updated")


@app.command("show")
def show(tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """Show each quota's limit against its current use."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        report = agent.get("/v1/quotas")
    term = Terminal()
    if as_json:
        term.print_json(report)
        return
    rows = [
        (name, _fmt(name, q.get("use")), _fmt(name, q.get("limit")) if q.get("limit") is not None
         else "unlimited", q.get("source") or "-")
        for name, q in report["quotas"].items()
    ]
    term.table(("quota", "use", "limit", "set by"), rows)


def _fmt(name: str, value: object) -> str:
    if value is None:
        return "-"
    number = float(value)  # type: ignore[arg-type]
    if name in ("memory", "storage"):
        for unit, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
            if number >= size:
                return f"{number / size:.1f}{unit}"
        return f"{number:.0f}B"
    if name == "timeout":
        return f"{number:g}s"
    return f"{number:g}"
