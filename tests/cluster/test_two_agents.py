"""Two agents on one PostgreSQL, each with its own data dir (no shared files but the
secrets key): any agent runs any version, and what one changes is in force on the other.

Skipped, with the reason, when PostgreSQL is unreachable or bubblewrap is missing (CI has
both)."""

from __future__ import annotations

import base64
import functools
import shutil
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.cluster.helpers import postgres_database, shared_keys
from tests.conftest import RunningAgent, start_agent
from tests.waiting import eventually

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap is not installed (apt-get install bubblewrap)"
)


@dataclass
class Pair:
    a: RunningAgent
    b: RunningAgent
    database: str


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    for database in postgres_database():
        home = tmp_path_factory.mktemp("cluster")
        env = {"HYAC_DATABASE_URL": database, "HYAC_CONFIG_DIR": str(home / "config")}
        dirs = [home / "a" / "data", home / "b" / "data"]
        shared_keys(*dirs)
        with ThreadPoolExecutor(2) as starting:  # two hosts boot at once
            started = [starting.submit(start_agent, d, "--sandbox", "bwrap", env=env) for d in dirs]
        a, b = (future.result() for future in started)
        try:
            yield Pair(a, b, database)
        finally:
            a.kill(signal.SIGTERM)
            b.kill(signal.SIGTERM)


def body(response: object) -> str:
    data = response.json()  # type: ignore[attr-defined]
    assert data.get("ok"), data
    return base64.b64decode(data["body_b64"]).decode()


def serves(agent: RunningAgent, name: str, expected: str) -> bool:
    response = agent.invoke(name)
    return response.status_code == 200 and body(response) == expected


def test_a_version_deployed_on_one_agent_runs_on_the_other(pair: Pair) -> None:
    pair.a.deploy("hop", "def main(context):\n    return 'v1'\n")
    assert not (pair.b.data_dir / "bundles").exists() or not any(
        (pair.b.data_dir / "bundles").iterdir()
    ), "B must not have had the bundle before it ran it"
    assert body(pair.b.invoke("hop")) == "v1"

    pair.a.deploy("hop", "def main(context):\n    return 'v2'\n")
    eventually(lambda: serves(pair.b, "hop", "v2"), timeout=30)

    with pair.a.client() as client:
        assert client.post("/v1/functions/hop/rollback", json={"version": 1}).status_code == 200
    eventually(lambda: serves(pair.b, "hop", "v1"), timeout=30)
    with pair.b.client() as client:
        assert client.post("/v1/functions/hop/rollback", json={"version": 2}).status_code == 200
    eventually(lambda: serves(pair.a, "hop", "v2"), timeout=30)

    with pair.a.client() as client:
        assert client.delete("/v1/functions/hop").status_code in (200, 204)
    eventually(lambda: pair.b.invoke("hop").status_code == 404, timeout=30)


def test_env_set_on_one_agent_reaches_the_warm_workers_of_the_other(pair: Pair) -> None:
    pair.a.deploy("region", "import os\ndef main(context):\n    return context.env.get('REGION', '-')\n")
    eventually(lambda: serves(pair.b, "region", "-"), timeout=30)  # B has a warm worker now
    with pair.a.client() as client:
        assert client.put("/v1/env", json={"values": {"REGION": "eu"}}).status_code < 300
    eventually(lambda: serves(pair.b, "region", "eu"), timeout=30)


def test_a_secret_changed_on_one_agent_is_what_the_other_runs_with(pair: Pair) -> None:
    pair.a.deploy("key", "def main(context):\n    return context.secrets.get('API_KEY', '-')\n")
    for value in ("first", "second"):
        with pair.a.client() as client:
            response = client.put("/v1/secrets/API_KEY", json={"value": value})
        assert response.status_code == 204, response.text
        eventually(functools.partial(serves, pair.b, "key", value), timeout=30)


def test_a_missing_bundle_names_no_internal_path(pair: Pair) -> None:
    from sqlalchemy import create_engine, text

    pair.a.deploy("lost", "def main(context):\n    return 'here'\n")
    sha = pair.a.invoke("lost").json()
    assert sha["ok"]
    engine = create_engine(pair.database)
    with engine.begin() as conn:
        digest = conn.execute(text(
            "SELECT v.sha256 FROM versions v JOIN functions f ON f.id = v.function_id "
            "WHERE f.name = 'lost'"
        )).scalar_one()
        conn.execute(text("DELETE FROM blobs WHERE sha256 = :s"), {"s": digest})
    engine.dispose()
    response = pair.b.invoke("lost")  # B never had it, and the store has lost it
    assert response.status_code == 500, response.text
    error = response.json()["error"]
    assert error["code"] == "function_load_error"
    assert "/code" not in response.text and str(pair.b.data_dir) not in response.text


def set_quotas(agent: RunningAgent, tenant: str, **values: object) -> None:
    with agent.client(tenant) as client:
        response = client.put("/v1/quotas", json={"values": values})
    assert response.status_code == 200, response.text


def test_rate_quota_holds_across_agents(pair: Pair) -> None:
    """Three executions a day for the tenant: three in all, not three on each agent."""
    with pair.a.client() as client:
        assert client.post("/v1/tenants", json={"name": "rated"}).status_code == 201
    set_quotas(pair.a, "rated", executions_per_day=3)
    pair.a.deploy("tick", "def main(context):\n    return 'ok'\n", tenant="rated")
    statuses = [agent.invoke("tick", tenant="rated").status_code
                for agent in (pair.a, pair.b) * 4]
    assert sorted(statuses) == [200] * 3 + [429] * 5, statuses
    refused = pair.b.invoke("tick", tenant="rated").json()["error"]
    assert refused["code"] == "quota_exceeded" and refused["quota"] == "executions_per_day"
    with pair.b.client("rated") as client:
        report = client.get("/v1/quotas").json()["quotas"]
    assert report["executions_per_day"]["use"] == 3


def test_concurrency_quota_holds_across_agents(pair: Pair) -> None:
    """One invocation at a time: one running on A makes B refuse a second, until the
    limit is raised (on B) and seen by both."""
    import threading

    with pair.a.client() as client:
        assert client.post("/v1/tenants", json={"name": "narrow"}).status_code == 201
    set_quotas(pair.a, "narrow", concurrency=1)
    pair.a.deploy("hold", """
import time
def main(context):
    while not context.kv.get("go"):
        time.sleep(0.05)
    return "released"
""", tenant="narrow")
    pair.a.deploy("ping", "def main(context):\n    return 'pong'\n", tenant="narrow")
    pair.a.deploy("free", "def main(context):\n    context.kv.set('go', True)\n    return 'set'\n",
                  tenant="narrow")
    held: list[object] = []
    runner = threading.Thread(target=lambda: held.append(pair.a.invoke("hold", tenant="narrow")))
    runner.start()
    try:
        def holding() -> bool:  # B sees the lease of the invocation running on A
            assert not held, f"hold ended early: {held[0].text}"  # type: ignore[attr-defined]
            with pair.b.client("narrow") as client:
                report = client.get("/v1/quotas").json()["quotas"]
            return report["concurrency"]["use"] == 1

        eventually(holding, timeout=60)
        refused = pair.b.invoke("ping", tenant="narrow")
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["quota"] == "concurrency"
        set_quotas(pair.b, "narrow", concurrency=2)
        eventually(lambda: pair.a.invoke("free", tenant="narrow").status_code == 200, timeout=30)
    finally:
        runner.join(timeout=60)
    assert body(held[0]) == "released"
