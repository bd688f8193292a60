"""Removing a tenant removes everything it owned: a tenant made again under the same name
starts empty, through the API and from inside its functions. Only the record of the
removal stays in the audit log."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from tests.in_process import in_process_agent
from tests.tenancy.conftest import Platform, body
from tests.tenancy.test_postgres_tenants import PgPlatform, pg  # noqa: F401 - the fixture
from tests.waiting import eventually

FILL = '''
def main(context):
    context.kv.set("k", {"secret": "of the first tenant"})
    context.storage.put("o.txt", b"object of the first tenant")
    context.db.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)")
    context.db.execute("INSERT INTO t VALUES ('row of the first tenant')")
    print("log line of the first tenant")
    return {"filled": True, "env": context.env.get("FIRST"), "secret": context.secrets.get("S")}
'''

LOOK = '''
from hyac_context import HostCallError
def main(context):
    try:
        rows = context.db.fetchall("SELECT v FROM t")
    except HostCallError as exc:
        rows = exc.code
    return {"kv": context.kv.get("k"), "objects": [o.key for o in context.storage.list()],
            "db": rows, "env": context.env.get("FIRST"), "secrets": sorted(context.secrets)}
'''


def api(client: Any, path: str, **params: Any) -> Any:
    answer = client.get(path, params=params)
    assert answer.status_code == 200, (path, answer.text)
    return answer.json()


def wait_task(client: Any, task_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        task = api(client, f"/v1/tasks/{task_id}")
        return dict(task) if task["status"] in ("succeeded", "dead", "cancelled") else None

    return eventually(ended)  # type: ignore[no-any-return]


def test_a_recreated_tenant_inherits_nothing(platform: Platform) -> None:
    check_recreated_tenant_inherits_nothing(platform)


def test_a_recreated_tenant_inherits_nothing_on_postgres(pg: PgPlatform) -> None:  # noqa: F811
    check_recreated_tenant_inherits_nothing(pg)


def check_recreated_tenant_inherits_nothing(platform: Platform) -> None:
    platform.tenant("heir")
    admin = platform.user("heir-admin", "heir", "admin")
    with platform.owner("heir") as owner:
        assert owner.put("/v1/secrets/S", json={"value": "s3cret-value"}).status_code == 204
        assert owner.put("/v1/env", json={"values": {"FIRST": "yes"}}).status_code in (200, 204)
        assert owner.put("/v1/quotas", json={"values": {"functions": 7}}).status_code == 200
        assert owner.put("/v1/storage/api.txt", content=b"api object").status_code in (200, 201)
    assert platform.deploy("fill", FILL, "heir", admin).status_code == 201
    filled = json.loads(body(platform.invoke("fill", "heir")))
    assert filled == {"filled": True, "env": "yes", "secret": "s3cret-value"}
    with platform.http(admin, "heir") as client:
        queued = client.post("/v1/functions/fill/invoke", params={"mode": "async"}, json={})
        assert queued.status_code == 202, queued.text
        task = wait_task(client, queued.json()["task_id"])
        assert task["status"] == "succeeded" and task["result"], task
        key = client.get("/v1/tasks/callback-key")
        old_key = key.json().get("key") if key.status_code == 200 else None
        # everything is there before the removal
        assert api(client, "/v1/logs", function="fill")
        assert len(api(client, "/v1/storage")) == 2
        assert api(client, "/v1/audit")
        assert api(client, "/v1/tasks")
    with platform.owner() as owner:
        assert owner.delete("/v1/tenants/heir").status_code == 204
    assert platform.invoke("fill", "heir", admin).status_code in (401, 403)
    platform.tenant("heir")  # made again under the same name
    with platform.owner("heir") as owner:
        assert api(owner, "/v1/functions") == []
        assert api(owner, "/v1/tasks") == []
        assert owner.get(f"/v1/tasks/{queued.json()['task_id']}").status_code == 404
        assert api(owner, "/v1/logs") == []
        assert api(owner, "/v1/storage") == []
        assert api(owner, "/v1/secrets") == []
        assert api(owner, "/v1/env") in ({}, {"env": {}}, [])
        assert api(owner, "/v1/users") == []
        quotas = api(owner, "/v1/quotas")["quotas"]
        assert quotas["functions"]["source"] != "tenant"
        assert quotas["executions_per_day"]["use"] == 0
        assert quotas["storage"]["use"] < 1_000_000  # an empty database at most
        assert [t for t in api(owner, "/v1/tokens") if t["tenant"] == "heir"] == []
        audit = api(owner, "/v1/audit")
        assert [r["action"] for r in audit] == ["tenant.rm", "tenant.create"], audit
        if old_key is not None:
            assert api(owner, "/v1/tasks/callback-key")["key"] != old_key
        assert platform.deploy("look", LOOK, "heir").status_code == 201
        seen = json.loads(body(platform.invoke("look", "heir")))
    assert seen == {"kv": None, "objects": [], "db": "db_error", "env": None, "secrets": []}
    assert "s3cret-value" not in json.dumps(audit)
    # the old admin's token does not reach the new tenant
    with platform.http(admin, "heir") as client:
        assert client.get("/v1/functions").status_code in (401, 403)


def test_counts_stored_while_a_tenant_is_removed_do_not_come_back(tmp_path: Path) -> None:
    """The agent stores its execution counts every second from a thread: a store in flight
    when a tenant is removed must not write that tenant's counts back after its rows are
    deleted (a tenant made again under the name would start with them)."""
    with in_process_agent(tmp_path / "data") as agent:
        platform = Platform(agent)
        platform.tenant("brief")
        quotas = agent.agent.tenancy.quotas
        stored, in_flight, release = quotas.store.add_usage, threading.Event(), threading.Event()

        def held(counts: dict[tuple[str, str], int]) -> None:
            if any(tenant == "brief" for tenant, _ in counts):
                in_flight.set()
                release.wait(30)
            stored(counts)

        quotas.store.add_usage = held  # type: ignore[method-assign]

        async def counted() -> None:
            async with quotas.execution("brief"):
                pass

        agent.run(counted())
        agent.run(counted())
        assert in_flight.wait(30), "the counts were never stored"
        removed: list[int] = []

        def remove() -> None:
            with platform.owner() as owner:
                removed.append(owner.delete("/v1/tenants/brief").status_code)

        removing = threading.Thread(target=remove)
        removing.start()
        removing.join(2)  # it waits for the store in flight (or, wrongly, not)
        release.set()
        removing.join(60)
        assert removed == [204]
    with in_process_agent(tmp_path / "data") as again:  # what is stored, read afresh
        platform = Platform(again)
        platform.tenant("brief")
        with platform.owner("brief") as owner:
            quotas_shown = api(owner, "/v1/quotas")["quotas"]
        assert quotas_shown["executions_per_day"]["use"] == 0
        assert quotas_shown["executions_per_minute"]["use"] == 0


LINGER = '''
import time
def main(context):
    print("in flight when its tenant goes")
    time.sleep(6)
    context.kv.set("left", "by the removed tenant's code")
    print("still running after its tenant went")
    return "finished"
'''

LEFT = '''
def main(context):
    return {"left": context.kv.get("left")}
'''


def test_code_in_flight_stops_with_its_tenant(platform: Platform) -> None:
    """A removed tenant's requests in flight end with it. Left running, its code would go
    on calling the host under the tenant's name, into a tenant made again under that
    name (its key-value store here), and log into the new tenant's logs."""
    check_code_in_flight_stops(platform, platform, "ghost")


def check_code_in_flight_stops(runs_on: Platform, removes_on: Platform, tenant: str) -> None:
    """The request runs on ``runs_on``; ``removes_on`` removes its tenant (another agent
    on the same store, in the cluster suite)."""
    runs_on.tenant(tenant)
    assert runs_on.deploy("linger", LINGER, tenant, timeout=60).status_code == 201
    answers: list[Any] = []
    running = threading.Thread(target=lambda: answers.append(runs_on.invoke("linger", tenant)))
    running.start()
    with runs_on.owner(tenant) as owner:
        eventually(lambda: api(owner, "/v1/logs", function="linger"))
    started = time.monotonic()
    with removes_on.owner() as owner:
        assert owner.delete(f"/v1/tenants/{tenant}").status_code == 204
    runs_on.tenant(tenant)  # made again at once
    running.join(timeout=30)
    assert answers, "the request in flight was not answered"
    answer = answers[0]
    assert answer.status_code != 200 or not answer.json()["ok"], answer.text
    assert "its tenant was removed" in answer.text
    assert runs_on.deploy("left", LEFT, tenant).status_code == 201
    time.sleep(max(0.0, started + 8 - time.monotonic()))  # past the old code's sleep
    assert json.loads(body(runs_on.invoke("left", tenant))) == {"left": None}
    with runs_on.owner(tenant) as owner:
        lines = [line["message"] for line in api(owner, "/v1/logs")]
    assert not [line for line in lines if "tenant go" in line], lines
