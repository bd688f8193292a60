"""Followers survive restarts: `hyac logs -f` and `hyac tasks watch` (subprocesses)
against a real agent that is stopped (SIGTERM, or killed with SIGKILL) and started again
on the same port. They reconnect, resume from their cursor with no line twice and none
missing, and say once on stderr that they reconnected."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import RunningAgent, requires_bwrap, start_agent

SPEAK = "def main(context):\n    print('said', context.request.json()['word'])\n    return 'ok'\n"
LATER = "def main(context):\n    return {'done': context.request.json()['n']}\n"


class Follower:
    """A `hyac` subprocess whose stdout lines are read as they come."""

    def __init__(self, agent: RunningAgent, *args: str) -> None:
        env = {**os.environ, "HYAC_URL": agent.url, "HYAC_TOKEN": agent.token,
               "NO_COLOR": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hyac_cli", *args], env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._stderr: str | None = None
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,),
                                        daemon=True)
        self._reader.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.put(line)

    def wait_for(self, text: str, within: float = 60) -> None:
        """Read stdout until a line holds ``text``; fail if it never comes."""
        deadline = time.monotonic() + within
        while not any(text in line for line in self.seen):
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never came; got {self.seen}; stderr: {self.stderr()}"
            try:
                self.seen.append(self.lines.get(timeout=min(left, 1)))
            except queue.Empty:
                assert self.process.poll() is None, f"exited: {self.stderr()}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        assert self.process.stdout is not None
        self.process.stdout.close()
        self.stderr()

    def stderr(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        if self._stderr is None:
            assert self.process.stderr is not None
            self._stderr = self.process.stderr.read()
            self.process.stderr.close()
        return self._stderr


def restart(agent: RunningAgent, how: signal.Signals) -> RunningAgent:
    """Stop ``agent`` with ``how`` and start a new one on the same port and data dir."""
    port = urlsplit(agent.url).port
    agent.kill(how)
    again = start_agent(agent.data_dir, "--port", str(port))
    assert again.url == agent.url and again.token == agent.token
    return again


@pytest.fixture
def agents(isolation: Path) -> Iterator[list[RunningAgent]]:
    """The agents a test started (the last one is running); all stopped at the end."""
    started = [start_agent(Path(os.environ["HYAC_DATA_DIR"]))]
    yield started
    for agent in started:
        agent.kill(signal.SIGTERM)


@requires_bwrap
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_logs_follow_reconnects_without_repeats_or_gaps(
    agents: list[RunningAgent], how: signal.Signals
) -> None:
    agent = agents[0]
    agent.deploy("speak", SPEAK)
    assert agent.invoke("speak", method="POST", body_b64=_b64({"word": "first"})).status_code == 200
    follower = Follower(agent, "logs", "-f", "speak", "--json")
    try:
        follower.wait_for("said first")
        assert agent.invoke("speak", method="POST", body_b64=_b64({"word": "live"})).status_code == 200
        follower.wait_for("said live")

        agent = restart(agent, how)
        agents.append(agent)
        # Logged at once, before the follower is back: the cursor must still find it.
        assert agent.invoke("speak", method="POST", body_b64=_b64({"word": "back"})).status_code == 200
        follower.wait_for("said back")
        assert agent.invoke("speak", method="POST", body_b64=_b64({"word": "more"})).status_code == 200
        follower.wait_for("said more")
    finally:
        follower.stop()
    words = [json.loads(line)["message"] for line in follower.seen]
    assert words == ["said first", "said live", "said back", "said more"]
    stderr = follower.stderr()
    assert stderr.count("reconnected to the agent") == 1, stderr
    assert "Traceback" not in stderr


@requires_bwrap
def test_tasks_watch_reconnects_and_reports_the_end(agents: list[RunningAgent]) -> None:
    agent = agents[0]
    agent.deploy("later", LATER)
    # Due in a while, so it is still waiting in the store while the agent restarts.
    with agent.client() as http:
        submitted = http.post("/v1/functions/later/invoke", params={"mode": "async", "delay": 20},
                              json={"method": "POST", "body_b64": _b64({"n": 7})})
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["task_id"]

    watcher = Follower(agent, "tasks", "watch", task_id, "--json")
    assert watcher.process.stderr is not None
    # The watcher reports each state on stderr when it is not a terminal: wait for "queued".
    first = watcher.process.stderr.readline()
    assert first.startswith("queued"), first

    agent = restart(agent, signal.SIGTERM)
    agents.append(agent)
    code = watcher.process.wait(timeout=120)
    watcher.stop()
    stderr = first + watcher.stderr()
    assert code == 0, stderr
    task = json.loads("".join(watcher.seen))
    assert task["id"] == task_id and task["status"] == "succeeded"
    assert task["result"] is not None
    assert stderr.count("reconnected to the agent") == 1, stderr


def _b64(value: object) -> str:
    import base64

    return base64.b64encode(json.dumps(value).encode()).decode()
