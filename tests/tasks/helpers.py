"""Helpers for background-task tests against real agents."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from tests.conftest import RunningAgent

ENDED = ("succeeded", "dead", "cancelled")
#: small numbers so retries, leases and callbacks happen within a test's patience
FAST_TASKS = {
    "HYAC_TASK_LEASE": "2",
    "HYAC_CALLBACK_BACKOFF": "0.1",
}


def submit(agent: RunningAgent, name: str, payload: Any = None, tenant: str | None = None,
           **params: Any) -> str:
    """Queue ``name`` as a task (mode=async); the task id."""
    body = {} if payload is None else {
        "body_b64": base64.b64encode(json.dumps(payload).encode()).decode(),
        "headers": {"content-type": "application/json"},
    }
    with agent.client(tenant) as client:
        answer = client.post(f"/v1/functions/{name}/invoke",
                             params={"mode": "async", **params}, json=body)
    assert answer.status_code == 202, answer.text
    task_id = answer.json()["task_id"]
    assert answer.headers["location"] == f"/v1/tasks/{task_id}"
    return task_id


def get(agent: RunningAgent, task_id: str, tenant: str | None = None) -> dict[str, Any]:
    with agent.client(tenant) as client:
        answer = client.get(f"/v1/tasks/{task_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for(agent: RunningAgent, task_id: str, *statuses: str, timeout: float = 30,
             tenant: str | None = None, check: Any = None) -> dict[str, Any]:
    """Poll until the task is in one of ``statuses`` (default: any end) and ``check``
    (if given) holds; fail with its last state otherwise."""
    wanted = statuses or ENDED
    deadline = time.monotonic() + timeout
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        task = get(agent, task_id, tenant)
        if task["status"] in wanted and (check is None or check(task)):
            return task
        if task["status"] in ENDED and task["status"] not in wanted:
            break
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} never became {'/'.join(wanted)}: {task}")


def result_json(task: dict[str, Any]) -> Any:
    assert task["status"] == "succeeded", task
    return json.loads(base64.b64decode(task["result"]["body_b64"]))


