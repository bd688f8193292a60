"""``hyac ls``, ``hyac rm``, ``hyac versions`` and ``hyac rollback``: deployed functions."""

from typing import Annotated, Any

import typer

from hyac_cli import options

Name = Annotated[str, typer.Argument(help="The function's name.", show_default=False)]


def ls(tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """List the deployed functions."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    term = Terminal()
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        functions = agent.get("/v1/functions") or []
    if as_json:
        term.print_json(functions)
        return
    rows = [
        (f["name"], f"v{f['active_version']}", f.get("versions"), f.get("runtime"),
         str(f.get("sha256", ""))[:12], _time(f.get("updated_at")), f.get("project"))
        for f in functions
    ]
    term.table(
        ("name", "active", "versions", "runtime", "sha256", "updated", "project"),
        rows,
        empty="No functions deployed yet — run `hyac deploy` in a project.",
    )


def rm(
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    tenant: options.Tenant = None,
) -> None:
    """Delete a function, all its versions and its edge settings (access mode, keys, IP
    rules, CORS, rate limit, and the custom domains bound to it)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.names import validate_name

    validate_name(name)
    term = Terminal()
    if not yes and term.stdin_is_tty:
        if not typer.confirm(f"Delete function {name!r} and all its versions?", default=False):
            term.note("Nothing deleted.", style=None)
            raise typer.Exit(1)
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        answer = agent.delete(f"/v1/functions/{name}") or {}
    term.say(f"{name}  deleted")
    for host in answer.get("domains_removed") or []:
        term.note(f"domain {host} was bound to it: removed too")


def versions(name: Name, tenant: options.Tenant = None, as_json: options.Json = False) -> None:
    """List the versions of a function; '*' marks the active one."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.names import validate_name

    validate_name(name)
    term = Terminal()
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        found = agent.get(f"/v1/functions/{name}/versions") or []
    if as_json:
        term.print_json(found)
        return
    rows = [
        ("*" if v.get("active") else "", f"v{v['version']}", str(v.get("sha256", ""))[:12],
         v.get("runtime"), _time(v.get("created_at")))
        for v in sorted(found, key=lambda v: v["version"], reverse=True)
    ]
    term.table(("", "version", "sha256", "runtime", "created"), rows,
               empty=f"Function {name!r} has no versions.")


def rollback(
    name: Name,
    version: Annotated[
        str, typer.Argument(help="The version to make active, e.g. 2 or v2.", show_default=False)
    ],
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Make an older version of a function the active one."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import InvalidInput
    from hyac_common.names import validate_name

    validate_name(name)
    number = version.lower().removeprefix("v")
    if not number.isdigit() or int(number) < 1:
        raise InvalidInput(f"invalid version {version!r}: use a number such as 2 (or v2)")
    term = Terminal()
    with client.connect(tenant=options.tenant_of(tenant)) as agent:
        result = agent.post(f"/v1/functions/{name}/rollback", json={"version": int(number)})
    if as_json:
        term.print_json(result)
        return
    term.styled([(name, "bold"), (f"  v{result.get('active_version', number)}  ", None),
                 ("active", "green")])


def _time(ts: Any | None) -> str:
    if ts is None:
        return "-"
    from datetime import datetime

    return datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M:%S")
