"""``hyac storage``: a tenant's objects (``context.storage``): list, get, put, remove."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hyac_cli import options

if TYPE_CHECKING:
    from hyac_cli.client import AgentClient

app = typer.Typer(help="Tenant object storage (context.storage): list, get, put, remove.",
                  no_args_is_help=True)

Key = Annotated[str, typer.Argument(help="The object's key, e.g. reports/2026-01.pdf.",
                                    show_default=False)]


def _connect(tenant: str | None) -> "AgentClient":
    from hyac_cli import client

    return client.connect(tenant=options.tenant_of(tenant))


def _path(key: str) -> str:
    from urllib.parse import quote

    from hyac_common.names import validate_object_key

    return "/v1/storage/" + quote(validate_object_key(key), safe="/")


def _show(info: dict[str, Any], as_json: bool) -> None:
    from hyac_cli.terminal import Terminal

    term = Terminal()
    if as_json:
        term.print_json(info)
    else:
        term.say(f"{info['key']}  {info['size']} bytes  {info['content_type']}")


PAGE = 1000  # the most the agent lists at once


@app.command("ls")
def ls(
    prefix: Annotated[str, typer.Argument(help="Only keys starting with this, e.g. photos/.")] = "",
    limit: Annotated[int | None, typer.Option("--limit", min=1, show_default=False,
                                              help="At most this many (default: all).")] = None,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """List objects, in key order (all of them, a page of 1000 at a time)."""
    from hyac_cli.commands.functions import _time
    from hyac_cli.terminal import Terminal

    objects: list[dict[str, Any]] = []
    with _connect(tenant) as agent:
        while limit is None or len(objects) < limit:
            want = PAGE if limit is None else min(PAGE, limit - len(objects))
            params = {"prefix": prefix, "limit": want,
                      "start_after": objects[-1]["key"] if objects else ""}
            page = agent.get("/v1/storage", params=params) or []
            objects += page
            if len(page) < want:
                break
    term = Terminal()
    if as_json:
        term.print_json(objects)
        return
    rows = [(o["key"], o["size"], o["content_type"], _time(o["updated_at"])) for o in objects]
    term.table(("key", "size", "content type", "updated"), rows, empty="No objects.")


@app.command("get")
def get(
    key: Key,
    output: Annotated[Path | None, typer.Option("--output", "-o", show_default=False,
                                                help="Write to this file instead of stdout.")] = None,
    tenant: options.Tenant = None,
) -> None:
    """Print an object's bytes on stdout, or write them to a file with -o."""
    from hyac_cli.terminal import Terminal

    with _connect(tenant) as agent:
        data = agent.send("GET", _path(key)).content
    if output is None:
        Terminal().write_bytes(data)
    else:
        output.write_bytes(data)


@app.command("put")
def put(
    key: Key,
    source: Annotated[str, typer.Argument(help="A file, or - to read stdin.", metavar="FILE|-",
                                          show_default=False)],
    content_type: Annotated[str | None, typer.Option(
        "--content-type", show_default=False,
        help="Content type (default: guessed from the file name, else application/octet-stream).",
    )] = None,
    tenant: options.Tenant = None,
    as_json: options.Json = False,
) -> None:
    """Store a file (or stdin) as an object; an object under the same key is replaced."""
    import json
    import mimetypes

    path = _path(key)
    data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    if content_type is None and source != "-":
        content_type = mimetypes.guess_type(source)[0]
    headers = {"content-type": content_type or "application/octet-stream"}
    with _connect(tenant) as agent:
        answer = agent.send("PUT", path, content=data, headers=headers)
    _show(json.loads(answer.content), as_json)


@app.command("rm")
def rm(key: Key, tenant: options.Tenant = None) -> None:
    """Remove an object."""
    from hyac_cli.terminal import Terminal

    path = _path(key)
    with _connect(tenant) as agent:
        agent.delete(path)
    Terminal().say(f"{key}  removed")
