"""Stopping the agent: SIGTERM hands running tasks back to the queue at once and lets
sync requests finish within the grace period; SIGKILL loses nothing either (the lease
runs out and the next agent resumes the run, and says so)."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningAgent, start_agent
from tests.tasks.helpers import result_json, submit, wait_for
from tests.tasks.test_celery import database  # noqa: F401  (a fixture: a fresh PostgreSQL database)
from tests.waiting import eventually

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap is not installed (apt-get install bubblewrap)"
)

# The first run stays until it is stopped; every run counts itself in the tenant's kv.
RESUMABLE = """
import time
def main(context):
    runs = (context.kv.get("runs") or 0) + 1
    context.kv.set("runs", runs)
    print(f"run {runs} attempt {context.task.attempt}", flush=True)
    if runs == 1:
        time.sleep(600)
    return {"runs": runs, "attempt": context.task.attempt}
"""
SLOW = """
import time
def main(context):
    print("begun", flush=True)
    time.sleep(float(context.request.query.get("s", "3")))
    return "finished"
"""


def _agent(data_dir: Path, **env: str) -> RunningAgent:
    return start_agent(data_dir, "--sandbox", "bwrap", env=env)


def _logged(agent: RunningAgent, function: str, text: str) -> bool:
    with agent.client() as client:
        lines = client.get("/v1/logs", params={"function": function, "limit": 10_000}).json()
    return any(text in line["message"] for line in lines)


def _running_resumable(agent: RunningAgent, retries: int) -> str:
    """A task of RESUMABLE, once its first run has begun; its id."""
    agent.deploy("resumable", RESUMABLE, retries=retries, timeout=900)
    task_id = submit(agent, "resumable")
    eventually(lambda: _logged(agent, "resumable", "run 1 attempt 1"))
    return task_id


def _stop(agent: RunningAgent, timeout: float = 60) -> bool:
    """SIGTERM; whether the agent then ended cleanly by itself within ``timeout``."""
    agent.process.send_signal(signal.SIGTERM)
    return _ended_cleanly(agent, timeout)


def _ended_cleanly(agent: RunningAgent, timeout: float) -> bool:
    try:
        code = agent.process.wait(timeout=timeout)
    except Exception:
        agent.kill()
        raise
    # uvicorn ends by raising the signal it caught again, as a process stopped by it would.
    return code in (0, -signal.SIGTERM)


def test_sigterm_hands_a_running_task_back_at_once(isolation: Path) -> None:
    data_dir = Path(os.environ["HYAC_DATA_DIR"])
    # A lease far longer than the test waits: a task left to its lease would stall.
    first = _agent(data_dir, HYAC_TASK_LEASE="300")
    task_id = _running_resumable(first, retries=0)
    assert _stop(first)
    assert f"handed 1 running task(s) back to the queue: {task_id}" in first.log()

    second = _agent(data_dir, HYAC_TASK_LEASE="300")
    try:
        task = wait_for(second, task_id, timeout=60)
        # Resumed at once, and the stopped run was not counted as a failed attempt.
        assert result_json(task) == {"runs": 2, "attempt": 1}
        assert task["attempt"] == 1 and task["max_attempts"] == 1
        assert "resuming task" not in second.log(), "it was handed back, not taken over"
    finally:
        second.kill()


def test_kill_9_then_restart_resumes_the_run_and_says_so(isolation: Path) -> None:
    data_dir = Path(os.environ["HYAC_DATA_DIR"])
    first = _agent(data_dir, HYAC_TASK_LEASE="2")
    task_id = _running_resumable(first, retries=2)
    first.kill()  # SIGKILL: nothing is handed back, the lease is the way

    second = _agent(data_dir, HYAC_TASK_LEASE="2")
    try:
        task = wait_for(second, task_id, timeout=60)
        assert result_json(task) == {"runs": 2, "attempt": 2}
        said = f"resuming task {task_id} (default/resumable)"
        assert said in second.log()
        assert f"on {task['worker'].split(':')[0]}:{first.process.pid} stopped renewing" in second.log()
        assert _logged(second, "resumable", said), "the function's own log says it too"
    finally:
        second.kill()


#: how a stopping agent refuses a new request: the connection is refused, or, when it
#: was accepted just before the listener closed (seen under load), closed or reset
#: with no answer. An answer of any kind is not a refusal.
NO_ANSWER = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def test_sigterm_lets_a_sync_request_finish_and_refuses_new_ones(isolation: Path) -> None:
    agent = _agent(Path(os.environ["HYAC_DATA_DIR"]))
    agent.deploy("slow", SLOW, timeout=60)
    answers: list[httpx.Response] = []
    caller = threading.Thread(target=lambda: answers.append(agent.invoke("slow", query={"s": "5"})))
    caller.start()
    eventually(lambda: _logged(agent, "slow", "begun"))
    agent.process.send_signal(signal.SIGTERM)

    def refused() -> bool:
        try:
            agent.invoke("slow", query={"s": "0"})
        except NO_ANSWER:
            return True
        return False

    eventually(refused, timeout=20)
    assert caller.is_alive(), "the request in flight was still running when new ones were refused"
    caller.join(60)
    assert answers and answers[0].status_code == 200, answers
    assert base64.b64decode(answers[0].json()["body_b64"]) == b"finished"
    assert _ended_cleanly(agent, 60)


def test_the_grace_period_bounds_the_wait(isolation: Path) -> None:
    agent = _agent(Path(os.environ["HYAC_DATA_DIR"]), HYAC_SHUTDOWN_GRACE="1")
    agent.deploy("slow", SLOW, timeout=900)
    answers: list[Any] = []

    def call() -> None:
        try:
            answers.append(agent.invoke("slow", query={"s": "600"}))
        except httpx.HTTPError as exc:
            answers.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    eventually(lambda: _logged(agent, "slow", "begun"))
    assert _stop(agent), "the agent stopped after its grace, not after the request"
    caller.join(60)
    assert answers, "the request was answered or cut, not left hanging"
    assert not (isinstance(answers[0], httpx.Response) and answers[0].status_code == 200)


def test_live_streams_end_at_once_and_do_not_hold_the_shutdown(isolation: Path) -> None:
    agent = _agent(Path(os.environ["HYAC_DATA_DIR"]), HYAC_SHUTDOWN_GRACE="300")
    agent.deploy("quiet", SLOW, timeout=60)
    task_id = submit(agent, "quiet", None)
    ended: list[str] = []

    def follow(path: str) -> None:
        with agent.client() as client, client.stream("GET", path, timeout=600) as stream:
            for _ in stream.iter_lines():
                pass
        ended.append(path)

    followers = [
        threading.Thread(target=follow, args=("/v1/logs/stream",)),
        threading.Thread(target=follow, args=(f"/v1/tasks/{task_id}/events",)),
    ]
    for follower in followers:
        follower.start()
    eventually(lambda: _logged(agent, "quiet", "begun"))
    assert _stop(agent)
    for follower in followers:
        follower.join(30)
    assert sorted(ended) == sorted(["/v1/logs/stream", f"/v1/tasks/{task_id}/events"])


@pytest.mark.requires_celery
def test_a_celery_worker_stopped_by_sigterm_hands_its_task_back(
    isolation: Path, request: pytest.FixtureRequest
) -> None:
    from tests.tasks.test_celery import REDIS_URL, _why_not, start_worker

    reason = _why_not()
    if reason:
        pytest.skip(f"Celery tests need services: {reason}")
    database_url = request.getfixturevalue("database")
    data_dir = Path(os.environ["HYAC_DATA_DIR"])
    env = {
        "HYAC_QUEUE": "celery", "HYAC_BROKER_URL": REDIS_URL, "HYAC_DATABASE_URL": database_url,
        "HYAC_CELERY_QUEUE": "hyac-test-" + secrets.token_hex(4),
        "HYAC_TASK_LEASE": "300",  # far longer than the test waits
    }
    agent = start_agent(data_dir, "--sandbox", "bwrap", env=env)
    workers = [start_worker(data_dir, env, concurrency=1)]
    try:
        agent.deploy("resumable", RESUMABLE, retries=0, timeout=900)
        task_id = submit(agent, "resumable")
        eventually(lambda: _logged(agent, "resumable", "run 1 attempt 1"))
        workers.append(start_worker(data_dir, env, concurrency=1))
        victim = workers[0].process
        victim.send_signal(signal.SIGTERM)
        victim.wait(timeout=60)
        task = wait_for(agent, task_id, timeout=60)
        assert result_json(task) == {"runs": 2, "attempt": 1}
        assert task["worker"].rsplit(":", 1)[1] == str(workers[1].process.pid)
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
            worker.process.wait()
        agent.kill()
