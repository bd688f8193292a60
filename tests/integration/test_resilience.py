"""One request's failure stays its own: a timeout or a cancelled task answers that one
request and drains its worker; the worker's other requests finish by their own deadlines
and a fresh worker serves new ones. Under both sandbox backends."""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningAgent, start_agent
from tests.sandbox.conftest import BACKENDS, backend_missing
from tests.tasks.helpers import submit, wait_for
from tests.waiting import eventually

# Every call returns (or prints) the token of the worker process that ran it; requests
# that wait for "go" poll the tenant's kv until the test sets it.
SHARED = """
import os, time
TOKEN = os.urandom(8).hex()

def main(context):
    job = context.request.json() or {}
    role = job.get("role", "")
    if role == "go":
        context.kv.set(job["key"], True)
        return {"token": TOKEN}
    print(f"started {role} {context.function.request_id} {TOKEN}", flush=True)
    if role == "forever":
        while True:
            time.sleep(0.05)
    while not context.kv.get(job["key"]):
        time.sleep(0.05)
    return {"token": TOKEN, "role": role}
"""


@pytest.fixture(scope="module", params=BACKENDS)
def backend_agent(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningAgent]:
    reason = backend_missing(request.param)
    if reason:
        pytest.skip(f"SANDBOX BACKEND {request.param!r} NOT TESTED: {reason}")
    data_dir = tmp_path_factory.mktemp(f"resilience-{request.param}") / "data"
    env = {key: value for key, value in os.environ.items() if not key.startswith("HYAC_")}
    env.update(HYAC_DATA_DIR=str(data_dir), HYAC_SANDBOX=request.param)
    running = start_agent(data_dir, "--sandbox", request.param, env=env)
    yield running
    running.kill(signal.SIGTERM)


def _body(payload: dict[str, Any]) -> dict[str, Any]:
    return {"body_b64": base64.b64encode(json.dumps(payload).encode()).decode(),
            "headers": {"content-type": "application/json"}}


def _call(agent: RunningAgent, name: str, **payload: Any) -> httpx.Response:
    with agent.client() as client:
        return client.post(f"/v1/functions/{name}/invoke", json=_body(payload), timeout=120)


def _value(answer: httpx.Response) -> Any:
    assert answer.status_code == 200 and answer.json()["ok"], answer.text
    return json.loads(base64.b64decode(answer.json()["body_b64"]))


def _started(agent: RunningAgent, name: str, role: str) -> list[tuple[str, str]]:
    """(request id, worker token) of each run of ``role`` that has begun."""
    with agent.client() as client:
        lines = client.get("/v1/logs", params={"function": name, "limit": 10_000}).json()
    return [
        (words[2], words[3]) for words in (line["message"].split() for line in lines)
        if len(words) == 4 and words[:2] == ["started", role]
    ]


def _pool(agent: RunningAgent) -> dict[str, int]:
    with agent.client() as client:
        return client.get("/v1/agent").json()["extra"]["pool"]


class _Background:
    """Requests sent from threads, their answers kept."""

    def __init__(self) -> None:
        self.answers: dict[str, httpx.Response] = {}
        self._threads: list[threading.Thread] = []

    def send(self, key: str, call: Callable[[], httpx.Response]) -> None:
        thread = threading.Thread(target=lambda: self.answers.__setitem__(key, call()))
        thread.start()
        self._threads.append(thread)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(120)


def test_a_timeout_fails_only_its_own_request(backend_agent: RunningAgent) -> None:
    agent, name = backend_agent, "slowmix"
    agent.deploy(name, SHARED, timeout=8)
    sent = _Background()
    sent.send("slow", lambda: _call(agent, name, role="forever"))
    ((slow_id, token),) = eventually(lambda: _started(agent, name, "forever"))
    # The short requests start a while after the slow one, so they are still on the
    # worker when it overruns, and end well before their own deadlines.
    time.sleep(2.5)
    for n in range(4):
        sent.send(f"short{n}", lambda: _call(agent, name, role="short", key="go-timeout"))
    shorts = eventually(lambda: len(_started(agent, name, "short")) == 4 and _started(agent, name, "short"))
    assert {worker for _, worker in shorts} == {token}, "all five share one worker"

    eventually(lambda: "slow" in sent.answers)
    slow = sent.answers["slow"]
    assert slow.status_code == 504, slow.text
    assert slow.json()["error"]["code"] == "timeout"
    assert slow.json()["error"]["request_id"] == slow_id, "the error names its own request"
    # Drained: the old worker gets no new request, a fresh one answers at once.
    assert _pool(agent)["draining"] == 1
    fresh = _value(_call(agent, name, role="go", key="go-timeout"))
    assert fresh["token"] != token
    sent.join()
    for n in range(4):
        assert _value(sent.answers[f"short{n}"]) == {"token": token, "role": "short"}
    # Its requests over, the drained worker is stopped.
    eventually(lambda: _pool(agent)["draining"] == 0)
    with agent.client() as client:
        system = [line["message"] for line in client.get(
            "/v1/logs", params={"function": name, "limit": 10_000}).json()
            if line["stream"] == "system"]
    assert any(f"request {slow_id} exceeded its timeout" in line for line in system)
    assert not any("worker_crashed" in line for line in system)


def test_cancelling_a_task_fails_no_neighbour(backend_agent: RunningAgent) -> None:
    agent, name = backend_agent, "taskmix"
    agent.deploy(name, SHARED, timeout=60)
    doomed = submit(agent, name, {"role": "forever"})
    ((_, token),) = eventually(lambda: _started(agent, name, "forever"))
    neighbour = submit(agent, name, {"role": "task", "key": "go-cancel"})
    eventually(lambda: _started(agent, name, "task"))
    sent = _Background()
    sent.send("sync", lambda: _call(agent, name, role="sync", key="go-cancel"))
    eventually(lambda: _started(agent, name, "sync"))
    running = {worker for _, worker in
               _started(agent, name, "task") + _started(agent, name, "sync")}
    assert running == {token}, "the task, its neighbour and the sync call share one worker"

    with agent.client() as client:
        cancelled = client.post(f"/v1/tasks/{doomed}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert _value(_call(agent, name, role="go", key="go-cancel"))["token"] != token
    sent.join()
    assert _value(sent.answers["sync"]) == {"token": token, "role": "sync"}
    task = wait_for(agent, neighbour, timeout=60)
    assert task["status"] == "succeeded", task
    assert json.loads(base64.b64decode(task["result"]["body_b64"]))["token"] == token
    assert wait_for(agent, doomed)["status"] == "cancelled"
    eventually(lambda: _pool(agent)["draining"] == 0)
