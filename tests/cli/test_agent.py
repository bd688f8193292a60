"""``hyac agent up|down|status`` against a stand-in ``hyac_agent`` package.

``hyac agent up`` runs ``python -m hyac_agent serve``; with the working directory first
on the child's path, a tiny fake package there answers /v1/health like the agent."""

from __future__ import annotations

import json
import os
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyac_common.paths import agent_state_path, data_dir, read_agent_state, write_private_json

from .conftest import Run
from .fake_agent import FakeAgent

FAKE_AGENT = '''
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if os.environ.get("FAKE_AGENT_CRASH"):
    print("Error: cannot listen on 127.0.0.1:8040: Address already in use", file=sys.stderr)
    sys.exit(3)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/v1/health":
            body = {"status": "ok", "version": "9.9.9"}
        else:
            body = {"running": True, "url": URL, "version": "9.9.9", "pid": os.getpid(),
                    "sandbox": "fake", "data_dir": os.environ["HYAC_DATA_DIR"], "extra": {}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
URL = "http://127.0.0.1:%d" % server.server_address[1]
state = os.path.join(os.environ["HYAC_DATA_DIR"], "agent.json")
with open(state, "w") as fh:
    json.dump({"url": URL, "token": "tok", "pid": os.getpid(), "argv": sys.argv[1:]}, fh)
print("listening on", URL, flush=True)
server.serve_forever()
'''


@pytest.fixture
def fake_agent_package(cli_environment: Path) -> Iterator[Path]:
    package = cli_environment / "hyac_agent"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(textwrap.dedent(FAKE_AGENT))
    yield package
    state = read_agent_state()
    if state and isinstance(state.get("pid"), int):  # a test failed half-way: clean up
        try:
            os.kill(state["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_up_status_down(run: Run, fake_agent_package: Path) -> None:
    up = run("agent", "up", "--port", "0", "--insecure-no-sandbox")
    assert up.exit_code == 0, up.output
    state = read_agent_state()
    assert state is not None
    assert up.stdout.startswith(f"The agent is running at {state['url']} (pid {state['pid']})")
    assert state["argv"] == ["serve", "--host", "127.0.0.1", "--port", "0", "--insecure-no-sandbox"]
    log = Path(os.environ["HYAC_DATA_DIR"]) / "agent.log"
    assert "listening on" in log.read_text()

    again = run("agent", "up")
    assert again.exit_code == 0
    assert again.stdout.startswith("The agent is already running at")

    status = run("agent", "status", "--json")
    assert status.exit_code == 0, status.output
    report = json.loads(status.stdout)
    assert report["running"] is True
    assert report["url"] == state["url"]
    assert report["pid"] == state["pid"]
    assert report["version"] == "9.9.9"
    human = run("agent", "status")
    assert human.stdout.startswith(f"The agent is running at {state['url']} (pid {state['pid']}")

    down = run("agent", "down")
    assert down.exit_code == 0, down.output
    assert f"(pid {state['pid']}) has stopped" in down.stdout
    assert not agent_state_path().exists()

    after = run("agent", "status", "--json")
    assert after.exit_code == 1
    assert json.loads(after.stdout)["running"] is False


def test_up_reports_an_early_exit_with_the_log(
    run: Run, fake_agent_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_CRASH", "1")
    result = run("agent", "up")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the agent exited with status 3 while starting:")
    assert "Address already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line, naming the log
    assert f"(log: {data_dir() / 'agent.log'})" in result.stderr


def test_status_without_agent(run: Run) -> None:
    result = run("agent", "status", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["running"] is False and report["url"] is None and report["pid"] is None
    human = run("agent", "status")
    assert human.exit_code == 1
    assert "No agent is running" in human.stdout


def test_status_with_a_stale_state_file(run: Run) -> None:
    stale = {"url": "http://127.0.0.1:9", "token": "t", "pid": 2**22 + 7}
    write_private_json(agent_state_path(), stale)
    report = json.loads(run("agent", "status", "--json").stdout)
    assert report == {**report, "running": False, "url": "http://127.0.0.1:9"}


def test_status_of_a_remote_agent(run: Run, fake_agent: FakeAgent) -> None:
    result = run("agent", "status", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["running"] is True
    assert report["url"] == "http://agent.test"
    assert report["sandbox"] == "fake"


def test_down_without_agent(run: Run) -> None:
    write_private_json(agent_state_path(), {"url": "http://127.0.0.1:9", "pid": 2**22 + 7})
    result = run("agent", "down")
    assert result.exit_code == 0
    assert result.stdout == "No agent is running.\n"
    assert not agent_state_path().exists()


def test_agent_group_help(run: Run) -> None:
    result = run("agent")
    assert "up" in result.output and "down" in result.output and "status" in result.output


def test_down_waits_the_agents_grace_period_before_a_kill(run: Run) -> None:
    import subprocess
    import sys

    # An agent that does not stop on SIGTERM, with a 1 s grace period in its state file.
    stubborn = subprocess.Popen([sys.executable, "-c", (
        "import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ignoring', flush=True)\ntime.sleep(600)\n"
    )], stdout=subprocess.PIPE)
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ignoring\n"
        write_private_json(agent_state_path(), {
            "url": "http://127.0.0.1:9", "pid": stubborn.pid, "shutdown_grace": 1,
        })
        result = run("agent", "down")
        assert result.exit_code == 0, result.output
        assert "did not stop within 11s; killed it" in result.output
        assert stubborn.wait(timeout=10) == -signal.SIGKILL
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
            stubborn.wait()
        if stubborn.stdout is not None:
            stubborn.stdout.close()
