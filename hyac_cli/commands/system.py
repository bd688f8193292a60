"""``hyac system``: the platform owner's settings. ``hyac system integrations``: mail,
object storage and the other integrations, configured once for every tenant."""

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from hyac_cli import options

if TYPE_CHECKING:
    from hyac_cli.terminal import Terminal

app = typer.Typer(help="The platform owner's settings.", no_args_is_help=True)
integrations_app = typer.Typer(
    help="Integrations configured once for the platform (mail, object storage, …): show, "
         "set, test, unset. Needs the platform owner's token.",
    no_args_is_help=True,
)
app.add_typer(integrations_app, name="integrations")

Kind = Annotated[str, typer.Argument(help="The integration: mail, storage, … "
                                          "(`hyac system integrations show` lists them).",
                                     show_default=False)]


@integrations_app.command("show")
def show(
    kind: Annotated[Optional[str], typer.Argument(help="One integration (default: all).",
                                                  show_default=False)] = None,
    as_json: options.Json = False,
) -> None:
    """Each setting's value and where it comes from: env (an HYAC_* variable of the agent,
    which wins), store (set here) or default. Secrets show as "set", never their value."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        if kind is None:
            views = agent.get("/v1/system/integrations") or []
        else:
            views = [agent.get(f"/v1/system/integrations/{client.segment(kind, 'integration')}")]
    term = Terminal()
    if as_json:
        term.print_json(views if kind is None else views[0])
        return
    for number, view in enumerate(views):
        _print_view(term, view, first=number == 0)


def _print_view(term: "Terminal", view: dict[str, Any], first: bool = True) -> None:
    if not first:
        term.write("\n")
    state = "configured" if view.get("configured") else "not configured"
    term.say(f"{view['kind']}: {view.get('title', '')} ({state})")
    rows = []
    for setting in view.get("settings", []):
        value = setting.get("value")
        shown = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        source = setting.get("source", "")
        if source == "env" and setting.get("env"):
            source = f"env ({setting['env']})"
        rows.append((setting["name"], shown, source))
    term.table(("setting", "value", "source"), rows)


@integrations_app.command("set")
def set_(
    kind: Kind,
    assignments: Annotated[list[str], typer.Argument(
        help="NAME=VALUE pairs; NAME alone reads the value from stdin (use it for secrets: "
             "they stay out of shell history); NAME= removes the stored value.",
        show_default=False)],
    as_json: options.Json = False,
) -> None:
    """Change settings. The new settings are tried first (the SMTP server signed in to,
    the bucket written and read): if that fails nothing is saved, and the reason is shown."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.errors import InvalidInput

    term = Terminal()
    changes: dict[str, Any] = {}
    prompted = False
    for item in assignments:
        name, sep, value = item.partition("=")
        if not name:
            raise InvalidInput(f"{item!r} is not NAME=VALUE")
        if not sep:
            if prompted:
                raise InvalidInput("only one setting can be read from stdin at a time")
            value, prompted = _read_value(name, term), True
        changes[name] = value
    with client.connect(timeout=120) as agent, term.status(f"Checking the {kind} settings…"):
        view = agent.put(f"/v1/system/integrations/{client.segment(kind, 'integration')}",
                         json={"settings": changes})
    if as_json:
        term.print_json(view)
    else:
        _print_view(term, view)


def _read_value(name: str, term: "Terminal") -> str:
    if term.stdin_is_tty:
        import getpass

        return getpass.getpass(f"Value of {name} (not shown): ")
    import sys

    return sys.stdin.read().rstrip("\n")


@integrations_app.command("unset")
def unset(
    kind: Kind,
    names: Annotated[Optional[list[str]], typer.Argument(
        help="Settings to remove (default: every stored one).", show_default=False)] = None,
    as_json: options.Json = False,
) -> None:
    """Remove stored settings: the agent's environment or the defaults apply again."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        view = agent.delete(f"/v1/system/integrations/{client.segment(kind, 'integration')}",
                            params=[("setting", n) for n in names or []])
    term = Terminal()
    if as_json:
        term.print_json(view)
    else:
        _print_view(term, view)


@integrations_app.command("test")
def test(
    kind: Kind,
    to: Annotated[Optional[str], typer.Option(
        "--to", help="mail: send a test message to this address (default: only sign in).",
        show_default=False)] = None,
    as_json: options.Json = False,
) -> None:
    """Try an integration with the settings in effect; one line saying what worked or
    what failed (exit code 1)."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    term = Terminal()
    args = {"to": to} if to else {}
    with client.connect(timeout=120) as agent, term.status(f"Testing {kind}…"):
        answer = agent.post(f"/v1/system/integrations/{client.segment(kind, 'integration')}/test",
                            json=args or None)
    if as_json:
        term.print_json(answer)
    else:
        term.say(f"{kind}: ok: {answer.get('message', '')}")
