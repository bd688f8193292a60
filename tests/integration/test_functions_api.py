"""Deploy, versions, rollback, remove and invoke against a real agent over real HTTP."""

from __future__ import annotations

import base64
import concurrent.futures
import json
from pathlib import Path

import httpx

from tests.conftest import RunningAgent, current_runtime
from tests.in_process import ManualClock, in_process_agent

HELLO = """
def main(context):
    data = context.request.json() or {}
    return {"hello": data.get("name", "world"), "version": context.function.version}
"""


def body_of(response: httpx.Response) -> bytes:
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"], result
    return base64.b64decode(result["body_b64"])


def test_deploy_is_content_addressed_and_versioned(agent: RunningAgent) -> None:
    first = agent.deploy("hello", HELLO)
    assert first["version"] == 1 and first["created"] is True and first["previous_version"] is None
    again = agent.deploy("hello", HELLO)
    assert again == {**first, "created": False, "previous_version": 1}
    changed = agent.deploy("hello", HELLO + "\n# changed\n")
    assert changed["version"] == 2 and changed["sha256"] != first["sha256"]
    # a setting is part of the version too
    retimed = agent.deploy("hello", HELLO + "\n# changed\n", timeout=12)
    assert retimed["version"] == 3

    with agent.client() as client:
        versions = client.get("/v1/functions/hello/versions").json()
        assert [v["version"] for v in versions] == [1, 2, 3]
        assert [v["active"] for v in versions] == [False, False, True]
        listed = client.get("/v1/functions").json()
        assert [(f["name"], f["active_version"], f["versions"]) for f in listed] == [("hello", 3, 3)]

        rolled = client.post("/v1/functions/hello/rollback", json={"version": 1})
        assert rolled.status_code == 200 and rolled.json()["active_version"] == 1
        assert b'"version": 1' in body_of(agent.invoke("hello"))
        missing = client.post("/v1/functions/hello/rollback", json={"version": 9})
        assert missing.status_code == 404 and "no version 9" in missing.json()["error"]["message"]

        # deploying the content of an existing version reuses it
        assert agent.deploy("hello", HELLO + "\n# changed\n")["version"] == 2

        assert client.delete("/v1/functions/hello").json() == {"deleted": "hello", "domains_removed": []}
        gone = agent.invoke("hello")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
        assert client.delete("/v1/functions/hello").status_code == 404


def test_return_types_and_request_fields(agent: RunningAgent) -> None:
    agent.deploy("types", """
def main(context):
    kind = context.request.query.get("kind")
    if kind == "str":
        return "plain text"
    if kind == "bytes":
        return bytes([0, 1, 2, 255])
    if kind == "response":
        return context.Response(status=201, headers={"x-made": "yes"}, body={"made": True})
    if kind == "none":
        return None
    if kind == "list":
        return [1, 2, 3]
    return {
        "method": context.request.method,
        "path": context.request.path,
        "query": context.request.query,
        "header": context.request.headers.get("x-custom"),
        "body": context.request.text(),
    }
""")
    assert body_of(agent.invoke("types", query={"kind": "str"})) == b"plain text"
    assert body_of(agent.invoke("types", query={"kind": "bytes"})) == bytes([0, 1, 2, 255])
    assert body_of(agent.invoke("types", query={"kind": "list"})) == b"[1, 2, 3]"
    response = agent.invoke("types", query={"kind": "response"}).json()
    assert response["status"] == 201 and response["headers"]["x-made"] == "yes"
    assert agent.invoke("types", query={"kind": "none"}).json()["status"] == 204

    with httpx.Client(base_url=agent.url) as public:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            answer = public.request(
                method, "/default/types/some/path", params={"a": "1"},
                headers={"X-Custom": "c"}, content=b"payload",
            )
            assert answer.status_code == 200, answer.text
            seen = answer.json()
            assert seen["method"] == method
            assert seen["path"] == "/some/path"
            assert seen["query"] == {"a": "1"}
            assert seen["header"] == "c"
            assert seen["body"] == "payload"
            assert answer.headers["x-hyac-request-id"].startswith("req_")
        made = public.get("/default/types", params={"kind": "response"})
        assert made.status_code == 201 and made.headers["x-made"] == "yes"
        assert made.json() == {"made": True}


def test_user_error_shows_user_traceback(agent: RunningAgent) -> None:
    agent.deploy("broken", "def helper(x):\n    return 1 / x\n\n\ndef main(context):\n    return helper(0)\n")
    result = agent.invoke("broken").json()
    assert result["ok"] is False
    error = result["error"]
    assert error["type"] == "ZeroDivisionError"
    trace = error["traceback"]
    assert 'File "functions/broken.py", line 6, in main' in trace
    assert 'File "functions/broken.py", line 2, in helper' in trace
    assert "bootstrap" not in trace and "hyac_context" not in trace
    assert trace.rstrip().endswith("ZeroDivisionError: division by zero")

    with httpx.Client(base_url=agent.url) as public:
        answer = public.post("/default/broken")
    assert answer.status_code == 500
    body = answer.json()["error"]
    assert body["code"] == "function_error" and body["type"] == "ZeroDivisionError"
    assert "traceback" not in body  # anonymous callers do not get the source lines


def test_timeout_kills_the_worker_and_the_function_recovers(agent: RunningAgent) -> None:
    agent.deploy("sleepy", """
import time
def main(context):
    seconds = float(context.request.query.get("s", "0"))
    time.sleep(seconds)
    return {"slept": seconds, "left": context.remaining_time()}
""", timeout=1)
    answer = agent.invoke("sleepy", query={"s": "30"})  # it would answer 200 at 30 s
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == "timeout"
    assert "timed out after 1s" in answer.json()["error"]["message"]
    again = agent.invoke("sleepy", query={"s": "0"})
    seen = __import__("json").loads(body_of(again))
    assert 0 < seen["left"] <= 1


def test_worker_crash_is_reported_and_recovered(agent: RunningAgent) -> None:
    agent.deploy("crashy", """
import os
def main(context):
    if context.request.query.get("die"):
        os._exit(3)
    return "alive"
""")
    assert body_of(agent.invoke("crashy")) == b"alive"
    crashed = agent.invoke("crashy", query={"die": "1"})
    assert crashed.status_code == 502
    assert crashed.json()["error"]["code"] == "worker_crashed"
    assert body_of(agent.invoke("crashy")) == b"alive"


def test_async_functions_run_concurrently_on_one_worker(agent: RunningAgent) -> None:
    agent.deploy("waiter", """
import asyncio, os, time
async def main(context):
    started = time.monotonic()
    await asyncio.sleep(0.5)
    return {"pid": os.getpid(), "started": started, "ended": time.monotonic()}
""")
    body_of(agent.invoke("waiter"))  # warm up
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: agent.invoke("waiter"), range(8)))
    runs = [json.loads(body_of(a)) for a in answers]
    assert len({run["pid"] for run in runs}) == 1, "one warm worker serves them all"
    # Concurrent, not one after another: on the worker's own clock, runs overlap (a serial
    # worker never has two at once). No wall-clock bound, so a busy host that spreads the
    # eight requests out cannot fail it.
    events = sorted([(run["started"], 1) for run in runs] + [(run["ended"], -1) for run in runs])
    running = [sum(step for _, step in events[: i + 1]) for i in range(len(events))]
    assert max(running) >= 2, runs


def test_kv_persists_and_is_per_tenant(agent: RunningAgent) -> None:
    source = """
def main(context):
    op = context.request.query["op"]
    if op == "set":
        context.kv.set("color", context.request.json())
        return "ok"
    if op == "list":
        return context.kv.list()
    return {"color": context.kv.get("color")}
"""
    agent.deploy("store", source)
    agent.deploy("store", source, tenant="other")
    body_of(agent.invoke("store", query={"op": "set"}, body_b64=base64.b64encode(b'"blue"').decode()))
    assert body_of(agent.invoke("store", query={"op": "get"})) == b'{"color": "blue"}'
    assert body_of(agent.invoke("store", tenant="other", query={"op": "get"})) == b'{"color": null}'
    assert body_of(agent.invoke("store", tenant="other", query={"op": "list"})) == b"[]"
    assert body_of(agent.invoke("store", query={"op": "list"})) == b'["color"]'


def test_runtime_is_recorded(agent: RunningAgent) -> None:
    agent.deploy("rt", "import sys\ndef main(context):\n    return context.function.runtime\n")
    assert body_of(agent.invoke("rt")).decode() == current_runtime()


def test_a_used_up_rate_quota_answers_with_whole_numbers(tmp_path: Path) -> None:
    """The 429 reads as the README shows it: "limit": 1, "use": 1 (not 1.0). The agent's
    clock stands still, so no minute ends between the requests."""
    with in_process_agent(tmp_path / "data", ManualClock(1_800_000_010.0)) as api_agent:
        api_agent.deploy("counted", HELLO)
        with api_agent.client() as client:
            assert client.put("/v1/quotas", json={"values": {"executions_per_minute": 1}}
                              ).is_success
        body_of(api_agent.invoke("counted"))
        with api_agent.http() as anonymous:
            public = anonymous.post("/default/counted")
        for answer in (api_agent.invoke("counted"), public):
            assert answer.status_code == 429, answer.text
            assert '"limit":1,"use":1' in answer.text.replace(" ", ""), answer.text
