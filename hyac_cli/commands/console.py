"""``hyac console``: the agent's web console, signed in with a one-time link."""

from typing import Annotated

import typer

from hyac_cli import options


def console(
    print_url: Annotated[bool, typer.Option(
        "--print-url", help="Only print the sign-in URL; do not open a browser.")] = False,
    as_json: options.Json = False,
) -> None:
    """Open the console of the current profile's agent in the browser.

    The URL signs in once: it holds a code that expires in 60 seconds, never the token."""
    import sys
    import webbrowser

    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    with client.connect() as agent:
        answer = agent.post("/v1/console/login-codes")
        url = agent.url.rstrip("/") + answer["path"]
    term = Terminal()
    if as_json:
        term.print_json({"url": url, "expires_in": answer["expires_in"]})
    else:
        # Printed raw: a wrapped URL would not work when pasted.
        sys.stdout.write(url + "\n")
        sys.stdout.flush()
    if not print_url and not webbrowser.open(url):
        term.note("No browser could be opened here: open the URL above within a minute.")
