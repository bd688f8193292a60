"""Object storage on a PostgreSQL store shared by two agents: what one agent stores the
other serves, byte for byte; both writing the same key at once is no error; removing the
tenant on one removes its objects for both, and stops its code running on the other.
Skipped, with the reason, without a server (see test_postgres_tenants.py)."""

from __future__ import annotations

import base64
import json
import shutil
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from hyac_agent.tenancy.tenantdb import TenantDatabases
from tests.conftest import start_agent
from tests.tenancy.conftest import Platform, body
from tests.tenancy.test_postgres_tenants import create_store, drop_store, pg_env, url_of
from tests.tenancy.test_tenant_removal import check_code_in_flight_stops

BINARY = bytes(range(256)) * 64

WRITER = '''
import base64
def main(context):
    info = context.storage.put("from-fn/data.bin", base64.b64decode(context.request.json()["b64"]))
    return {"size": info.size, "sha256": info.sha256}
'''

READER = '''
import base64
def main(context):
    data = context.storage.get(context.request.query["key"])
    return {"b64": None if data is None else base64.b64encode(data).decode(),
            "keys": [o.key for o in context.storage.list()]}
'''


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, Platform]]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    dbname = create_store()
    url = "postgresql+psycopg://" + url_of(dbname).split("://", 1)[1]
    homes = [tmp_path_factory.mktemp("pg-storage-1"), tmp_path_factory.mktemp("pg-storage-2")]
    prefix = TenantDatabases(homes[0] / "data", url).role_prefix()
    agents = []
    try:
        for home in homes:
            agents.append(start_agent(home / "data", "--sandbox", "bwrap", env=pg_env(url)))
        yield Platform(agents[0]), Platform(agents[1])
    finally:
        for agent in agents:
            agent.kill(signal.SIGTERM)
        drop_store(dbname, prefix)


def invoke_json(platform: Platform, name: str, tenant: str, **request: object) -> dict:
    return dict(json.loads(body(platform.invoke(name, tenant, None, **request))))


def test_what_one_agent_stores_the_other_serves(pair: tuple[Platform, Platform]) -> None:
    one, two = pair
    one.tenant("pg-objects")
    with one.owner("pg-objects") as client:
        assert client.put("/v1/storage/api/blob", content=BINARY).status_code == 200
    assert one.deploy("writer", WRITER, "pg-objects").status_code == 201
    payload = json.dumps({"b64": base64.b64encode(BINARY).decode()}).encode()
    written = invoke_json(one, "writer", "pg-objects", body_b64=base64.b64encode(payload).decode())
    assert written["size"] == len(BINARY)

    with two.owner("pg-objects") as client:
        assert client.get("/v1/storage/api/blob").content == BINARY
        assert client.get("/v1/storage/from-fn/data.bin").content == BINARY
        listed = client.get("/v1/storage").json()
        assert [(o["key"], o["size"]) for o in listed] == [("api/blob", len(BINARY)),
                                                            ("from-fn/data.bin", len(BINARY))]
        use = client.get("/v1/quotas").json()["quotas"]["storage"]["use"]
        assert use >= 2 * len(BINARY)
    assert two.deploy("reader", READER, "pg-objects").status_code == 201
    read = invoke_json(two, "reader", "pg-objects", query={"key": "from-fn/data.bin"})
    assert base64.b64decode(read["b64"]) == BINARY
    assert read["keys"] == ["api/blob", "from-fn/data.bin"]


def test_both_agents_writing_one_key_at_once(pair: tuple[Platform, Platform]) -> None:
    one, two = pair
    one.tenant("pg-race")

    def put(args: tuple[Platform, int]) -> int:
        platform, n = args
        with platform.owner("pg-race") as client:
            return client.put(f"/v1/storage/key-{n // 2}", content=bytes([n]) * 100).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(put, [(one if n % 2 else two, n) for n in range(40)]))
    assert codes == [200] * 40
    with one.owner("pg-race") as client:
        listed = client.get("/v1/storage").json()
    assert sorted(o["key"] for o in listed) == sorted(f"key-{n}" for n in range(20))


def test_removing_the_tenant_on_one_agent_removes_its_objects_for_both(
    pair: tuple[Platform, Platform]
) -> None:
    one, two = pair
    one.tenant("pg-gone")
    with one.owner("pg-gone") as client:
        assert client.put("/v1/storage/kept", content=b"x").status_code == 200
    with two.owner() as owner:
        assert owner.delete("/v1/tenants/pg-gone").status_code in (200, 204)
    one.tenant("pg-gone")
    with one.owner("pg-gone") as client:
        assert client.get("/v1/storage").json() == []


def test_removing_the_tenant_on_one_agent_stops_its_code_in_flight_on_the_other(
    pair: tuple[Platform, Platform]
) -> None:
    one, two = pair
    check_code_in_flight_stops(one, two, "pg-ghost")
