"""``hyac runtime``: the runtimes an agent can run (platform owners only)."""

from pathlib import Path
from typing import Annotated

import typer

from hyac_cli import options

app = typer.Typer(help="List, add and remove the agent's runtimes (admins only).",
                  no_args_is_help=True)

RuntimeName = Annotated[str, typer.Argument(help="A runtime, e.g. python3.12, node20, deno.",
                                            show_default=False)]


@app.command("ls")
def ls(as_json: options.Json = False) -> None:
    """List runtimes: versions, backends, and whether this agent can run them (and why not)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    term = Terminal()
    with client.connect() as agent:
        rows = agent.get("/v1/runtimes") or []
    if as_json:
        term.print_json(rows)
        return
    table = []
    for row in rows:
        backends = ", ".join(
            name if state == "ok" else f"{name} (no)" for name, state in row["backends"].items()
        )
        status = "yes" if row["available"] else f"no: {row['reason']}"
        name = row["name"] + (" *" if row.get("default") else "")
        table.append((name, row.get("language", ""), backends, status, len(row.get("functions", []))))
    term.table(("runtime", "language", "backends", "available", "functions"), table,
               empty="No runtimes.")
    term.note("* the agent's default runtime")


@app.command("add")
def add(
    source: Annotated[str, typer.Argument(
        help="A runtime folder (with runtime.toml), or the name of a removed runtime.",
        show_default=False)],
    as_json: options.Json = False,
) -> None:
    """Add a runtime folder to the agent, or bring back a removed runtime by name."""
    import base64

    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import InvalidInput

    term = Terminal()
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "runtime.toml").is_file():
            raise InvalidInput(f"{path} has no runtime.toml (see docs/runtimes.md)")
        files = {
            p.relative_to(path).as_posix(): base64.b64encode(p.read_bytes()).decode("ascii")
            for p in sorted(path.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and "node_modules" not in p.parts
        }
        body: dict[str, object] = {"files_b64": files}
    elif "/" in source or source.startswith("."):
        raise InvalidInput(f"{source} is not a directory")
    else:
        body = {"name": source}
    with client.connect() as agent:
        added = agent.post("/v1/runtimes", json=body) or []
    if as_json:
        term.print_json(added)
        return
    for row in added:
        state = "available" if row["available"] else f"not available here: {row['reason']}"
        term.say(f"{row['name']}  added ({state})")


@app.command("rm")
def rm(name: RuntimeName) -> None:
    """Remove a runtime; refused while functions use it (they are listed)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        agent.delete(f"/v1/runtimes/{client.segment(name, 'runtime')}")
    Terminal().say(f"{name}  removed")


@app.command("default")
def default(
    name: Annotated[str | None, typer.Argument(
        help="Make this the default (omit to show it).", show_default=False)] = None,
    as_json: options.Json = False,
) -> None:
    """Show or set the runtime of deploys that name none."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    term = Terminal()
    with client.connect() as agent:
        if name is None:
            result = agent.get("/v1/runtimes/default")
        else:
            result = agent.put("/v1/runtimes/default", json={"name": name})
    if as_json:
        term.print_json(result)
    else:
        term.say(result["name"])
