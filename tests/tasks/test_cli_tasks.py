"""`hyac invoke --async` and `hyac tasks …` as a user types them: the CLI as a
subprocess against a real agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import RunningAgent
from tests.tasks.helpers import wait_for

HYAC = [sys.executable, "-m", "hyac_cli"]


def hyac(agent: RunningAgent, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HYAC, *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "HYAC_URL": agent.url,
             "HYAC_TOKEN": agent.token},
    )


def test_invoke_async_then_watch_show_ls(task_agent: RunningAgent) -> None:
    task_agent.deploy("steps", """
import time
def main(context):
    for i in range(10):  # long enough for the watching CLI to start on a loaded host
        context.task.progress(i / 10, f"step {i + 1}")
        time.sleep(0.4)
    return {"done": context.request.json()["name"]}
""")
    queued = hyac(task_agent, "invoke", "steps", "--async", "--data", '{"name": "Ada"}')
    assert queued.returncode == 0, queued.stderr
    task_id = queued.stdout.strip()
    assert task_id.startswith("task_") and "\n" not in task_id

    watched = hyac(task_agent, "tasks", "watch", task_id)
    assert watched.returncode == 0, watched.stderr
    assert json.loads(watched.stdout) == {"done": "Ada"}
    assert "running" in watched.stderr and "succeeded" in watched.stderr

    shown = hyac(task_agent, "tasks", "show", task_id)
    assert shown.returncode == 0, shown.stderr
    assert "succeeded" in shown.stdout and "1 of 1" in shown.stdout and '"done"' in shown.stdout
    as_json = json.loads(hyac(task_agent, "tasks", "show", task_id, "--json").stdout)
    assert as_json["id"] == task_id and as_json["status"] == "succeeded"

    listed = hyac(task_agent, "tasks", "ls", "--function", "steps")
    assert listed.returncode == 0 and task_id in listed.stdout and "succeeded" in listed.stdout
    rows = json.loads(hyac(task_agent, "tasks", "ls", "--status", "succeeded", "--json").stdout)
    assert [r["id"] for r in rows] == [task_id]
    assert json.loads(hyac(task_agent, "tasks", "ls", "--status", "dead", "--json").stdout) == []

    submitted = json.loads(hyac(task_agent, "invoke", "steps", "--async", "--json",
                                "--data", '{"name": "B"}').stdout)
    assert submitted["task_id"].startswith("task_") and submitted["status"] == "queued"


def test_watch_a_dead_task_exits_1_and_retry_cancel(task_agent: RunningAgent) -> None:
    task_agent.deploy("broken", "def main(context):\n    return 1 / 0\n", background=True)
    queued = hyac(task_agent, "invoke", "broken")  # a background function queues by itself
    assert queued.returncode == 0, queued.stderr
    task_id = queued.stdout.strip()
    watched = hyac(task_agent, "tasks", "watch", task_id)
    assert watched.returncode == 1
    assert 'File "functions/broken.py", line 2, in main' in watched.stderr
    assert "ZeroDivisionError: division by zero" in watched.stderr
    assert "Traceback (most recent call last)" in watched.stderr
    shown = hyac(task_agent, "tasks", "show", task_id)
    assert "dead" in shown.stdout and "ZeroDivisionError" in shown.stdout

    retried = hyac(task_agent, "tasks", "retry", task_id)
    assert retried.returncode == 0 and "queued again" in retried.stdout
    assert wait_for(task_agent, task_id)["attempt"] == 2

    task_agent.deploy("slow", "import time\ndef main(context):\n    time.sleep(60)\n")
    slow = hyac(task_agent, "invoke", "slow", "--async").stdout.strip()
    cancelled = hyac(task_agent, "tasks", "cancel", slow)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    again = hyac(task_agent, "tasks", "cancel", slow)
    assert again.returncode == 1 and again.stderr.startswith("Error: task")
    assert "there is nothing to cancel" in again.stderr and "Traceback" not in again.stderr
    assert hyac(task_agent, "tasks", "watch", slow).returncode == 1
    missing = hyac(task_agent, "tasks", "show", "task_nope")
    assert missing.returncode == 1 and "not found" in missing.stderr
