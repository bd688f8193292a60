"""``context.invoke``: one function calling another of its own tenant through the agent
(the ``function.invoke`` host call), against a real agent over real HTTP."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningAgent, start_agent
from tests.runtime_families.conftest import requires_runtime

CALLEE = """
def main(context):
    json_body = context.request.headers.get("content-type") == "application/json"
    return {"got": context.request.json() if json_body else context.request.text(),
            "method": context.request.method,
            "query": context.request.query, "tenant": context.function.tenant,
            "name": context.function.name, "trace": context.request.headers.get("x-trace")}
"""


def answer(response: httpx.Response) -> Any:
    """The JSON a function returned through ``POST /v1/functions/NAME/invoke``."""
    result = response.json()
    assert result.get("ok"), result.get("error")
    return json.loads(base64.b64decode(result["body_b64"]))


def test_a_function_calls_another_and_gets_its_json(agent: RunningAgent) -> None:
    agent.deploy("callee", CALLEE)
    agent.deploy("caller", """
from hyac_context import InvokeResponse

def main(context):
    plain = context.invoke("callee", {"n": 1})
    assert isinstance(plain, InvokeResponse)
    raw = context.invoke("callee", b"bytes", method="put", query={"q": "1"},
                         headers={"X-Trace": "t1"})
    return {"plain": plain.json(), "status": plain.status, "ok": plain.ok,
            "type": plain.headers.get("content-type"), "version": plain.version,
            "callee_request": plain.request_id, "own_request": context.function.request_id,
            "raw": raw.json(), "text": raw.text()[:8]}
""")
    result = answer(agent.invoke("caller"))
    assert result["plain"] == {"got": {"n": 1}, "method": "POST", "query": {},
                               "tenant": "default", "name": "callee", "trace": None}
    assert result["status"] == 200 and result["ok"] is True
    assert result["type"] == "application/json" and result["version"] == 1
    assert result["callee_request"].startswith("req_")
    assert result["callee_request"] != result["own_request"]
    assert result["raw"]["method"] == "PUT" and result["raw"]["query"] == {"q": "1"}
    assert result["raw"]["trace"] == "t1" and result["raw"]["got"] == "bytes"
    assert result["text"] == '{"got": '


def test_the_callees_error_reaches_the_caller_with_its_traceback(agent: RunningAgent) -> None:
    agent.deploy("broken", """
def divide(n):
    return n / 0

def main(context):
    return divide(1)
""")
    agent.deploy("caller", """
from hyac_context import HostCallError, InvocationError

def main(context):
    mode = context.request.query.get("mode")
    if mode == "uncaught":
        return context.invoke("broken")
    if mode == "missing":
        try:
            context.invoke("nosuchfunction")
        except InvocationError:
            return "wrong class"
        except HostCallError as exc:
            return {"code": exc.code, "message": exc.message}
    try:
        context.invoke("broken")
    except InvocationError as exc:
        return {"code": exc.code, "type": exc.error_type, "message": exc.message,
                "function": exc.function, "traceback": exc.traceback,
                "request_id": exc.request_id, "str": str(exc),
                "is_host_call_error": isinstance(exc, HostCallError)}
""")
    caught = answer(agent.invoke("caller"))
    assert caught["code"] == "function_error" and caught["is_host_call_error"] is True
    assert caught["type"] == "ZeroDivisionError" and caught["message"] == "division by zero"
    assert caught["function"] == "broken" and caught["request_id"].startswith("req_")
    assert caught["str"] == "function 'broken' raised ZeroDivisionError: division by zero"
    assert 'File "functions/broken.py", line 3, in divide' in caught["traceback"]
    assert "bootstrap" not in caught["traceback"]

    # uncaught, it fails the caller, whose report names the callee's error and traceback
    failed = agent.invoke("caller", query={"mode": "uncaught"}).json()
    assert failed["ok"] is False
    assert failed["error"]["type"] == "InvocationError"
    assert failed["error"]["message"] == (
        "function 'broken' raised ZeroDivisionError: division by zero")
    assert 'File "functions/caller.py", line 7, in main' in failed["error"]["traceback"]
    if sys.version_info >= (3, 11):  # exception notes are printed from 3.11 on
        assert 'File "functions/broken.py", line 3, in divide' in failed["error"]["traceback"]

    missing = answer(agent.invoke("caller", query={"mode": "missing"}))
    assert missing["code"] == "not_found" and "nosuchfunction" in missing["message"]


def test_a_function_never_reaches_another_tenants_function(agent: RunningAgent) -> None:
    agent.deploy("target", "def main(context):\n    return {'tenant': 'other'}\n", tenant="other")
    agent.deploy("probe", """
from hyac_context import HostCallError

def main(context):
    name = context.request.query.get("name", "target")
    try:
        return {"reached": context.invoke(name, {"tenant": "other"}).json()}
    except HostCallError as exc:
        return {"code": exc.code}
""")
    assert answer(agent.invoke("probe")) == {"code": "not_found"}
    # names that try to point elsewhere are refused as names
    for name in ("other/target", "../other/target"):
        refused = answer(agent.invoke("probe", query={"name": name}))
        assert refused["code"] == "invalid_input", (name, refused)
    # once 'default' has its own 'target', that one answers
    agent.deploy("target", "def main(context):\n    return {'tenant': 'default'}\n")
    assert answer(agent.invoke("probe")) == {"reached": {"tenant": "default"}}
    # and the function in 'other' is still there, reached only from its own tenant
    agent.deploy("probe", """
def main(context):
    return context.invoke("target").json()
""", tenant="other")
    assert answer(agent.invoke("probe", tenant="other")) == {"tenant": "other"}


RECURSE = """
from hyac_context import HostCallError

def main(context):
    n = (context.request.json() or {}).get("n", 0)
    if n == 0:
        return {"depth": 0, "remaining": context.remaining_time()}
    try:
        inner = context.invoke(context.function.name, {"n": n - 1}).json()
    except HostCallError as exc:
        return {"error": exc.code, "message": exc.message, "at": n}
    if "error" in inner:
        return inner
    return {"depth": inner["depth"] + 1, "remaining": inner["remaining"]}
"""

ARECURSE = """
from hyac_context import HostCallError

async def main(context):
    n = (context.request.json() or {}).get("n", 0)
    if n == 0:
        return {"depth": 0}
    try:
        inner = (await context.ainvoke(context.function.name, {"n": n - 1})).json()
    except HostCallError as exc:
        return {"error": exc.code, "message": exc.message, "at": n}
    if "error" in inner:
        return inner
    return {"depth": inner["depth"] + 1}
"""


def body(payload: Any) -> dict[str, Any]:
    return {"body_b64": base64.b64encode(json.dumps(payload).encode()).decode(),
            "headers": {"content-type": "application/json"}}


def test_a_sync_function_recurses_on_itself_up_to_the_depth_limit(agent: RunningAgent) -> None:
    # The caller's thread waits on the host call while the same worker serves the callee.
    agent.deploy("recurse", RECURSE, timeout=20)
    done = answer(agent.invoke("recurse", **body({"n": 3})))
    assert done["depth"] == 3
    assert 0 < done["remaining"] <= 20  # the callee's time is capped by the caller's
    # the outermost invocation is depth 1: 7 nested calls fit, the 8th is refused
    assert answer(agent.invoke("recurse", **body({"n": 7})))["depth"] == 7
    refused = answer(agent.invoke("recurse", **body({"n": 12})))
    assert refused["error"] == "call_depth_exceeded" and refused["at"] == 5
    assert "at most 8 deep" in refused["message"]


def test_an_async_function_recurses_with_ainvoke(agent: RunningAgent) -> None:
    agent.deploy("arecurse", ARECURSE, timeout=20)
    assert answer(agent.invoke("arecurse", **body({"n": 3}))) == {"depth": 3}
    refused = answer(agent.invoke("arecurse", **body({"n": 9})))
    assert refused["error"] == "call_depth_exceeded"
    # the blocking variant on the event loop is refused before it can deadlock
    agent.deploy("blocking", """
async def main(context):
    return context.invoke("arecurse", {"n": 0}).json()
""")
    failed = agent.invoke("blocking").json()
    assert failed["ok"] is False and failed["error"]["type"] == "RuntimeError"
    assert "ainvoke" in failed["error"]["message"]


def test_the_callee_gets_only_the_time_its_caller_has_left(agent: RunningAgent) -> None:
    agent.deploy("slow", """
import time
def main(context):
    time.sleep(30)
""", timeout=60)
    agent.deploy("impatient", """
from hyac_context import HostCallError
import time

def main(context):
    started = time.monotonic()
    try:
        context.invoke("slow")
    except HostCallError as exc:
        return {"code": exc.code, "waited": time.monotonic() - started}
""", timeout=2)
    result = answer(agent.invoke("impatient"))
    assert result["code"] == "timeout" and result["waited"] < 2.5


@pytest.fixture
def bwrap_agent(isolation: Path) -> Iterator[RunningAgent]:
    """node20 runs under bubblewrap only (there is no docker image for it)."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    running = start_agent(Path(os.environ["HYAC_DATA_DIR"]), "--sandbox", "bwrap")
    yield running
    running.kill(signal.SIGTERM)


@requires_runtime("node20")
def test_node_functions_invoke_too(bwrap_agent: RunningAgent) -> None:
    agent = bwrap_agent
    agent.deploy("broken", "def main(context):\n    raise KeyError('nope')\n")
    agent.deploy("callee", CALLEE)
    source = """
export async function main(context) {
  const n = context.request.json()?.n ?? 0;
  if (n > 0) {
    const inner = (await context.invoke(context.function.name, {n: n - 1})).json();
    return {...inner, depth: inner.depth + 1};
  }
  const py = await context.invoke("callee", {from: "node"}, {query: {q: "1"}});
  let error = null;
  try {
    await context.invoke("broken");
  } catch (err) {
    error = {name: err.name, code: err.code, type: err.errorType, fn: err.function,
             tb: err.traceback.includes("functions/broken.py")};
  }
  let missing = null;
  try {
    await context.invoke("nosuchfunction");
  } catch (err) {
    missing = err.code;
  }
  return {depth: 0, py: py.json(), status: py.status, error, missing};
}
"""
    entry = "functions/noderec.mjs"
    with agent.client() as client:
        deployed = client.put("/v1/functions/noderec", json={
            "entry": entry, "files_b64": {entry: base64.b64encode(source.encode()).decode()},
            "config": {"runtime": "node20", "timeout": 20}})
    assert deployed.status_code in (200, 201), deployed.text
    result = answer(agent.invoke("noderec", **body({"n": 3})))
    assert result["depth"] == 3
    assert result["py"]["got"] == {"from": "node"} and result["py"]["query"] == {"q": "1"}
    assert result["status"] == 200 and result["missing"] == "not_found"
    assert result["error"] == {"name": "InvocationError", "code": "function_error",
                               "type": "KeyError", "fn": "broken", "tb": True}
