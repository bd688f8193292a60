"""The python3.12-wasm worker host (runtimes/python/wasm_host.py) driven as the agent
drives it, with no sandbox around it: what the engine itself enforces. The instance is
warm (module state survives between invocations of one worker), and code that runs past
its deadline is stopped by epoch interruption, not merely abandoned."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyac_agent import runtimes
from hyac_common.errors import InvalidInput
from tests.python_worker.test_bootstrap import Worker, body_of

SOURCE = """
import time

COUNT = 0

def main(context):
    global COUNT
    if context.request.query.get("spin"):
        while True:
            pass
    COUNT += 1
    return {"count": COUNT, "kv": context.kv.get("a"), "clock": time.time() > 1e9}
"""


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Worker]:
    try:
        runtime = runtimes.resolve("python3.12-wasm")
    except InvalidInput as exc:
        pytest.skip(f"PYTHON3.12-WASM NOT TESTED: {exc.message}")
    code = tmp_path / "code"
    (code / "functions").mkdir(parents=True)
    (code / "functions" / "count.py").write_text(SOURCE)
    # The harness starts [python, -I, -B, BOOTSTRAP]: point both at the wasm host.
    monkeypatch.setattr("tests.python_worker.test_bootstrap.BOOTSTRAP", runtime.bootstrap)
    worker = Worker(str(runtime.interpreter), code, {"HYAC_MEMORY_BYTES": str(256 << 20)})
    worker.init("functions/count.py")
    ready = worker.startup()
    assert ready["type"] == "ready" and ready["runtime_version"] == "3.12.0", ready
    yield worker
    worker.close()


def test_a_warm_instance_keeps_its_state_and_answers_host_calls(host: Worker) -> None:
    host.kv["a"] = [1]
    first = json.loads(body_of(host.call(None, method="GET")))
    second = json.loads(body_of(host.call(None, method="GET")))
    assert first == {"count": 1, "kv": [1], "clock": True}
    assert second["count"] == 2
    assert [c["op"] for c in host.hostcalls] == ["kv.get", "kv.get"]


def test_the_engine_stops_code_past_its_deadline(host: Worker) -> None:
    result = host.call(None, method="GET", query={"spin": "1"}, deadline=time.time() + 1)
    assert not result["ok"]
    assert result["error"]["type"] == "TimeoutError"
    assert "WebAssembly engine stopped it" in result["error"]["message"]
    # the instance is gone with its stack; the host leaves rather than serve a broken one
    assert host.wait(timeout=30) == 0
