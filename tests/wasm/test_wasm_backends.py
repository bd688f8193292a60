"""python3.12-wasm on the docker and gvisor backends: the worker host runs in the image's
Python inside a hardened container (under runsc for gvisor), the engine's folder mounted
read-only. One agent per backend for the module; the bwrap run of the whole runtime is
tests/wasm/test_wasm_runtime.py. Here: context through host calls, escape attempts, the
engine's time and memory limits inside the container's own.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from hyac_agent import runtimes
from hyac_common.errors import InvalidInput
from tests.conftest import RunningAgent, start_agent
from tests.waiting import eventually
from tests.wasm.test_wasm_runtime import ATTACKS, WASM, deploy, value


def _missing(backend: str) -> str | None:
    from hyac_agent.sandbox.docker import DockerBackend
    from hyac_agent.sandbox.gvisor import GvisorBackend

    reason = (GvisorBackend if backend == "gvisor" else DockerBackend).unavailable_reason()
    reason = reason or DockerBackend.default_image_missing()
    if reason:
        return reason
    try:
        runtimes.resolve(WASM)
    except InvalidInput as exc:
        return exc.message
    return None


@pytest.fixture(scope="module", params=["docker", "gvisor"])
def agent(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    backend = request.param
    reason = _missing(backend)
    if reason:
        pytest.skip(f"PYTHON3.12-WASM ON {backend.upper()} NOT TESTED: {reason}")
    data_dir = tmp_path_factory.mktemp(f"wasm-{backend}") / "data"
    env = {key: value for key, value in os.environ.items() if not key.startswith("HYAC_")}
    # A pooled python3.12-wasm sandbox, ready before any test: its engine's store limit
    # was sized for the default memory, so it must not be resized for "fn"'s 192 MiB.
    env.update(HYAC_DATA_DIR=str(data_dir), HYAC_SANDBOX=backend, HYAC_POOL_RUNTIMES=WASM)
    running = start_agent(data_dir, "--sandbox", backend, env=env)

    def pooled() -> bool:
        with running.client() as client:
            return bool(client.get("/v1/agent").json()["extra"]["pool"]["generic"])

    eventually(pooled)
    yield running
    running.kill(signal.SIGTERM)


FUNCTION = """
calls = 0

def main(context):
    global calls
    calls += 1
    mode = context.request.query.get("mode", "context")
    if mode == "bomb":
        hoard = []
        while True:
            hoard.append(bytearray(8 << 20))
    if mode == "peek":
        try:
            return len(open(context.request.query["path"], "rb").read())
        except BaseException as exc:
            return {"refused": type(exc).__name__}
    if mode == "attack":
        return attack(context)
    context.kv.set("k", {"n": [1, 2]})
    context.storage.put("a.txt", b"stored bytes")
    context.logger.info("logged from %s", context.function.runtime)
    with context.db.transaction() as db:
        db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    return {"kv": context.kv.get("k"), "storage": context.storage.get("a.txt").decode(),
            "env": context.env.get("REGION"), "calls": calls}
""" + ATTACKS.replace("def main(context)", "def attack(context)")


def test_host_calls_escapes_and_the_engine_memory_limit(agent: RunningAgent) -> None:
    deploy(agent, "fn", FUNCTION, env={"REGION": "eu"}, memory=192 << 20)
    first = value(agent, "fn")
    assert first == {"kv": {"n": [1, 2]}, "storage": "stored bytes", "env": "eu", "calls": 1}
    for attack, refused in (("passwd", "FileNotFoundError"), ("traversal", "PermissionError"),
                            ("subprocess", "OSError")):
        assert value(agent, "fn", mode="attack", attack=attack)["refused"] == refused, attack
    # the engine's folder is mounted into the container for the worker host, not the guest
    home = str(runtimes.resolve(WASM).interpreter.parent.parent)
    assert value(agent, "fn", mode="peek", path=f"{home}/python-portable.cwasm") == {"refused": "FileNotFoundError"}
    response = agent.invoke("fn", query={"mode": "bomb"})
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "out_of_memory"
    # the guest's MemoryError under the engine's store limit, not the container's OOM
    # kill: the same warm instance answers next, its call count intact (a pooled sandbox
    # resized from the default memory would have been OOM-killed: counted from 1 again)
    assert value(agent, "fn")["calls"] == 7


def test_an_infinite_loop_is_stopped_at_its_timeout(agent: RunningAgent) -> None:
    deploy(agent, "spin", "def main(context):\n    while True:\n        pass\n", timeout=1)
    response = agent.invoke("spin")
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "timeout"
