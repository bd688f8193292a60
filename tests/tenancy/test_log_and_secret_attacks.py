"""A hostile function against the log and the secrets: forged log frames on its own
channel, secrets leaking through errors and through a rotation, one tenant's flood
against another's history. Each attack runs on a real agent with a real sandbox (both
backends where the sandbox matters); each test proves the attack ran, then that it
gained nothing, then that the victim is still served."""

from __future__ import annotations

import base64
import json
import signal
from collections.abc import Iterator

import httpx
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
    for n in range(10):                    # no id: the worker outside any request
        frames.append(frame({"type": "log", "id": None, "message": "NONE " + huge}))
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
    own = [r for r in records if r["stream"] != "system" and r["request_id"] is not None]
    outside = [r for r in records if r["stream"] != "system" and r["request_id"] is None]
    assert any(r["message"].startswith("OWN ") for r in own)
    assert stored_bytes(own) <= LOG_BUDGET + SLACK, stored_bytes(own)
    # A stored line costs its overhead too: the empty flood stops near budget / overhead.
    assert len(own) <= LOG_BUDGET // 128 + 1
    # Lines outside any request share one budget for the worker's life.
    assert any(r["message"].startswith("NONE ") for r in outside)
    assert stored_bytes(outside) <= LOG_BUDGET + SLACK, stored_bytes(outside)
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


UNSTORABLE = """
import json, struct, sys

def frame(message):
    data = json.dumps(message).encode()    # ensure_ascii: "\\ud800" stays an escape
    return struct.pack(">I", len(data)) + data

def main(context):
    bad = "x" + chr(0xD800) + "y\\x00z"
    own = context.function.request_id
    channel = sys.stdout._channel
    with channel._send_lock:
        channel._sock.sendall(frame({"type": "log", "id": own, "stream": "stdout",
                                     "message": "FORGED " + bad}))
    print("PRINTED", bad)
    raise ValueError("RAISED " + bad)
"""


def test_text_no_store_keeps_neither_hangs_the_request_nor_loses_others_lines(
    platform: Platform,
) -> None:
    """A lone surrogate ("\\ud800" in a frame's JSON, or chr(0xD800) printed) has no UTF-8
    form and a NUL no place in PostgreSQL's text: one such line failed the log batch that
    held every tenant's lines of that moment, and one in an exception's message left the
    request unanswered until its timeout."""
    platform.tenant("unstorable")
    platform.tenant("bystander")
    assert platform.deploy("victim", VICTIM, "bystander").status_code == 201
    assert platform.deploy("bad", UNSTORABLE, "unstorable").status_code == 201
    for n in range(3):
        failed = platform.invoke("bad", "unstorable")
        assert failed.status_code == 200, failed.text  # answered at once, as a failure
        error = failed.json()["error"]
        assert error["type"] == "ValueError"
        assert error["message"] == "RAISED x\ufffdy\x00z"
        assert body(platform.invoke("victim", "bystander", query={"n": f"beside-{n}"})) == b"ok"
    with platform.http(None, "unstorable") as client:
        gateway = client.post("/unstorable/bad")
    assert gateway.status_code == 500 and gateway.json()["error"]["type"] == "ValueError"
    mine = [r["message"] for r in logs(platform, "unstorable", "bad")]
    assert mine.count("FORGED x\ufffdy\ufffdz") == 4 and mine.count("PRINTED x\ufffdy\ufffdz") == 4
    theirs = [r["message"] for r in logs(platform, "bystander", "victim")]
    for n in range(3):
        assert f"victim line beside-{n}" in theirs


# 2. secrets ---------------------------------------------------------------------------

OLD_VALUE = "old-secret-4f1c9a7e"
NEW_VALUE = "new-secret-b82d5e30"

HOLDER = """
held = {}

def main(context):
    if context.request.query.get("read") == "1":
        held["value"] = context.secrets["ROTATED"]
        return "read"
    value = held.get("value", "")
    print("held", value)
    context.logger.info("held %s", value)
    if context.request.query.get("raise") == "1":
        raise RuntimeError("held " + value)
    return "held %d chars" % len(value)
"""


def put_secret(platform: Platform, tenant: str, name: str, value: str) -> None:
    with platform.owner(tenant) as client:
        assert client.put(f"/v1/secrets/{name}", json={"value": value}).status_code == 204


def assert_never_logged(platform: Platform, tenant: str, *values: str) -> list[dict]:
    records = logs(platform, tenant)
    for value in values:
        assert not any(value in r["message"] for r in records), value
    return records


def test_a_warm_worker_holding_a_replaced_secret_is_still_redacted(platform: Platform) -> None:
    tenant = "rotation"
    platform.tenant(tenant)
    put_secret(platform, tenant, "ROTATED", OLD_VALUE)
    assert platform.deploy("holder", HOLDER, tenant).status_code == 201
    assert body(platform.invoke("holder", tenant, query={"read": "1"})) == b"read"

    put_secret(platform, tenant, "ROTATED", NEW_VALUE)  # the worker may still hold the old one
    # A secret change also retires the tenant's warm workers (the change feed tells every
    # agent); until that lands, the old worker serves on, old value in hand.
    held = body(platform.invoke("holder", tenant))
    assert held in (b"held %d chars" % len(OLD_VALUE), b"held 0 chars"), held
    if held != b"held 0 chars":
        # The attack ran: the warm worker printed the old value it holds.
        failed = platform.invoke("holder", tenant, query={"raise": "1"}).json()
        assert failed["ok"] is False
        assert OLD_VALUE not in json.dumps(failed)
        records = assert_never_logged(platform, tenant, OLD_VALUE)
        assert any(r["message"] == "held ***" for r in records)

    # The new value is redacted too, and a deleted one stays so while a worker holds it.
    assert body(platform.invoke("holder", tenant, query={"read": "1"})) == b"read"
    with platform.owner(tenant) as client:
        assert client.delete("/v1/secrets/ROTATED").status_code == 204
    held = body(platform.invoke("holder", tenant))
    assert held in (b"held %d chars" % len(NEW_VALUE), b"held 0 chars"), held
    assert_never_logged(platform, tenant, OLD_VALUE, NEW_VALUE)


RAISES = """
def main(context):
    key = context.secrets["API_KEY"]
    helper(key)

def helper(key):
    raise ValueError("upstream refused key " + key)
"""

BROKEN_IMPORT = """def load():
    raise ImportError("cannot configure with " + CONFIG_KEY)

CONFIG_KEY = "{secret}"
load()

def main(context):
    return "never"
"""

SECRET = "s3cr3t-value-9d27c1"


def test_function_errors_reach_the_gateway_redacted_and_without_traceback(
    platform: Platform,
) -> None:
    tenant = "errsecrets"
    platform.tenant(tenant)
    put_secret(platform, tenant, "API_KEY", SECRET)
    assert platform.deploy("raises", RAISES, tenant).status_code == 201
    assert platform.deploy("broken", BROKEN_IMPORT.format(secret=SECRET), tenant).status_code == 201

    with httpx.Client(base_url=platform.agent.url, timeout=60) as anonymous:
        runtime = anonymous.get(f"/{tenant}/raises")
        load = anonymous.get(f"/{tenant}/broken")
    for answer, code, kind in ((runtime, "function_error", "ValueError"),
                               (load, "function_load_error", "ImportError")):
        assert answer.status_code == 500, answer.text
        error = answer.json()["error"]
        assert set(error) == {"code", "type", "message", "request_id"}, error
        assert (error["code"], error["type"]) == (code, kind)
        assert error["request_id"] == answer.headers["X-Hyac-Request-Id"]
        assert SECRET not in answer.text and "Traceback" not in answer.text
        assert "functions/" not in answer.text and ".py" not in answer.text
    # The attack ran: the function's own message reached the gateway, secret redacted.
    assert runtime.json()["error"]["message"] == "upstream refused key ***"

    # The developer sees the traceback with their own files and lines, redacted.
    developer = platform.invoke("raises", tenant).json()
    assert developer["ok"] is False
    trace = developer["error"]["traceback"]
    assert 'File "functions/raises.py", line 4, in main' in trace
    assert 'File "functions/raises.py", line 7, in helper' in trace
    assert SECRET not in json.dumps(developer) and "***" in trace
    loading = platform.invoke("broken", tenant)
    assert loading.status_code == 500
    error = loading.json()["error"]
    assert error["code"] == "function_load_error" and error["type"] == "ImportError"
    assert 'File "functions/broken.py", line 5, in <module>' in error["traceback"]
    assert 'File "functions/broken.py", line 2, in load' in error["traceback"]
    assert SECRET not in loading.text and "***" in error["traceback"]
    assert_never_logged(platform, tenant, SECRET)


# 3. one tenant's flood against another's history -----------------------------------

RETAINED = 256 * 1024
FLOODER = """
def main(context):
    print("first line of flood", context.request.query["round"])
    line = "f" * 200
    for n in range(2400):
        print(line, n)
    print("last line of flood", context.request.query["round"])
    return "flooded"
"""
QUIET = """
def main(context):
    for n in range(50):
        print("quiet line", n)
    return "quiet"
"""


@pytest.fixture(scope="module")
def small_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """An agent keeping 256 KiB of log per tenant (the sandbox plays no part here)."""
    started = _start(tmp_path_factory, "bwrap", HYAC_LOG_RETENTION_BYTES=str(RETAINED))
    yield started
    started.agent.kill(signal.SIGTERM)


def test_a_tenants_log_flood_trims_only_its_own_history(small_log: Platform) -> None:
    small_log.tenant("quiet")
    small_log.tenant("flood")
    assert small_log.deploy("quiet", QUIET, "quiet").status_code == 201
    assert body(small_log.invoke("quiet", "quiet")) == b"quiet"
    quiet_before = [r["message"] for r in logs(small_log, "quiet")]
    assert quiet_before == [f"quiet line {n}" for n in range(50)]

    assert small_log.deploy("flood", FLOODER, "flood", timeout=60).status_code == 201
    for round_ in range(4):  # ~2.5 MiB of log against 256 KiB kept
        assert body(small_log.invoke("flood", "flood", query={"round": str(round_)})) == b"flooded"

    flood = [r for r in logs(small_log, "flood") if r["stream"] != "system"]
    messages = [r["message"] for r in flood]
    # The flood ran and was trimmed from its oldest end: its newest lines are there.
    assert messages[-1] == "last line of flood 3"
    assert "first line of flood 0" not in messages
    kept = sum(len(m) + 128 for m in messages)
    assert kept <= RETAINED + RETAINED // 8, kept
    # The quiet tenant's history is all there, and it is still served.
    assert [r["message"] for r in logs(small_log, "quiet")] == quiet_before
    assert body(small_log.invoke("quiet", "quiet")) == b"quiet"
