"""``hyac invoke``: run a deployed function once and print what it answered."""

import sys
from typing import Annotated, Any

import typer

from hyac_cli import options
from hyac_common.errors import InvalidInput

# The agent enforces the function's own timeout; this only stops the CLI from waiting
# forever on an agent that went silent.
DEFAULT_WAIT = "1h"


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
    import base64

    from hyac_cli import client
    from hyac_cli.terminal import Terminal
    from hyac_common.durations import parse_duration
    from hyac_common.names import validate_name
    from hyac_common.wire import InvokeRequest, InvokeResult

    validate_name(name)
    if callback_url is not None and not background:
        raise InvalidInput("--callback-url goes with --async")
    body, content_type = read_body(data)
    headers = parse_pairs(header or [], ":", "header", "'name: value'")
    if content_type and not any(k.lower() == "content-type" for k in headers):
        headers["content-type"] = content_type
    request = InvokeRequest(
        method=(method or ("POST" if data is not None else "GET")).upper(),
        path=path if path.startswith("/") else "/" + path,
        query=parse_pairs(query or [], "=", "query parameter", "key=value"),
        headers=headers,
        body_b64=base64.b64encode(body).decode("ascii"),
    )
    seconds = parse_duration(wait, "--wait")
    term = Terminal()
    params = {"mode": "async"} if background else {}
    if callback_url:
        params["callback_url"] = callback_url
    with client.connect(tenant=options.tenant_of(tenant), timeout=seconds) as agent:
        with term.status(f"invoking {name}…"):
            answer = agent.post(
                f"/v1/functions/{name}/invoke", json=request.model_dump(), params=params or None
            )
    if isinstance(answer, dict) and "task_id" in answer:  # queued (--async, or a background function)
        if as_json:
            term.print_json(answer)
        else:
            term.write(f"{answer['task_id']}\n")
            if term.stderr_is_tty:
                term.note(f"queued; follow it with `hyac tasks watch {answer['task_id']}`")
        return
    result = InvokeResult.model_validate(answer)
    if as_json:
        term.print_json(result.model_dump(mode="json"))
    elif result.ok:
        write_body(term, base64.b64decode(result.body_b64), result.headers)
    if not result.ok:
        if not as_json:
            term.write_err(_traceback_of(result.error))
        raise typer.Exit(1)


def read_body(data: str | None) -> tuple[bytes, str | None]:
    """The body bytes named by --data, and the content-type they suggest."""
    import json

    if data is None:
        return b"", None
    if data == "-":
        stdin = getattr(sys.stdin, "buffer", None)
        body = stdin.read() if stdin is not None else sys.stdin.read().encode()
    elif data.startswith("@"):
        from pathlib import Path

        body = Path(data[1:]).expanduser().read_bytes()
    else:
        body = data.encode("utf-8")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return body, "application/octet-stream"
    try:
        json.loads(text)
    except ValueError:
        return body, "text/plain; charset=utf-8"
    return body, "application/json"


def parse_pairs(items: list[str], separator: str, what: str, form: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, found, value = item.partition(separator)
        if not found or not key.strip():
            raise InvalidInput(f"invalid {what} {item!r}: expected {form}")
        pairs[key.strip()] = value.strip() if separator == ":" else value
    return pairs


def write_body(term: Any, body: bytes, headers: dict[str, str]) -> None:
    """The body on stdout as-is; text gets a final newline if it lacks one."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if _is_text(content_type, body):
        text = body.decode("utf-8", "replace")
        term.write(text if not text or text.endswith("\n") else text + "\n")
    else:
        term.write_bytes(body)


def _is_text(content_type: str, body: bytes) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    if kind.startswith("text/") or kind.endswith(("json", "xml")) or kind.endswith("+json"):
        return True
    if kind:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _traceback_of(error: Any) -> str:
    if error is None:
        return "Error: the function failed without saying why\n"
    text = error.traceback or f"{error.type}: {error.message}"
    return text if text.endswith("\n") else text + "\n"
