"""``--json`` means JSON on failure too: the `hyac` CLI as a subprocess against a real
agent; every failure prints one ``{"error": {"code", "message", ...}}`` object on stdout,
with the same exit code as without ``--json``, through the fast invoke path and the
full one alike."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningAgent, start_agent
from tests.sandbox.conftest import BACKENDS, backend_missing

HYAC = [sys.executable, "-m", "hyac_cli"]

SLOW = "import time\n\ndef main(context):\n    time.sleep(30)\n    return 'late'\n"
BROKEN_IMPORT = "import no_such_module_here\n\ndef main(context):\n    return 'never'\n"
RAISES = "def main(context):\n    raise ValueError('no good')\n"


def hyac(agent_url: str, token: str, *args: str, fast: bool = True
         ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYAC_URL": agent_url, "HYAC_TOKEN": token, "NO_COLOR": "1"}
    if not fast:
        env["HYAC_NO_FAST_PATH"] = "1"
    return subprocess.run([*HYAC, *args], capture_output=True, text=True, timeout=120, env=env)


def json_error(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one JSON object on stdout, which must be an error."""
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout
    body = json.loads(lines[0])
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["message"], body
    assert "Traceback" not in result.stderr
    return body["error"]


@pytest.fixture(params=BACKENDS)
def backend_agent(request: pytest.FixtureRequest, isolation: Path) -> Iterator[RunningAgent]:
    """A real agent on each sandbox backend: timeouts and load errors come from there."""
    reason = backend_missing(request.param)
    if reason:
        pytest.skip(f"SANDBOX BACKEND {request.param!r} NOT TESTED: {reason}")
    running = start_agent(Path(os.environ["HYAC_DATA_DIR"]), "--sandbox", request.param)
    yield running
    running.kill(signal.SIGTERM)


def test_invoke_failures_print_a_json_error(backend_agent: RunningAgent) -> None:
    backend_agent.deploy("slow", SLOW, timeout=1)
    backend_agent.deploy("broken", BROKEN_IMPORT)
    for fast in (True, False):  # the fast invoke path and the full one alike
        invoke_failures(backend_agent, fast)


def invoke_failures(agent: RunningAgent, fast: bool) -> None:
    missing = hyac(agent.url, agent.token, "invoke", "missing", "--json", fast=fast)
    plain = hyac(agent.url, agent.token, "invoke", "missing", fast=fast)
    assert missing.returncode == plain.returncode != 0
    assert plain.stdout == ""
    assert json_error(missing)["code"] == "not_found"

    timed_out = hyac(agent.url, agent.token, "invoke", "slow", "--json", fast=fast)
    assert timed_out.returncode != 0
    error = json_error(timed_out)
    assert error["code"] == "timeout"
    assert str(error.get("request_id", "")).strip(), error  # the caller's own request

    broken = hyac(agent.url, agent.token, "invoke", "broken", "--json", fast=fast)
    assert broken.returncode != 0
    error = json_error(broken)
    assert error["code"] == "function_load_error"
    assert "no_such_module_here" in error["message"] + json.dumps(error)


def test_a_function_error_keeps_the_result_and_gains_an_error_code(agent: RunningAgent) -> None:
    agent.deploy("fails", RAISES)
    result = hyac(agent.url, agent.token, "invoke", "fails", "--json")
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert body["ok"] is False and body["request_id"]
    assert body["error"]["code"] == "function_error"
    assert body["error"]["message"] == "no good"
    assert "ValueError" in body["error"]["traceback"]


def test_other_commands_print_a_json_error(agent: RunningAgent) -> None:
    shown = hyac(agent.url, agent.token, "tasks", "show", "task_0000", "--json")
    assert shown.returncode != 0
    assert json_error(shown)["code"] == "not_found"

    versions = hyac(agent.url, agent.token, "versions", "nope", "--json")
    assert versions.returncode != 0
    assert json_error(versions)["code"] == "not_found"

    bad_name = hyac(agent.url, agent.token, "versions", "Not A Name", "--json")
    assert bad_name.returncode == 2
    assert json_error(bad_name)["code"] == "invalid_input"

    # A usage mistake (no function name) is reported the same way, exit code 2 as Click's.
    usage = hyac(agent.url, agent.token, "invoke", "--json", fast=False)
    assert usage.returncode == 2
    assert json_error(usage)["code"] == "usage_error"


def test_an_agent_that_is_not_there_is_a_json_error(agent: RunningAgent) -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for args in (["ls", "--json"], ["invoke", "hello", "--json"], ["tasks", "ls", "--json"]):
        result = hyac(dead_url, agent.token, *args)
        assert result.returncode != 0, args
        assert json_error(result)["code"] == "agent_unreachable", args
    # Without --json, stdout stays empty: the error is on stderr only.
    plain = hyac(dead_url, agent.token, "ls")
    assert plain.returncode != 0 and plain.stdout == "" and "Error:" in plain.stderr
