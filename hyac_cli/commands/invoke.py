"""``hyac invoke``: run a deployed function once and print what it answered."""

from typing import Annotated

import typer

from hyac_cli import options
from hyac_cli.invoking import DEFAULT_WAIT


def invoke(
    name: Annotated[str, typer.Argument(help="The function to run.", show_default=False)],
    data: Annotated[
        str | None,
        typer.Option(
            "--data", "-d", show_default=False, metavar="JSON|@FILE|-",
            help="Request body: JSON or text, @FILE to read a file, - to read stdin.",
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option("--method", "-X", show_default=False, metavar="METHOD",
                     help="HTTP method (default: POST with --data, else GET)."),
    ] = None,
    path: Annotated[str, typer.Option("--path", help="Path below the function's route.")] = "/",
    query: Annotated[
        list[str] | None,
        typer.Option("--query", "-q", show_default=False, metavar="K=V",
                     help="Query parameter k=v (repeatable)."),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", "-H", show_default=False, metavar="'K: V'",
                     help="Header 'k: v' (repeatable)."),
    ] = None,
    background: Annotated[
        bool, typer.Option("--async", help="Queue the call as a background task; print its id.")
    ] = False,
    callback_url: Annotated[
        str | None,
        typer.Option("--callback-url", show_default=False, metavar="URL",
                     help="With --async: POST the task's outcome here (signed) when it ends."),
    ] = None,
    wait: Annotated[
        str,
        typer.Option("--wait", metavar="DURATION",
                     help="How long to wait for the answer (e.g. 30s, 10m)."),
    ] = DEFAULT_WAIT,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Invoke a function and print its response body.

    A function that raises prints its traceback on stderr and exits with status 1.
    """
    from hyac_cli.invoking import run_invoke

    status = run_invoke(
        name, data=data, method=method, path=path, query=query, header=header,
        background=background, callback_url=callback_url, wait=wait, tenant=tenant,
        as_json=as_json,
    )
    if status:
        raise typer.Exit(status)
