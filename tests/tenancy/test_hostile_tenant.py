"""A hostile tenant against the agent's shared resources: its threads, its SQLite
statements, its storage quota. Each attack is made through a real agent; each test shows
that another tenant (or the quota) is unharmed."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import start_agent
from tests.tenancy.conftest import Platform, agent_env, body

SMTP_TIMEOUT = 2


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A bwrap agent whose SMTP server takes connections and never answers, and whose
    tenant statements may run one second."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    env = {**agent_env(), "HYAC_SMTP_URL": f"smtp://127.0.0.1:{silent.getsockname()[1]}",
           "HYAC_MAIL_FROM": "noreply@example.com", "HYAC_SMTP_TIMEOUT": str(SMTP_TIMEOUT),
           "HYAC_TENANT_DB_STATEMENT_TIMEOUT": "1"}
    agent = start_agent(tmp_path_factory.mktemp("hostile") / "data", "--sandbox", "bwrap", env=env)
    try:
        yield Platform(agent)
    finally:
        agent.kill(signal.SIGTERM)
        silent.close()


RUNAWAY = """
def main(context):
    try:
        context.db.fetchall("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                            "SELECT count(*) FROM c")
    except Exception as exc:
        return {"code": getattr(exc, "code", None), "message": str(exc)}
    return {"code": None}
"""


def test_a_runaway_sqlite_statement_is_cancelled(platform: Platform) -> None:
    platform.tenant("runaway")
    assert platform.deploy("spin", RUNAWAY, "runaway", timeout=8).status_code == 201
    started = time.monotonic()
    seen = json.loads(body(platform.invoke("spin", "runaway")))
    assert seen["code"] == "db_error", seen
    assert "cancelled" in seen["message"], seen
    assert time.monotonic() - started < 10


FLOOD = """
import asyncio

async def main(context):
    sends = [context.mail.asend("victim@example.com", "s", text="t") for _ in range(int(context.request.query["n"]))]
    results = await asyncio.gather(*sends, return_exceptions=True)
    return sorted({getattr(r, "code", "sent") for r in results})
"""

KV = """
def main(context):
    context.kv.set("k", context.request.query.get("v", "x"))
    return context.kv.get("k")
"""


def test_slow_mail_of_one_tenant_does_not_stall_another(platform: Platform) -> None:
    platform.tenant("flooder")
    platform.tenant("bystander")
    assert platform.deploy("flood", FLOOD, "flooder", timeout=60).status_code == 201
    assert platform.deploy("kv", KV, "bystander").status_code == 201
    assert body(platform.invoke("kv", "bystander", query={"v": "warm"})) == b"warm"
    flood: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: flood.update(
        answer=platform.invoke("flood", "flooder", query={"n": "8"})))
    thread.start()
    try:
        time.sleep(0.5)  # the sends are waiting on the silent server
        started = time.monotonic()
        assert body(platform.invoke("kv", "bystander", query={"v": "served"})) == b"served"
        waited = time.monotonic() - started
    finally:
        thread.join(timeout=120)
    assert waited < SMTP_TIMEOUT / 4, f"another tenant's kv call waited {waited:.1f} s"
    assert json.loads(body(flood["answer"])) == ["mail_failed"]


RACE = """
import asyncio

async def main(context):
    puts = [context.storage.aput(f"o{i}", bytes(300_000)) for i in range(40)]
    results = await asyncio.gather(*puts, return_exceptions=True)
    return sorted(getattr(r, "code", "stored") for r in results)
"""


def test_concurrent_puts_cannot_pass_the_storage_quota(platform: Platform) -> None:
    platform.tenant("racer")
    limit = 1_000_000
    with platform.owner("racer") as client:
        assert client.put("/v1/quotas", json={"values": {"storage": limit}}).status_code == 200
    assert platform.deploy("race", RACE, "racer").status_code == 201
    outcomes = json.loads(body(platform.invoke("race", "racer")))
    with platform.owner("racer") as client:
        listed = client.get("/v1/storage").json()
    stored = sum(len(o["key"]) + o["size"] for o in listed)
    assert stored <= limit, f"{len(listed)} objects, {stored} bytes past a quota of {limit}"
    assert outcomes == ["quota_exceeded"] * 37 + ["stored"] * 3


HOG = """
import asyncio

async def main(context):
    spins = [context.db.afetchall("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                                  "SELECT count(*) FROM c") for _ in range(int(context.request.query["n"]))]
    results = await asyncio.gather(*spins, return_exceptions=True)
    return sorted({getattr(r, "code", "done") for r in results})
"""


def test_slow_statements_of_one_tenant_do_not_stall_another(platform: Platform) -> None:
    """Each statement holds an agent thread until it is cancelled (1 s here): a tenant
    gets only so many at once, so another tenant's host calls still find one."""
    platform.tenant("hog")
    platform.tenant("neighbour")
    assert platform.deploy("hog", HOG, "hog", timeout=60).status_code == 201
    assert platform.deploy("kv", KV, "neighbour").status_code == 201
    assert body(platform.invoke("kv", "neighbour", query={"v": "warm"})) == b"warm"
    hogging: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: hogging.update(
        answer=platform.invoke("hog", "hog", query={"n": "24"})))
    thread.start()
    try:
        time.sleep(0.3)  # the statements are spinning
        started = time.monotonic()
        assert body(platform.invoke("kv", "neighbour", query={"v": "served"})) == b"served"
        waited = time.monotonic() - started
    finally:
        thread.join(timeout=120)
    assert waited < 0.5, f"another tenant's kv call waited {waited:.1f} s"
    assert json.loads(body(hogging["answer"])) == ["db_error"]


KV_RACE = """
import asyncio

async def main(context):
    sets = [context.kv.aset(f"k{i}", "x" * 30_000) for i in range(40)]
    results = await asyncio.gather(*sets, return_exceptions=True)
    return sorted(getattr(r, "code", "stored") for r in results)
"""


def test_concurrent_kv_sets_cannot_pass_the_storage_quota(platform: Platform) -> None:
    platform.tenant("kv-racer")
    limit = 100_000
    with platform.owner("kv-racer") as client:
        assert client.put("/v1/quotas", json={"values": {"storage": limit}}).status_code == 200
    assert platform.deploy("kvrace", KV_RACE, "kv-racer").status_code == 201
    outcomes = json.loads(body(platform.invoke("kvrace", "kv-racer")))
    with platform.owner("kv-racer") as client:
        use = client.get("/v1/quotas").json()["quotas"]["storage"]["use"]
    assert use <= limit, f"{use} bytes stored past a quota of {limit}"
    assert outcomes == ["quota_exceeded"] * 37 + ["stored"] * 3
