"""Each quota enforced where it is used, with a JSON error naming it; counters survive
a restart; the audit log records every change and only admins and the owner read it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from tests.in_process import ManualClock, in_process_agent
from tests.tenancy.conftest import Platform, body
from tests.waiting import eventually

QUICK = "def main(context):\n    return 1\n"


def quota(platform: Platform, tenant: str, **values: object) -> None:
    with platform.owner(tenant) as owner:
        answer = owner.put("/v1/quotas", json={"values": values})
        assert answer.status_code == 200, answer.text


def error_of(answer) -> dict:  # type: ignore[no-untyped-def]
    return answer.json()["error"]


def test_deploy_quotas(platform: Platform) -> None:
    platform.tenant("q-deploy")
    quota(platform, "q-deploy", functions=1, timeout="20s", memory="128Mi")
    assert platform.deploy("one", QUICK, "q-deploy", timeout=10).status_code == 201
    too_many = platform.deploy("two", QUICK, "q-deploy", timeout=10)
    assert too_many.status_code == 403
    assert error_of(too_many) | {"message": ""} == {
        "code": "quota_exceeded", "message": "", "quota": "functions", "limit": 1, "use": 1}
    slow = platform.deploy("one", QUICK, "q-deploy", timeout=60)
    assert slow.status_code == 403 and error_of(slow)["quota"] == "timeout"
    big = platform.deploy("one", QUICK, "q-deploy", timeout=10, memory=512 * 1024 * 1024)
    assert big.status_code == 403 and error_of(big)["quota"] == "memory"
    assert platform.deploy("one", QUICK + "# v2\n", "q-deploy", timeout=10).status_code == 201


def test_sandbox_limits_follow_cpu_and_memory_quotas(platform: Platform) -> None:
    platform.tenant("q-limits")
    quota(platform, "q-limits", memory="64Mi", cpu=0.5)
    hog = ("def main(context):\n    data = bytearray(200 * 1024 * 1024)\n"
           "    data[::4096] = b'x' * len(data[::4096])\n    return len(data)\n")
    assert platform.deploy("hog", hog, "q-limits").status_code == 201
    answer = platform.invoke("hog", "q-limits")
    assert answer.status_code == 502 or not answer.json().get("ok"), answer.text


def test_rate_quotas_are_429_and_survive_a_restart(tmp_path: Path) -> None:
    """The agent's clock is driven: the minute window rolls when the test says, never
    between two of its requests."""
    clock = ManualClock(1_800_000_010.0)  # 10 s into a minute
    with in_process_agent(tmp_path / "data", clock) as agent:
        platform = Platform(agent)
        platform.tenant("q-rate")
        quota(platform, "q-rate", executions_per_minute=2, executions_per_day=100)
        assert platform.deploy("quick", QUICK, "q-rate").status_code == 201
        body(platform.invoke("quick", "q-rate"))
        body(platform.invoke("quick", "q-rate"))
        clock.now += 45  # the same minute
        third = platform.invoke("quick", "q-rate")
        assert third.status_code == 429
        assert error_of(third)["quota"] == "executions_per_minute"
        assert error_of(third)["limit"] == 2 and error_of(third)["use"] == 2
        with agent.http(None, "q-rate") as anyone:  # the gateway counts the same
            assert anyone.post("/q-rate/quick").status_code == 429
        with platform.owner("q-rate") as owner:
            shown = owner.get("/v1/quotas").json()["quotas"]
        assert shown["executions_per_day"]["use"] == 2 and shown["functions"]["use"] == 1
    # a restart in the same minute: the counters were stored
    with in_process_agent(tmp_path / "data", clock) as again:
        platform = Platform(again)
        answer = platform.invoke("quick", "q-rate")
        assert answer.status_code == 429 and error_of(answer)["use"] == 2
        clock.now += 60  # the next minute; the same day
        body(platform.invoke("quick", "q-rate"))
        with platform.owner("q-rate") as owner:
            shown = owner.get("/v1/quotas").json()["quotas"]
        assert shown["executions_per_minute"]["use"] == 1
        assert shown["executions_per_day"]["use"] == 3


# With ?hold=KEY: says it started (object KEY.started) and runs until object KEY exists.
HELD = """
import time
def main(context):
    key = context.request.query.get("hold")
    if key:
        context.storage.put(key + ".started", b"")
        while context.storage.get(key) is None:
            time.sleep(0.05)
    return 1
"""


def test_concurrency_quota(platform: Platform) -> None:
    platform.tenant("q-conc")
    quota(platform, "q-conc", concurrency=1)
    assert platform.deploy("held", HELD, "q-conc", timeout=120).status_code == 201
    body(platform.invoke("held", "q-conc"))  # warm
    first = threading.Thread(target=platform.invoke, args=("held", "q-conc"),
                             kwargs={"query": {"hold": "go"}})
    first.start()
    with platform.owner("q-conc") as owner:
        try:
            eventually(lambda: owner.head("/v1/storage/go.started").status_code == 200)
            second = platform.invoke("held", "q-conc")  # while the first is running
        finally:
            assert owner.put("/v1/storage/go", content=b"").status_code == 200
    first.join()
    assert second.status_code == 429 and error_of(second)["quota"] == "concurrency"


def test_storage_quota(platform: Platform) -> None:
    platform.tenant("q-store")
    fill = '''
from hyac_context import HostCallError
def main(context):
    try:
        for i in range(100):
            context.kv.set(f"k{i}", "x" * 1000)
    except HostCallError as exc:
        return {"stopped_at": i, "code": exc.code, "message": exc.message}
    return {"stopped_at": None}
'''
    quota(platform, "q-store", storage="20k")
    assert platform.deploy("fill", fill, "q-store").status_code == 201
    result = json.loads(body(platform.invoke("fill", "q-store")))
    assert result["code"] == "quota_exceeded" and 10 <= result["stopped_at"] <= 21
    assert "storage" in result["message"]
    with platform.owner("q-store") as owner:
        shown = owner.get("/v1/quotas").json()["quotas"]["storage"]
    assert shown["limit"] == 20_000 and shown["use"] <= 20_000


def test_audit_log(platform: Platform) -> None:
    platform.tenant("audited")
    admin = platform.user("aud-admin", "audited", "admin")
    dev = platform.user("aud-dev", "audited", "developer")
    platform.deploy("thing", QUICK, "audited", dev)
    with platform.http(dev, "audited") as client:
        client.put("/v1/secrets/TOKEN", json={"value": "abcdef"})
        client.delete("/v1/functions/thing")
        assert client.get("/v1/audit").status_code == 403
    with platform.http(admin, "audited") as client:
        client.put("/v1/quotas", json={"values": {"functions": 1000}})
        records = client.get("/v1/audit").json()
        assert client.get("/v1/audit", params={"all": "1"}).status_code == 403
    actions = [(r["actor"], r["action"], r["target"], r["result"]) for r in records]
    assert ("aud-dev", "deploy", "thing", 201) in actions
    assert ("aud-dev", "secret.set", "TOKEN", 204) in actions
    assert ("aud-dev", "rm", "thing", 200) in actions
    assert ("aud-admin", "quota.set", None, 200) in actions
    assert ("owner", "user.set", "aud-dev", 200) in actions
    assert all(r["tenant"] == "audited" and r["client"] == "127.0.0.1" for r in records)
    assert "abcdef" not in json.dumps(records)
    with platform.owner() as owner:
        everything = owner.get("/v1/audit", params={"all": "1"}).json()
    assert any(r["action"] == "tenant.create" and r["target"] == "audited" for r in everything)
