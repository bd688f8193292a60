from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import httpx
import pytest

from hyac_common.paths import write_private_json
from hyac_common.wire import FunctionError, InvokeRequest, InvokeResult

from .conftest import Run
from .fake_agent import FakeAgent, error, ok_result

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "functions/hello.py", line 3, in main\n'
    "    return 1 / 0\n"
    "ZeroDivisionError: division by zero"
)


def sent(fake: FakeAgent) -> InvokeRequest:
    (call,) = fake.calls("POST", r"/v1/functions/[^/]+/invoke")
    return InvokeRequest.model_validate_json(call.content)


def test_invoke_with_json_data(run: Run, fake_agent: FakeAgent) -> None:
    fake_agent.on_invoke = lambda name, req: ok_result({"hello": "Ada"})
    result = run("invoke", "hello", "--data", '{"name": "Ada"}')
    assert result.exit_code == 0, result.output
    assert result.stdout == '{"hello": "Ada"}\n'
    request = sent(fake_agent)
    assert request.method == "POST"
    assert request.path == "/"
    assert request.headers == {"content-type": "application/json"}
    assert base64.b64decode(request.body_b64) == b'{"name": "Ada"}'


def test_invoke_without_data_is_a_get(run: Run, fake_agent: FakeAgent) -> None:
    result = run("invoke", "hello", "-q", "name=Bob", "-q", "x=a=b", "-H", "X-Trace: 7",
                 "--path", "items/3")
    assert result.exit_code == 0, result.output
    request = sent(fake_agent)
    assert request.method == "GET"
    assert request.path == "/items/3"
    assert request.query == {"name": "Bob", "x": "a=b"}
    assert request.headers == {"X-Trace": "7"}
    assert request.body_b64 == ""


def test_invoke_tenant(run: Run, fake_agent: FakeAgent, project: Path) -> None:
    run("invoke", "hello")
    assert fake_agent.requests[-1].headers["x-hyac-tenant"] == "acme"  # from hyac.toml
    run("invoke", "hello", "--tenant", "other")
    assert fake_agent.requests[-1].headers["x-hyac-tenant"] == "other"


def test_invoke_data_from_file_and_stdin(
    run: Run, fake_agent: FakeAgent, cli_environment: Path
) -> None:
    (cli_environment / "body.txt").write_text("plain words")
    result = run("invoke", "hello", "--data", "@body.txt", "--method", "put")
    assert result.exit_code == 0, result.output
    request = sent(fake_agent)
    assert request.method == "PUT"
    assert request.headers["content-type"] == "text/plain; charset=utf-8"
    assert base64.b64decode(request.body_b64) == b"plain words"

    fake_agent.requests.clear()
    result = run("invoke", "hello", "--data", "-", "-H", "content-type: application/x-thing",
                 input=b"[1, 2]")
    assert result.exit_code == 0, result.output
    request = sent(fake_agent)
    assert request.headers == {"content-type": "application/x-thing"}
    assert base64.b64decode(request.body_b64) == b"[1, 2]"


def test_missing_data_file_is_one_line(run: Run, fake_agent: FakeAgent) -> None:
    result = run("invoke", "hello", "--data", "@nope.json")
    assert result.exit_code == 1
    assert result.stderr == "Error: No such file or directory: nope.json\n"


def test_text_body_gets_a_newline_and_bytes_are_raw(run: Run, fake_agent: FakeAgent) -> None:
    fake_agent.on_invoke = lambda name, req: ok_result(b"hi there", "text/plain; charset=utf-8")
    assert run("invoke", "hello").stdout == "hi there\n"
    fake_agent.on_invoke = lambda name, req: ok_result(b"\x00\xff\x10", "application/octet-stream")
    assert run("invoke", "hello").stdout_bytes == b"\x00\xff\x10"
    fake_agent.on_invoke = lambda name, req: ok_result(b"", None, status=204)
    result = run("invoke", "hello")
    assert result.exit_code == 0 and result.stdout == ""


def test_function_error_prints_traceback_and_exits_1(run: Run, fake_agent: FakeAgent) -> None:
    fake_agent.on_invoke = lambda name, req: InvokeResult(
        ok=False, request_id="req_1", version=2, duration_ms=3.0, status=500,
        error=FunctionError(type="ZeroDivisionError", message="division by zero",
                            traceback=TRACEBACK),
    )
    result = run("invoke", "hello")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == TRACEBACK + "\n"

    as_json = run("invoke", "hello", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["error"]["type"] == "ZeroDivisionError"


def test_function_error_without_traceback(run: Run, fake_agent: FakeAgent) -> None:
    fake_agent.on_invoke = lambda name, req: InvokeResult(
        ok=False, request_id="req_1", version=2, duration_ms=3.0,
        error=FunctionError(type="ValueError", message="bad"),
    )
    result = run("invoke", "hello")
    assert result.exit_code == 1
    assert result.stderr == "ValueError: bad\n"


def test_invoke_json_prints_the_whole_result(run: Run, fake_agent: FakeAgent) -> None:
    fake_agent.on_invoke = lambda name, req: ok_result({"a": 1})
    result = run("invoke", "hello", "--json")
    assert result.exit_code == 0
    answer = json.loads(result.stdout)
    assert answer["ok"] is True
    assert answer["request_id"] == "req_test1"
    assert base64.b64decode(answer["body_b64"]) == b'{"a": 1}'


@pytest.mark.parametrize(
    ("response", "code", "message"),
    [
        (error(504, "timeout", "function 'hello' timed out after 30s"), 1,
         "Error: function 'hello' timed out after 30s\n"),
        (error(404, "not_found", "function 'hello' not found"), 1,
         "Error: function 'hello' not found\n"),
        (error(401, "unauthorized", "missing or invalid API token"), 1,
         "Error: missing or invalid API token\n"),
        (error(400, "invalid_input", "body too odd"), 2, "Error: body too odd\n"),
        (httpx.Response(502, text="Bad Gateway"), 1,
         "Error: the agent answered HTTP 502: Bad Gateway\n"),
        (httpx.Response(422, json={"detail": [{"loc": ["body", "method"], "msg": "bad"}]}), 2,
         "Error: method: bad\n"),
        (httpx.Response(200, json={"unexpected": True}), 1,
         "Error: unexpected answer from the agent"),
    ],
)
def test_agent_errors_are_one_line(
    run: Run, fake_agent: FakeAgent, response: httpx.Response, code: int, message: str
) -> None:
    fake_agent.on_invoke = lambda name, req: response
    result = run("invoke", "hello")
    assert result.exit_code == code
    assert result.stderr.startswith(message)
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-q", "novalue"], "invalid query parameter 'novalue': expected key=value"),
        (["-H", "nocolon"], "invalid header 'nocolon'"),
        (["--callback-url", "http://example.com/"], "--callback-url goes with --async"),
        (["--wait", "soon"], "invalid --wait: 'soon'"),
    ],
)
def test_invoke_input_mistakes_exit_2(
    run: Run, fake_agent: FakeAgent, args: list[str], message: str
) -> None:
    result = run("invoke", "hello", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert fake_agent.calls("POST") == []


def test_invalid_function_name(run: Run, fake_agent: FakeAgent) -> None:
    result = run("invoke", "Bad Name")
    assert result.exit_code == 2
    assert "invalid function name 'Bad Name'" in result.stderr


def test_no_agent_configured(run: Run) -> None:
    result = run("invoke", "hello")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no agent is running")
    assert "start one with `hyac agent up`" in result.stderr


def test_connection_refused_names_the_url(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    write_private_json(Path(__import__("os").environ["HYAC_DATA_DIR"]) / "agent.json",
                       {"url": f"http://127.0.0.1:{port}", "token": "t", "pid": 1})
    result = run("ls")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: no agent is running at http://127.0.0.1:{port} — start one with `hyac agent up`\n"
    )
