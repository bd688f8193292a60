"""The python3.12-wasm runtime on a real agent with the bubblewrap backend: the worker
host runs in bwrap, the function in wasmtime inside it (defence in depth).

One agent for the module. The same function code runs on python3.11 and on
python3.12-wasm with the same answers (context through host calls); the escape suite's
attacks that apply to a WebAssembly guest fail; runaway code is stopped by the engine.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from hyac_agent import runtimes
from hyac_common.errors import InvalidInput
from tests.conftest import RunningAgent, start_agent
from tests.deps.test_dependencies import _pypi_unreachable

WASM = "python3.12-wasm"


def _missing() -> str | None:
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    try:
        runtimes.resolve(WASM)
    except InvalidInput as exc:
        return exc.message
    return None


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    reason = _missing()
    if reason:
        pytest.skip(f"PYTHON3.12-WASM NOT TESTED: {reason}")
    data_dir = tmp_path_factory.mktemp("wasm") / "data"
    env = {key: value for key, value in os.environ.items() if not key.startswith("HYAC_")}
    env.update(HYAC_DATA_DIR=str(data_dir))
    running = start_agent(data_dir, "--sandbox", "bwrap", env=env)
    yield running
    running.kill(signal.SIGTERM)


def deploy(agent: RunningAgent, name: str, source: str, **config: Any) -> dict[str, Any]:
    config.setdefault("runtime", WASM)
    return agent.deploy(name, source, **config)


def call(agent: RunningAgent, name: str, **query: str) -> dict[str, Any]:
    response = agent.invoke(name, query=query)
    assert response.status_code == 200, response.text
    return response.json()


def value(agent: RunningAgent, name: str, **query: str) -> Any:
    answer = call(agent, name, **query)
    assert answer["ok"], answer["error"]
    return json.loads(base64.b64decode(answer["body_b64"]))


CONTEXT = """
import asyncio, json, sys

def main(context):
    context.kv.set("k", {"n": [1, 2]})
    context.storage.put("notes/a.txt", b"stored bytes", content_type="text/plain")
    context.logger.info("logged from %s", context.function.runtime)
    print("printed line")
    with context.db.transaction() as db:
        db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        db.execute("INSERT INTO t VALUES (7)")
    total = context.db.fetchone("SELECT SUM(x) AS s FROM t")["s"]
    callee = context.invoke("callee", {"from": "caller"})
    return {
        "kv": context.kv.get("k"),
        "keys": context.kv.list(""),
        "storage": context.storage.get("notes/a.txt").decode(),
        "env": context.env.get("REGION"),
        "db": total > 0,
        "invoke": callee.json(),
        "json": json.loads(context.request.body or b"null"),
        "function": [context.function.tenant, context.function.name],
        "secrets": sorted(context.secrets),
    }
"""

CALLEE = """
async def main(context):
    await context.kv.aset("seen", context.request.json())
    return {"callee": await context.kv.aget("seen"), "runtime": context.function.runtime}
"""


def test_the_same_code_runs_on_python_and_wasm(agent: RunningAgent) -> None:
    deploy(agent, "callee", CALLEE)
    answers = {}
    for runtime in ("python3.11", WASM):
        name = "ctx-" + runtime.replace(".", "")
        deploy(agent, name, CONTEXT, runtime=runtime, env={"REGION": "eu"})
        answers[runtime] = value(agent, name)
    for answer in answers.values():
        answer.pop("function")
    assert answers["python3.11"] == answers[WASM]
    assert answers[WASM] == {
        "kv": {"n": [1, 2]}, "keys": ["k", "seen"], "storage": "stored bytes", "env": "eu",
        "db": True, "invoke": {"callee": {"from": "caller"}, "runtime": WASM}, "json": None, "secrets": [],
    }
    with agent.client() as client:
        lines = client.get("/v1/logs", params={"function": "ctx-python312-wasm"}).json()
    messages = [line["message"] for line in lines]
    assert f"logged from {WASM}" in messages and "printed line" in messages


ATTACKS = """
import os, sys

def main(context):
    attack = context.request.query["attack"]
    try:
        if attack == "passwd":
            return open("/etc/passwd").read()
        if attack == "write_code":
            open("/code/functions/attacks.py", "w").write("pwned")
        if attack == "listing":
            return sorted(os.listdir("/"))
        if attack == "code_listing":
            return sorted(os.listdir("/code"))
        if attack == "socket":
            import socket
            socket.create_connection(("127.0.0.1", int(context.request.query["port"])), 2)
        if attack == "subprocess":
            import subprocess
            subprocess.run(["/bin/sh", "-c", "id"])
        if attack == "system":
            os.system("id")
        if attack == "ctypes":
            import ctypes
        if attack == "environ":
            return dict(os.environ)
        if attack == "host_files":
            return open("/proc/self/environ").read()
        if attack == "traversal":
            return open("/code/../../../etc/hostname").read()
        if attack == "forge":
            # a raw host call on stdout, naming another tenant and another request, and
            # its answer read straight from stdin
            import json, struct
            frame = json.dumps({"type": "hostcall", "id": "req_someone_else", "call": 10**9,
                                "op": "kv.get", "args": {"key": "secret", "tenant": "tenanta"}})
            os.write(1, struct.pack(">I", len(frame)) + frame.encode())
            size = struct.unpack(">I", os.read(0, 4))[0]
            return {"refused": None, "answer": json.loads(os.read(0, size))}
    except BaseException as exc:
        return {"refused": type(exc).__name__, "message": str(exc)}
    return {"refused": None}
"""


@pytest.fixture(scope="module")
def attacks(agent: RunningAgent) -> str:
    deploy(agent, "attacks", ATTACKS)
    return "attacks"


@pytest.mark.parametrize(
    ("attack", "refused"),
    [
        ("passwd", "FileNotFoundError"),
        ("host_files", "FileNotFoundError"),
        ("traversal", "PermissionError"),
        ("write_code", "PermissionError"),
        ("subprocess", "OSError"),
        ("system", "AttributeError"),
        ("ctypes", "ModuleNotFoundError"),
    ],
)
def test_escape_attempts_fail(agent: RunningAgent, attacks: str, attack: str, refused: str) -> None:
    assert value(agent, attacks, attack=attack)["refused"] == refused


def test_forged_host_calls_stay_in_the_callers_tenant(agent: RunningAgent, attacks: str) -> None:
    agent.deploy("writer", "def main(context):\n    context.kv.set('secret', 'tenant-a-data')\n",
                  tenant="tenanta")
    assert agent.invoke("writer", tenant="tenanta").status_code == 200
    answer = value(agent, attacks, attack="forge")["answer"]
    assert answer["type"] == "hostcall_result" and answer["call"] == 10**9
    assert "tenant-a-data" not in json.dumps(answer), answer


def test_no_socket_reaches_a_listener(agent: RunningAgent, attacks: str) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.5)
        port = str(listener.getsockname()[1])
        # WASI has no socket to open: the stdlib fails before any connection is tried
        assert value(agent, attacks, attack="socket", port=port)["refused"] in ("OSError", "AttributeError")
        with pytest.raises(TimeoutError):
            listener.accept()


def test_the_guest_sees_only_its_preopens_and_its_own_environment(agent: RunningAgent, attacks: str) -> None:
    # there is no root to list: only the preopened folders exist
    assert value(agent, attacks, attack="listing")["refused"] == "FileNotFoundError"
    assert value(agent, attacks, attack="code_listing") == ["functions"]
    environ = value(agent, attacks, attack="environ")
    assert not any("CHANNEL" in key or "TOKEN" in key for key in environ), environ
    assert environ.get("HYAC_CODE_DIR") == "/code"


def test_an_infinite_loop_is_stopped_at_its_timeout(agent: RunningAgent) -> None:
    deploy(agent, "spin", "def main(context):\n    while True:\n        pass\n", timeout=2)
    response = agent.invoke("spin")
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "timeout"
    # the next request gets a fresh worker and is served
    deploy(agent, "spin", "def main(context):\n    return 'calm'\n", timeout=2)
    assert call(agent, "spin")["ok"]


def test_a_memory_bomb_hits_the_engine_limit(agent: RunningAgent) -> None:
    bomb = "def main(context):\n    hoard = []\n    while True:\n        hoard.append(bytearray(8 << 20))\n"
    # twice: the first version gets a worker started for it, the next one the pool's turn
    for version in (1, 2):
        deploy(agent, "bomb", f"{bomb}# v{version}\n", memory=192 << 20)
        response = agent.invoke("bomb")
        assert response.status_code == 502, response.text
        error = response.json()["error"]
        assert error["code"] == "out_of_memory"
        # the guest's own MemoryError (its memory could not grow), not the sandbox killing
        # the worker: the engine's cap follows the function's memory, below the sandbox's
        assert "(MemoryError)" in error["message"], error
    # the worker survives its guest's MemoryError and serves on
    deploy(agent, "bomb", "def main(context):\n    return len(bytearray(16 << 20))\n", memory=192 << 20)
    assert value(agent, "bomb") == 16 << 20


def test_under_rlimits_the_guest_gets_its_memory(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Without cgroups (HYAC_CGROUPS=off: as where they are read-only, e.g. a container)
    the worker host runs under rlimits, whose address-space cap the engine's threads must
    not fill with reservations: the guest gets the memory its cap allows, and a bomb is
    still its own MemoryError."""
    reason = _missing()
    if reason:
        pytest.skip(f"PYTHON3.12-WASM NOT TESTED: {reason}")
    data_dir = tmp_path_factory.mktemp("wasm-rlimits") / "data"
    env = {key: value for key, value in os.environ.items() if not key.startswith("HYAC_")}
    env.update(HYAC_DATA_DIR=str(data_dir), HYAC_CGROUPS="off")
    running = start_agent(data_dir, "--sandbox", "bwrap", env=env)
    try:
        deploy(running, "big", "def main(context):\n    return len(bytearray(48 << 20))\n",
               memory=192 << 20)
        assert value(running, "big") == 48 << 20
        bomb = "def main(context):\n    hoard = []\n    while True:\n        hoard.append(bytearray(8 << 20))\n"
        deploy(running, "big", bomb, memory=192 << 20)
        response = running.invoke("big")
        assert response.status_code == 502, response.text
        assert "(MemoryError)" in response.json()["error"]["message"], response.text
    finally:
        running.kill(signal.SIGTERM)


def test_runtime_is_listed(agent: RunningAgent) -> None:
    with agent.client() as client:
        rows = client.get("/v1/runtimes").json()
    row = next(r for r in (rows if isinstance(rows, list) else rows["runtimes"]) if r["name"] == WASM)
    assert row["available"] is True, row


@pytest.mark.network
def test_pure_python_requirements_install_and_native_ones_are_refused(agent: RunningAgent) -> None:
    reason = _pypi_unreachable()
    if reason:
        pytest.skip(reason)
    six = "import six\n\ndef main(context):\n    return {'six': six.__version__}\n"
    deploy(agent, "sixer", six, requirements=["six==1.16.0"])
    assert value(agent, "sixer") == {"six": "1.16.0"}
    entry = "functions/native.py"
    body = {"entry": entry, "files_b64": {entry: base64.b64encode(b"def main(c): pass\n").decode()},
            "config": {"runtime": WASM, "requirements": ["markupsafe==2.1.5"]}}
    with agent.client() as client:
        response = client.put("/v1/functions/native", json=body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "dependency_refused"
        assert error["message"].startswith("MarkupSafe has native code"), error
        assert "\n" not in error["message"]
        assert client.get("/v1/functions/native").status_code == 404


def test_doctor_shows_the_runtime() -> None:
    if _missing():
        pytest.skip(f"PYTHON3.12-WASM NOT TESTED: {_missing()}")
    out = subprocess.run([sys.executable, "-m", "hyac_agent", "doctor"], capture_output=True,
                         text=True, timeout=120)
    assert WASM in out.stdout + out.stderr, out.stdout + out.stderr
