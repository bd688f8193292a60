"""What ``hyac invoke`` does once its options are parsed. Free of Typer and pydantic:
the fast entry point (``hyac_cli.fast``) calls it straight from ``sys.argv`` as well."""

from __future__ import annotations

import sys
from typing import Any

from hyac_common.errors import HyacError, InvalidInput, InvocationFailed

# The agent enforces the function's own timeout; this only stops the CLI from waiting
# forever on an agent that went silent.
DEFAULT_WAIT = "1h"


def run_invoke(
    name: str,
    *,
    data: str | None = None,
    method: str | None = None,
    path: str = "/",
    query: list[str] | None = None,
    header: list[str] | None = None,
    background: bool = False,
    callback_url: str | None = None,
    wait: str = DEFAULT_WAIT,
    tenant: str | None = None,
    as_json: bool = False,
    light: bool = False,
) -> int:
    """Invoke ``name`` and print its answer; the exit status (1: the function failed).

    ``light`` talks to the agent with the standard library's http.client where it can
    (no proxy to honour), which starts several times faster than httpx.
    """
    import base64

    from hyac_cli import client, targets
    from hyac_cli.terminal import Terminal
    from hyac_common.durations import parse_duration
    from hyac_common.names import validate_name

    validate_name(name)
    if callback_url is not None and not background:
        raise InvalidInput("--callback-url goes with --async")
    body, content_type = read_body(data)
    headers = parse_pairs(header or [], ":", "header", "'name: value'")
    if content_type and not any(k.lower() == "content-type" for k in headers):
        headers["content-type"] = content_type
    request = {  # an InvokeRequest (hyac_common.wire)
        "method": (method or ("POST" if data is not None else "GET")).upper(),
        "path": path if path.startswith("/") else "/" + path,
        "query": parse_pairs(query or [], "=", "query parameter", "key=value"),
        "headers": headers,
        "body_b64": base64.b64encode(body).decode("ascii"),
    }
    seconds = parse_duration(wait, "--wait")
    term = Terminal()
    failure: HyacError | None = None
    params = {"mode": "async"} if background else {}
    if callback_url:
        params["callback_url"] = callback_url
    connect = client.connect_light if light else client.connect
    with connect(tenant=targets.tenant_of(tenant), timeout=seconds) as agent:
        with term.status(f"invoking {name}…"):
            try:
                answer = agent.post(
                    f"/v1/functions/{client.segment(name)}/invoke", json=request,
                    params=params or None,
                )
            except HyacError as exc:
                # A module that fails to load is a function error too: the user's own
                # traceback (file and line) on stderr, exit 1, as for one that raises.
                if as_json or exc.code != "function_load_error":
                    raise
                failure = exc
    if failure is not None:
        term.write_err(_traceback_of({**failure.details, "message": failure.message}))
        return 1
    if isinstance(answer, dict) and "task_id" in answer:  # queued (--async, or a background function)
        if as_json:
            term.print_json(answer)
        else:
            term.write(f"{answer['task_id']}\n")
            if term.stderr_is_tty:
                term.note(f"queued; follow it with `hyac tasks watch {answer['task_id']}`")
        return 0
    result = _result(answer, client.unexpected_answer)
    if as_json:
        if not result["ok"]:
            result["error"] = _json_error(result.get("error"))
        term.print_json(result)
    elif result["ok"]:
        write_body(term, base64.b64decode(result["body_b64"]), result["headers"])
    if not result["ok"]:
        if not as_json:
            term.write_err(_traceback_of(result.get("error")))
        return 1
    return 0


def _result(answer: Any, unexpected: Any) -> dict[str, Any]:
    """The agent's InvokeResult, checked as far as printing it needs."""
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        raise unexpected("an invoke result")
    answer.setdefault("headers", {})
    answer.setdefault("body_b64", "")
    if not isinstance(answer["headers"], dict) or not isinstance(answer["body_b64"], str):
        raise unexpected("an invoke result")
    return answer


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


def _json_error(error: Any) -> dict[str, Any]:
    """The function's error with the ``code`` and ``message`` every --json error has."""
    found = error if isinstance(error, dict) else {}
    return {**found, "code": InvocationFailed.code,
            "message": str(found.get("message") or "the function failed without saying why")}


def _traceback_of(error: Any) -> str:
    if not isinstance(error, dict):
        return "Error: the function failed without saying why\n"
    text = error.get("traceback") or f"{error.get('type', 'Error')}: {error.get('message', '')}"
    return text if text.endswith("\n") else text + "\n"
