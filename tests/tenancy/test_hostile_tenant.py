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
from tests.waiting import eventually

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
    seen = json.loads(body(platform.invoke("spin", "runaway")))  # not the 8 s timeout's 504
    assert seen["code"] == "db_error", seen
    assert "cancelled" in seen["message"], seen


# Says "started" before its host calls and "ended" as each one ends.
FLOOD = """
import asyncio

async def send(context):
    try:
        await context.mail.asend("victim@example.com", "s", text="t")
        return "sent"
    except Exception as exc:
        return getattr(exc, "code", "error")
    finally:
        print("ended", flush=True)

async def main(context):
    print("started", flush=True)
    results = await asyncio.gather(*[send(context) for _ in range(int(context.request.query["n"]))])
    return sorted(set(results))
"""

KV = """
def main(context):
    context.kv.set("k", context.request.query.get("v", "x"))
    return context.kv.get("k")
"""


def served_while_busy(platform: Platform, busy: tuple[str, str, int], other: str) -> httpx.Response:
    """Run ``busy`` (tenant, function, n: a function that says "started" and then "ended"
    as each of its n slow host calls ends) and, once it has started, the kv function of
    tenant ``other``: that call is answered before the first slow one ends."""
    tenant, function, n = busy
    answers: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: answers.update(
        busy=platform.invoke(function, tenant, query={"n": str(n)})))

    def lines() -> list[dict]:
        with platform.owner(tenant) as client:
            return client.get("/v1/logs", params={"function": function}).json()  # type: ignore[no-any-return]

    thread.start()
    try:
        eventually(lambda: any(line["message"] == "started" for line in lines()))
        assert body(platform.invoke("kv", other, query={"v": "served"})) == b"served"
        served = time.time()  # the agent stamps log lines with the same clock
    finally:
        thread.join(timeout=120)
    ended = eventually(lambda: len(found := [
        line["ts"] for line in lines() if line["message"] == "ended"]) == n and found)
    assert served < min(ended), f"{other}'s kv call was answered after one of {tenant}'s calls ended"
    return answers["busy"]


def test_slow_mail_of_one_tenant_does_not_stall_another(platform: Platform) -> None:
    platform.tenant("flooder")
    platform.tenant("bystander")
    assert platform.deploy("flood", FLOOD, "flooder", timeout=60).status_code == 201
    assert platform.deploy("kv", KV, "bystander").status_code == 201
    assert body(platform.invoke("kv", "bystander", query={"v": "warm"})) == b"warm"
    flood = served_while_busy(platform, ("flooder", "flood", 8), "bystander")
    assert json.loads(body(flood)) == ["mail_failed"]


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


# Says "started" before its statements and "ended" as each one ends.
HOG = """
import asyncio

async def spin(context):
    try:
        await context.db.afetchall("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                                   "SELECT count(*) FROM c")
        return "done"
    except Exception as exc:
        return getattr(exc, "code", "error")
    finally:
        print("ended", flush=True)

async def main(context):
    print("started", flush=True)
    results = await asyncio.gather(*[spin(context) for _ in range(int(context.request.query["n"]))])
    return sorted(set(results))
"""


def test_slow_statements_of_one_tenant_do_not_stall_another(platform: Platform) -> None:
    """Each statement holds an agent thread until it is cancelled (1 s here): a tenant
    gets only so many at once, so another tenant's host calls still find one. The hog
    sends more statements than the agent has threads (HYAC_AGENT_THREADS, 32)."""
    platform.tenant("hog")
    platform.tenant("neighbour")
    assert platform.deploy("hog", HOG, "hog", timeout=60).status_code == 201
    assert platform.deploy("kv", KV, "neighbour").status_code == 201
    assert body(platform.invoke("kv", "neighbour", query={"v": "warm"})) == b"warm"
    hogging = served_while_busy(platform, ("hog", "hog", 40), "neighbour")
    assert json.loads(body(hogging)) == ["db_error"]


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
