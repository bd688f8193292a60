"""A hostile function against the log and the secrets: forged log frames on its own
channel, secrets leaking through errors and through a rotation, one tenant's flood
against another's history. Each attack runs on a real agent with a real sandbox (both
backends where the sandbox matters); each test proves the attack ran, then that it
gained nothing, then that the victim is still served."""

from __future__ import annotations

import base64
import json
import os
import signal
from collections.abc import Iterator

import pytest

from tests.conftest import start_agent
from tests.sandbox.conftest import BACKENDS, backend_missing
from tests.tenancy.conftest import Platform, agent_env, body

MiB = 1024 * 1024
#: the agent's own budget per request (hyac_agent.logframes), and what a line may add
LOG_BUDGET = MiB
SLACK = 64 * 1024


def _start(factory: pytest.TempPathFactory, backend: str, **env: str) -> Platform:
    reason = backend_missing(backend)
    if reason:
        pytest.skip(f"SANDBOX BACKEND {backend!r} NOT TESTED: {reason}")
    data = factory.mktemp(f"logs-{backend}") / "data"
    running = start_agent(data, "--sandbox", backend, env={**agent_env(), **env})
    return Platform(running)


@pytest.fixture(scope="module", params=BACKENDS)
def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Platform]:
    started = _start(tmp_path_factory, request.param)
    yield started
    started.agent.kill(signal.SIGTERM)


def logs(platform: Platform, tenant: str, function: str | None = None) -> list[dict]:
    params: dict[str, object] = {"limit": 10_000}
    if function:
        params["function"] = function
    with platform.owner(tenant) as client:
        answer = client.get("/v1/logs", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def stored_bytes(records: list[dict]) -> int:
    return sum(len(r["message"]) + len(r["stream"]) + len(r["level"] or "")
               + len(r["request_id"] or "") for r in records)


# 1. forged log frames ---------------------------------------------------------------

FORGER = """
import json, struct, sys

def frame(message):
    data = json.dumps(message).encode()
    return struct.pack(">I", len(data)) + data

def main(context):
    victim = context.request.json()["victim"]
    own = context.function.request_id
    channel = sys.stdout._channel          # the bootstrap's own socket to the agent
    huge = "L" * (300 * 1024)
    frames = []
    for n in range(40):                    # other requests' ids, a victim's among them
        forged = [victim, "req_" + "%016x" % n, "x" * 5000][n % 3]
        frames.append(frame({"type": "log", "id": forged, "stream": huge, "level": huge,
                             "message": "FORGED " + huge, "extra": huge}))
    for bad in (7, ["req"], {"id": own}):  # ids that are not strings
        frames.append(frame({"type": "log", "id": bad, "message": "FORGED-TYPE"}))
    for n in range(20):                    # its own id, every field huge
        frames.append(frame({"type": "log", "id": own, "stream": huge, "level": huge,
                             "message": "OWN " + huge, "extra": huge}))
    empty = frame({"type": "log", "id": own, "stream": "stdout", "message": ""})
    frames.extend([empty] * 60000)         # a flood of empty lines
    written = 0
    with channel._send_lock:
        for data in frames:
            channel._sock.sendall(data)
            written += len(data)
    return {"written": written, "own": own}
"""

VICTIM = """
def main(context):
    print("victim line", context.request.query.get("n", "0"))
    context.logger.info("victim logger line")
    return "ok"
"""


def test_forged_log_frames_are_held_to_the_requests_budget(platform: Platform) -> None:
    platform.tenant("logforger")
    platform.tenant("logvictim")
    assert platform.deploy("victim", VICTIM, "logvictim").status_code == 201
    first = platform.invoke("victim", "logvictim", query={"n": "1"})
    assert body(first) == b'ok'
    victim_id = first.json()["request_id"]
    victim_before = logs(platform, "logvictim")

    assert platform.deploy("forge", FORGER, "logforger", timeout=60).status_code == 201
    payload = base64.b64encode(json.dumps({"victim": victim_id}).encode()).decode()
    seen = json.loads(body(platform.invoke("forge", "logforger", body_b64=payload)))
    # The attack ran: far more than the budget went down the channel.
    assert seen["written"] > 20 * MiB, seen

    records = logs(platform, "logforger")
    assert len(records) < 10_000  # all of them are in view
    function_lines = [r for r in records if r["stream"] != "system"]
    assert any(r["message"].startswith("OWN ") for r in function_lines)
    assert stored_bytes(function_lines) <= LOG_BUDGET + SLACK, stored_bytes(function_lines)
    # A stored line costs its overhead too: the empty flood stops near budget / overhead.
    assert len(function_lines) <= LOG_BUDGET // 128 + 1
    assert {r["request_id"] for r in records} <= {seen["own"], None}
    assert not any("FORGED" in r["message"] for r in records)
    assert {r["stream"] for r in records} <= {"stdout", "stderr", "logger", "system"}
    assert {r["level"] for r in records} <= {None, "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    system = [r["message"] for r in records if r["stream"] == "system"]
    assert any("not serving" in line for line in system), system
    assert any("output_too_large" in line for line in system), system

    # The victim's history is untouched, and it is still served.
    victim_after = logs(platform, "logvictim")
    assert victim_after == victim_before
    assert body(platform.invoke("victim", "logvictim", query={"n": "2"})) == b'ok'
    assert any(r["message"] == "victim line 2" for r in logs(platform, "logvictim"))
