"""Background tasks on the embedded queue, against a real agent over real HTTP:
every status, retries with backoff, timeout, cancel, max age, dead-letter and retry,
enqueue from a function, progress as server-sent events, and crash recovery."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from pathlib import Path

import httpx

from tests.conftest import RunningAgent, start_agent
from tests.tasks.helpers import FAST_TASKS, get, result_json, submit, wait_for
from tests.waiting import eventually

STEPS = """
import time
def main(context):
    steps = (context.request.json() or {}).get("steps", 3)
    for i in range(steps):
        context.task.progress(i / steps, f"step {i + 1} of {steps}")
        time.sleep(0.15)
    return {"task": context.task.id, "attempt": context.task.attempt,
            "payload": context.request.json()}
"""


def test_async_invoke_answers_at_once_and_the_task_succeeds(task_agent: RunningAgent) -> None:
    task_agent.deploy("steps", STEPS)
    task_id = submit(task_agent, "steps", {"steps": 4})
    # answered before the work is done: the task is seen running after the answer
    running = wait_for(task_agent, task_id, "running", check=lambda t: t["progress"] is not None)
    assert running["attempt"] == 1 and running["progress_message"].startswith("step")
    done = wait_for(task_agent, task_id)
    assert done["status"] == "succeeded", done
    assert result_json(done) == {"task": task_id, "attempt": 1, "payload": {"steps": 4}}
    assert done["progress"] == 1.0 and done["max_attempts"] == 1
    assert done["started_at"] >= done["created_at"] and done["finished_at"] >= done["started_at"]
    assert done["request_id"].startswith("req_") and done["worker"]

    with task_agent.client() as client:
        listed = client.get("/v1/tasks", params={"function": "steps"}).json()
        assert [t["id"] for t in listed] == [task_id]
        assert client.get("/v1/tasks", params={"status": "queued"}).json() == []
        assert client.get("/v1/tasks", params={"status": "nope"}).status_code == 400
        assert client.get("/v1/tasks/task_missing").status_code == 404
    with task_agent.client("other") as client:  # another tenant cannot see it
        assert client.get(f"/v1/tasks/{task_id}").status_code == 404


def test_background_functions_queue_through_invoke_and_gateway(task_agent: RunningAgent) -> None:
    task_agent.deploy("bg", """
def main(context):
    return {"task": context.task and context.task.id, "sync": context.task is None}
""", background=True)
    with task_agent.client() as client:
        queued = client.post("/v1/functions/bg/invoke", json={})
        assert queued.status_code == 202 and queued.json()["status"] == "queued"
        forced = client.post("/v1/functions/bg/invoke", params={"mode": "sync"}, json={})
        assert forced.status_code == 200 and forced.json()["ok"] is True
    with httpx.Client(base_url=task_agent.url) as public:
        gateway = public.post("/default/bg", json={"x": 1})
    assert gateway.status_code == 202
    assert gateway.headers["location"] == f"/v1/tasks/{gateway.json()['task_id']}"
    for task_id in (queued.json()["task_id"], gateway.json()["task_id"]):
        assert result_json(wait_for(task_agent, task_id)) == {"task": task_id, "sync": False}


def test_failures_retry_with_backoff_then_dead_and_retry_revives(task_agent: RunningAgent) -> None:
    task_agent.deploy("flaky", """
def helper(attempt):
    raise RuntimeError(f"attempt {attempt} failed")

def main(context):
    if context.task.attempt < 4:
        helper(context.task.attempt)
    return {"attempt": context.task.attempt}
""", retries=2, retry_backoff=0.05, retry_backoff_max=0.1)
    task_id = submit(task_agent, "flaky")
    dead = wait_for(task_agent, task_id)
    assert dead["status"] == "dead" and dead["attempt"] == 3 and dead["max_attempts"] == 3
    error = dead["error"]
    assert error["code"] == "function_error" and error["type"] == "RuntimeError"
    assert error["message"] == "attempt 3 failed"
    assert 'File "functions/flaky.py", line 3, in helper' in error["traceback"]
    assert "bootstrap" not in error["traceback"]

    with task_agent.client() as client:
        assert client.post(f"/v1/tasks/{task_id}/cancel").status_code == 409  # already ended
        revived = client.post(f"/v1/tasks/{task_id}/retry")
        assert revived.status_code == 200 and revived.json()["status"] == "queued"
    again = wait_for(task_agent, task_id)
    assert again["status"] == "succeeded" and result_json(again) == {"attempt": 4}
    assert again["error"] is None
    with task_agent.client() as client:
        assert client.post(f"/v1/tasks/{task_id}/retry").status_code == 409  # not dead


def test_a_failed_task_waits_its_backoff_and_then_succeeds(task_agent: RunningAgent) -> None:
    task_agent.deploy("second", """
def main(context):
    if context.task.attempt == 1:
        raise ValueError("first try fails")
    return "ok"
""", retries=1, retry_backoff=1.0)
    task_id = submit(task_agent, "second")
    failed = wait_for(task_agent, task_id, "failed")
    seen = time.time()
    assert failed["attempt"] == 1 and failed["error"]["message"] == "first try fails"
    # Exponential with jitter from the upper half: the first wait is 0.5 to 1.0 s after the
    # failure, which came after the run started and before we saw it (however slow the run).
    assert failed["run_at"] >= failed["started_at"] + 0.5, failed
    assert failed["run_at"] <= seen + 1.0, (failed, seen)
    done = wait_for(task_agent, task_id)
    assert done["status"] == "succeeded" and done["attempt"] == 2
    assert done["started_at"] >= failed["run_at"]


def test_timeout_applies_to_task_runs(task_agent: RunningAgent) -> None:
    task_agent.deploy("overrun", "import time\ndef main(context):\n    time.sleep(30)\n", timeout=1)
    dead = wait_for(task_agent, submit(task_agent, "overrun"))  # the run would succeed at 30 s
    assert dead["status"] == "dead" and dead["error"]["code"] == "timeout"
    assert "timed out after 1s" in dead["error"]["message"]


def test_cancel_a_queued_and_a_running_task(task_agent: RunningAgent) -> None:
    task_agent.deploy("long", """
import itertools, time
def main(context):
    for i in itertools.count():  # only a cancel ends it
        context.task.progress(min(i / 1000, 0.99), "working")
        time.sleep(0.1)
""")
    later = submit(task_agent, "long", delay=60)
    with task_agent.client() as client:
        cancelled = client.post(f"/v1/tasks/{later}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["attempt"] == 0

        running = submit(task_agent, "long")
        wait_for(task_agent, running, "running", check=lambda t: t["progress"] is not None)
        # The run never ends by itself: only the cancel can have stopped it.
        stopped = client.post(f"/v1/tasks/{running}/cancel")
        assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled"
        after = get(task_agent, running)
        assert after["status"] == "cancelled" and after["result"] is None

        # a cancelled task can be run again
        assert client.post(f"/v1/tasks/{later}/retry").json()["status"] == "queued"
        wait_for(task_agent, later, "running", check=lambda t: t["progress"] is not None)
        # Meanwhile another run started and reported progress; the stopped one, whose
        # worker is gone, changed nothing.
        again = get(task_agent, running)
        fields = ("status", "progress", "progress_message", "result", "error")
        assert {k: again[k] for k in fields} == {k: after[k] for k in fields}
        client.post(f"/v1/tasks/{later}/cancel")


def test_a_task_older_than_its_max_age_dies_unrun(task_agent: RunningAgent) -> None:
    task_agent.deploy("stale", "def main(context):\n    return 'ran'\n", task_max_age=0.5)
    dead = wait_for(task_agent, submit(task_agent, "stale", delay=1.5))
    assert dead["status"] == "dead" and dead["attempt"] == 0
    assert dead["error"]["code"] == "expired" and dead["started_at"] is None


def test_functions_enqueue_tasks_in_their_own_tenant(task_agent: RunningAgent) -> None:
    task_agent.deploy("child", "def main(context):\n    return context.request.json()\n")
    task_agent.deploy("parent", """
def main(context):
    op = context.request.query.get("op")
    if op == "progress":  # the host call itself, as a function that skips the API would
        context._host.call(context.request.query.get("as", context.function.request_id),
                           "task.progress", {"fraction": 0.5}).result()
    if op == "delay":
        return context.enqueue("child", {"late": True}, delay=60)
    return {"child": context.enqueue("child", {"from": context.function.name}),
            "task": context.task}
""")
    first = task_agent.invoke("parent").json()
    assert first["ok"], first
    answer = json.loads(base64.b64decode(first["body_b64"]))
    assert answer["task"] is None  # a plain invocation is no task
    child = wait_for(task_agent, answer["child"])
    assert result_json(child) == {"from": "parent"}

    late = task_agent.invoke("parent", query={"op": "delay"}).json()
    late_id = base64.b64decode(late["body_b64"]).decode()
    assert get(task_agent, late_id)["status"] == "queued"
    assert get(task_agent, late_id)["run_at"] > time.time() + 50

    # outside a task there is no progress to report, and naming the request of a
    # running task (the worker's word) does not make it the caller's
    assert get(task_agent, answer["child"])["request_id"]
    refused = task_agent.invoke("parent", query={"op": "progress"}).json()
    assert refused["ok"] is False and "only inside a background task" in refused["error"]["message"]
    steps = task_agent.deploy("steps", STEPS)
    assert steps["version"] == 1
    victim = submit(task_agent, "steps", {"steps": 20})
    victim_run = wait_for(task_agent, victim, "running", check=lambda t: t["progress"] is not None)
    forged = task_agent.invoke("parent", query={"op": "progress", "as": victim_run["request_id"]})
    assert forged.json()["ok"] is False
    assert "only inside a background task" in forged.json()["error"]["message"]
    assert get(task_agent, victim)["progress"] != 0.5

    # another tenant's caller enqueues in its own tenant, where there is no 'child'
    task_agent.deploy("parent", """
def main(context):
    return context.enqueue("child", {})
""", tenant="other")
    denied = task_agent.invoke("parent", tenant="other").json()
    assert denied["ok"] is False and "not_found" in denied["error"]["message"]


#: steps as STEPS, each held until the test has seen it (``seen`` in the tenant's kv):
#: the stream is polled, so a step shorter than a poll could pass unseen under load
ACKED_STEPS = """
import time
def main(context):
    steps = context.request.json()["steps"]
    for i in range(steps):
        context.task.progress(i / steps, f"step {i + 1} of {steps}")
        while context.kv.get("seen", -1) < i:
            time.sleep(0.02)
    return {"task": context.task.id}
"""
SEEN = "def main(context):\n    context.kv.set('seen', context.request.json()['step'])\n"


def test_progress_streams_as_server_sent_events(task_agent: RunningAgent) -> None:
    task_agent.deploy("steps", ACKED_STEPS, timeout=120)
    task_agent.deploy("seen", SEEN)
    steps = 5
    task_id = submit(task_agent, "steps", {"steps": steps})
    events = []
    with task_agent.client() as client:
        with client.stream("GET", f"/v1/tasks/{task_id}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            kind = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    assert kind == "task"
                    events.append(json.loads(line[6:]))
                    progress = events[-1]["progress"]
                    if events[-1]["status"] == "running" and progress is not None:
                        seen = task_agent.invoke("seen", body_b64=base64.b64encode(json.dumps(
                            {"step": round(progress * steps)}).encode()).decode())
                        assert seen.status_code == 200, seen.text
    statuses = [e["status"] for e in events]
    assert statuses[-1] == "succeeded" and "running" in statuses
    fractions = [e["progress"] for e in events if e["progress"] is not None]
    assert fractions == sorted(fractions) and len(set(fractions)) >= 3
    assert any(e["progress_message"] == "step 3 of 5" for e in events)


def test_kill_9_mid_task_and_the_restarted_agent_runs_it_again(isolation: Path) -> None:
    data_dir = Path(os.environ["HYAC_DATA_DIR"])
    first = start_agent(data_dir, "--sandbox", "bwrap", env=FAST_TASKS)
    try:
        first.deploy("sturdy", """
import time
def main(context):
    context.kv.set("attempts", (context.kv.get("attempts") or 0) + 1)
    context.task.progress(0.1, "started")
    time.sleep(2)
    return {"attempt": context.task.attempt, "runs": context.kv.get("attempts")}
""")
        task_id = submit(first, "sturdy")
        wait_for(first, task_id, "running", check=lambda t: t["progress"] is not None)
    finally:
        first.kill(signal.SIGKILL)
    second = start_agent(data_dir, "--sandbox", "bwrap", env=FAST_TASKS)
    try:
        done = wait_for(second, task_id, timeout=40)
        assert done["status"] == "succeeded", done
        assert done["attempt"] == 2
        assert result_json(done) == {"attempt": 2, "runs": 2}
    finally:
        second.kill(signal.SIGTERM)


def test_a_task_over_the_tenant_concurrency_waits_instead_of_failing(task_agent: RunningAgent) -> None:
    """Quota refusals (429) of a task's run are not failures: the task waits and keeps
    its attempts, even with no retries at all."""
    tenant = "busy"
    with task_agent.client(tenant) as client:
        assert client.put("/v1/quotas", json={"values": {"concurrency": 1}}).status_code == 200
    task_agent.deploy("slow", """
import time
def main(context):
    time.sleep(1.5)
    return {"attempt": context.task.attempt}
""", tenant=tenant, retries=0)
    first = submit(task_agent, "slow", tenant=tenant)
    second = submit(task_agent, "slow", tenant=tenant)
    # one of them meets the other running: it goes back to the queue, naming the quota

    def a_waiting_task() -> dict | None:
        for task_id in (first, second):
            seen = get(task_agent, task_id, tenant=tenant)
            if seen["status"] == "queued" and seen["error"]:
                return seen
        return None

    waited = eventually(a_waiting_task, timeout=20)
    assert waited["error"]["code"] == "quota_exceeded" and "concurrency" in waited["error"]["message"]
    for task_id in (first, second):
        done = wait_for(task_agent, task_id, tenant=tenant)
        assert done["status"] == "succeeded", done
        assert result_json(done) == {"attempt": 1}
