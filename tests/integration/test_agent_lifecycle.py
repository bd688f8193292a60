"""Starting, stopping and crashing the agent."""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import RunningAgent, requires_bwrap, start_agent
from tests.waiting import eventually


def variant(n: int) -> str:
    return f"def main(context):\n    return 'variant {n}'\n"


def served(agent: RunningAgent, name: str) -> str:
    answer = agent.invoke(name)
    assert answer.status_code == 200 and answer.json()["ok"], answer.text
    return base64.b64decode(answer.json()["body_b64"]).decode()


@requires_bwrap
def test_kill_9_during_deploys_leaves_a_consistent_store(isolation: Path) -> None:
    data_dir = isolation / "data"
    agent = start_agent(data_dir)
    agent.deploy("steady", variant(0))
    rng = random.Random(1234)
    deployed = 1
    every_attempt: list[int] = [0]
    for round_ in range(4):
        stop = threading.Event()
        attempted: list[int] = []

        def hammer(
            agent: RunningAgent = agent,
            round_: int = round_,
            stop: threading.Event = stop,
            attempted: list[int] = attempted,
        ) -> None:
            n = 1000 * (round_ + 1)
            while not stop.is_set():
                n += 1
                attempted.append(n)
                try:
                    agent.deploy("steady", variant(n))
                except (httpx.HTTPError, AssertionError):
                    return

        thread = threading.Thread(target=hammer)
        thread.start()
        time.sleep(rng.uniform(0.05, 0.4))
        agent.kill()  # SIGKILL, mid-deploy or between two
        stop.set()
        thread.join(30)
        every_attempt.extend(attempted)
        agent = start_agent(data_dir)
        with agent.client() as client:
            versions = client.get("/v1/functions/steady/versions").json()
        numbers = [v["version"] for v in versions]
        assert numbers == list(range(1, len(numbers) + 1)), "versions stay contiguous"
        assert len(numbers) >= deployed
        deployed = len(numbers)
        active = [v for v in versions if v["active"]]
        assert len(active) == 1
        text = served(agent, "steady")
        assert text.startswith("variant ")
        assert int(text.split()[1]) in every_attempt
        assert not list((data_dir / "bundles").glob(".tmp-*")), "half-written bundles are swept"
    agent.kill()


@requires_bwrap
def test_idle_workers_are_reaped(isolation: Path) -> None:
    agent = start_agent(isolation / "data", "--idle-timeout", "0.5")
    try:
        agent.deploy("pid", "import os\nTOKEN = os.urandom(8).hex()\ndef main(context):\n    return TOKEN\n")
        with agent.client() as client:
            first = served(agent, "pid")
            assert client.get("/v1/agent").json()["extra"]["pool"]["workers"] == 1
            eventually(lambda: client.get("/v1/agent").json()["extra"]["pool"]["workers"] == 0)
        assert served(agent, "pid") != first, "a new worker answers after reaping"
    finally:
        agent.kill()


def test_agent_refuses_to_start_without_bubblewrap(isolation: Path, tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "hyac_agent", "serve", "--port", "0", "--sandbox", "bwrap"],
        env={**os.environ, "PATH": str(empty_bin)}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "bubblewrap is not installed" in result.stderr
    assert "apt-get install bubblewrap" in result.stderr
    assert "--insecure-no-sandbox" in result.stderr
    assert "Traceback" not in result.stderr


def test_insecure_mode_warns_and_runs(isolation: Path, tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {"PATH": str(empty_bin), f"HYAC_PYTHON{sys.version_info.major}_{sys.version_info.minor}": sys.executable}
    agent = start_agent(isolation / "data", "--insecure-no-sandbox", env=env)
    try:
        assert "WARNING: --insecure-no-sandbox" in agent.log()
        agent.deploy("plain", variant(7))
        assert served(agent, "plain") == "variant 7"
        with agent.client() as client:
            assert client.get("/v1/agent").json()["sandbox"] == "none"
    finally:
        agent.kill()


def test_port_in_use_is_a_clear_error(agent: RunningAgent) -> None:
    port = agent.url.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "hyac_agent", "serve", "--port", port],
        env={**os.environ, "HYAC_DATA_DIR": str(agent.data_dir.parent / "other")},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_thread_settings_that_cannot_work_are_refused_at_start(tmp_path: Path) -> None:
    for threads, per_tenant in (("32", "0"), ("4", "4"), ("1", "1")):
        result = subprocess.run(
            [sys.executable, "-m", "hyac_agent", "serve", "--port", "0", "--insecure-no-sandbox"],
            env={**os.environ, "HYAC_DATA_DIR": str(tmp_path / "data"),
                 "HYAC_AGENT_THREADS": threads, "HYAC_TENANT_HOST_CALLS": per_tenant},
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 1, result.stderr
        assert "HYAC_TENANT_HOST_CALLS between 1 and HYAC_AGENT_THREADS - 1" in result.stderr
        assert "Traceback" not in result.stderr



@requires_bwrap
def test_agent_runs_on_postgresql(isolation: Path) -> None:
    from tests.agent.test_store import _postgres_database

    for url in _postgres_database():
        agent = start_agent(isolation / "data", env={"HYAC_DATABASE_URL": url})
        try:
            agent.deploy("pg", "def main(context):\n    context.kv.set('k', [1, 2])\n    return context.kv.get('k')\n")
            assert served(agent, "pg") == "[1, 2]"
            agent.kill()  # state lives in PostgreSQL, not in the data dir's SQLite file
            assert not (isolation / "data" / "hyac.db").exists()
            agent = start_agent(isolation / "data", env={"HYAC_DATABASE_URL": url})
            with agent.client() as client:
                assert [f["name"] for f in client.get("/v1/functions").json()] == ["pg"]
            assert served(agent, "pg") == "[1, 2]"
        finally:
            agent.kill()


def test_sigusr1_writes_every_threads_stack_and_the_agent_goes_on(agent: RunningAgent) -> None:
    before = len(agent.log())
    agent.process.send_signal(signal.SIGUSR1)
    eventually(lambda: "Current thread" in agent.log()[before:])
    eventually(lambda: "asyncio tasks (" in agent.log()[before:])
    dumped = agent.log()[before:]
    assert "uvicorn" in dumped and "serve" in dumped, dumped  # the loop's thread, named by frame
    # then the loop's tasks, each with where it waits (uvicorn's server task among them)
    tasks = dumped[dumped.index("asyncio tasks ("):]
    assert "Stack for <Task" in tasks and "serve" in tasks, tasks
    assert agent.process.poll() is None
    with agent.client() as client:
        assert client.get("/v1/agent").status_code == 200


@requires_bwrap
def test_an_agent_stopped_by_a_signal_removes_its_agent_json(isolation: Path) -> None:
    """uvicorn raises SIGTERM again once it has served, which ends the process before the
    agent's own cleanup after serving would run: agent.json, the sign that an agent is up
    and where, must still go (a stale one sends the CLI to a dead address)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        agent = start_agent(isolation / "data")
        state = isolation / "data" / "agent.json"
        assert state.exists()
        agent.process.send_signal(sig)
        agent.process.wait(timeout=60)
        assert not state.exists(), f"agent.json left after {sig.name}"
