"""``hyac login`` and ``hyac profile``: remote agents, by name."""

from typing import Annotated

import typer

from hyac_cli import options

profile_app = typer.Typer(help="Agent profiles: which agent and token commands use.",
                          no_args_is_help=True)


def login(
    url: Annotated[str, typer.Argument(help="The agent's URL.", show_default=False)],
    token: Annotated[str, typer.Option("--token", help="An API token (hyac token create).",
                                       prompt=True, hide_input=True)],
    profile: Annotated[str, typer.Option("--profile", "-p", help="Profile name.")] = "default",
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="The profile's tenant.")] = None,
) -> None:
    """Check a token against an agent and save both as a profile, made the active one."""
    from hyac_cli import client, profiles
    from hyac_cli.terminal import Terminal
    from hyac_common.names import validate_name

    validate_name(profile, "profile")
    endpoint = client.Endpoint(client.check_url(url, "the command line"), token)
    with client.AgentClient(endpoint, transport=client.transport_factory()) as agent:
        who = agent.get("/v1/whoami")
    config = profiles.load()
    entry = {"url": endpoint.url, "token": token}
    chosen = tenant or who.get("scope")
    if chosen:
        entry["tenant"] = validate_name(chosen, "tenant")
    config.setdefault("profiles", {})[profile] = entry
    config["active"] = profile
    profiles.save(config)
    Terminal().say(f"logged in to {endpoint.url} as {who['user']} (profile {profile})")


@profile_app.command("ls")
def ls(as_json: options.Json = False) -> None:
    """List profiles; '*' marks the active one ('local' is the local agent)."""
    from hyac_cli import profiles
    from hyac_cli.terminal import Terminal

    config = profiles.load()
    active = config.get("active") or "local"
    entries = config.get("profiles") or {}
    term = Terminal()
    if as_json:
        term.print_json({"active": active, "profiles": {
            n: {k: v for k, v in p.items() if k != "token"} for n, p in entries.items()}})
        return
    rows = [("*" if active == "local" else "", "local", "DATA_DIR/agent.json", "-")]
    rows += [("*" if active == n else "", n, p.get("url"), p.get("tenant") or "-")
             for n, p in sorted(entries.items())]
    term.table(("", "name", "url", "tenant"), rows)


@profile_app.command("use")
def use(name: Annotated[str, typer.Argument(help="A profile, or 'local'.", show_default=False)]) -> None:
    """Make a profile the active one ('local': the local agent again)."""
    from hyac_cli import profiles
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import InvalidInput

    config = profiles.load()
    if name != "local" and name not in (config.get("profiles") or {}):
        raise InvalidInput(f"no profile {name!r} (see `hyac profile ls`)")
    config["active"] = name
    profiles.save(config)
    Terminal().say(f"using {name}")
