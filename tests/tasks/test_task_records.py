"""Task records tell the truth: after `hyac tasks retry` or a run lost with its agent,
`hyac tasks show` never says more attempts than the task may make, created_at is the
task's own, and refusals read as English. A real agent (embedded queue, 2 s leases) and
the CLI as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from tests.conftest import RunningAgent, start_agent
from tests.tasks.helpers import FAST_TASKS, get, result_json, submit, wait_for
from tests.waiting import eventually

FAILS = "def main(context):\n    raise RuntimeError('always')\n"
# The first run hangs (its agent is killed under it); later runs answer with their attempt.
SECOND_TIME = """
import time

def main(context):
    if context.task.attempt == 1:
        print('first run started')
        time.sleep(120)
    return {"attempt": context.task.attempt}
"""


def hyac(agent: RunningAgent, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYAC_URL": agent.url, "HYAC_TOKEN": agent.token, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "hyac_cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def attempt_line(agent: RunningAgent, task_id: str) -> str:
    shown = hyac(agent, "tasks", "show", task_id)
    assert shown.returncode == 0, shown.stderr
    (line,) = [line for line in shown.stdout.splitlines() if line.startswith("attempt")]
    return " ".join(line.split())


def test_a_retried_task_counts_its_new_round(task_agent: RunningAgent) -> None:
    task_agent.deploy("fails", FAILS, retries=1, retry_backoff=0)
    task_id = submit(task_agent, "fails")
    dead = wait_for(task_agent, task_id)
    assert dead["status"] == "dead" and (dead["attempt"], dead["max_attempts"]) == (2, 2)
    assert attempt_line(task_agent, task_id) == "attempt 2 of 2"

    retried = hyac(task_agent, "tasks", "retry", task_id, "--json")
    assert retried.returncode == 0, retried.stderr
    again = wait_for(task_agent, task_id, check=lambda t: t["finished_at"] != dead["finished_at"])
    assert again["status"] == "dead" and again["error"]["message"] == "always"
    # It ran its whole new round (two more runs), and says so: not "4 of 2".
    assert (again["attempt"], again["max_attempts"]) == (4, 4)
    assert attempt_line(task_agent, task_id) == "attempt 4 of 4"
    assert again["created_at"] == dead["created_at"]  # a retry is the same task


def test_refusals_read_as_english(task_agent: RunningAgent) -> None:
    task_agent.deploy("quick", "def main(context):\n    return 'done'\n")
    task_id = submit(task_agent, "quick")
    assert wait_for(task_agent, task_id)["status"] == "succeeded"

    cancel = hyac(task_agent, "tasks", "cancel", task_id)
    assert cancel.returncode != 0
    assert cancel.stderr.strip() == (
        f"Error: task {task_id} has already succeeded: there is nothing to cancel"
    )
    retry = hyac(task_agent, "tasks", "retry", task_id)
    assert retry.returncode != 0
    assert retry.stderr.strip() == (
        f"Error: task {task_id} has already succeeded: only dead or cancelled tasks can be retried"
    )

    later = submit(task_agent, "quick", delay=600)
    assert hyac(task_agent, "tasks", "cancel", later).returncode == 0
    twice = hyac(task_agent, "tasks", "cancel", later)
    assert f"task {later} has already been cancelled" in twice.stderr
    retried = hyac(task_agent, "tasks", "retry", later)
    assert retried.returncode == 0, retried.stderr
    again = hyac(task_agent, "tasks", "retry", later)  # it runs at once after a retry
    assert again.returncode != 0
    assert any(f"task {later} {state}: only dead or cancelled tasks can be retried" in again.stderr
               for state in ("is queued", "is running", "has already succeeded")), again.stderr


def test_a_run_lost_with_its_agent_gives_the_task_one_more(isolation: Path) -> None:
    data_dir = Path(os.environ["HYAC_DATA_DIR"])
    agent = start_agent(data_dir, "--sandbox", "bwrap", env=FAST_TASKS)
    try:
        agent.deploy("second", SECOND_TIME)  # retries = 0: one run allowed to fail
        task_id = submit(agent, "second")
        running = wait_for(agent, task_id, "running")
        assert running["attempt"] == 1
        with agent.client() as client:  # the first run really started
            wait_until_logged(client, "first run started")
        port = str(urlsplit(agent.url).port)
        agent.kill(signal.SIGKILL)  # the run is lost; its lease runs out
        agent = start_agent(data_dir, "--sandbox", "bwrap", "--port", port, env=FAST_TASKS)
        done = wait_for(agent, task_id, timeout=60)
        assert result_json(done) == {"attempt": 2}
        assert (done["attempt"], done["max_attempts"]) == (2, 2)  # not "2 of 1"
        assert attempt_line(agent, task_id) == "attempt 2 of 2"
        assert get(agent, task_id)["created_at"] == running["created_at"]
    finally:
        agent.kill(signal.SIGTERM)


def wait_until_logged(client: object, text: str) -> None:
    def logged() -> bool:
        lines = client.get("/v1/logs", params={"function": "second"}).json()  # type: ignore[attr-defined]
        return any(text in line["message"] for line in lines)

    eventually(logged)
