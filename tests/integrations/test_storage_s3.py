"""Object storage on an S3-compatible server (moto's, a real process on loopback):
/v1/storage and context.storage answer the same on the built-in backend and on S3;
tenants' objects are namespaced in the bucket whatever their keys; the quota is counted
by the agent; an unreachable endpoint or wrong credentials are refused in one line with
nothing saved; objects move between backends, verified by sha256, resumably."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pytest

from hyac_agent.integrations.storage import storage_target
from hyac_agent.tenancy.objects import MigrationProgress, ObjectStore
from tests.integrations.conftest import (
    S3Server,
    configure,
    free_port,
    setting,
)
from tests.tenancy.conftest import Platform, body

HOSTILE_KEYS = ["../../other/secret.txt", "/etc/passwd", "a/../../b", "ünï/cödé/✓.txt",
                "x" * 1024, "C:\\windows\\win.ini", "%2e%2e/%2f", "other-tenant/f.txt"]

SCENARIO = '''
import hashlib

def main(context):
    s = context.storage
    data = bytes(range(256)) * 3
    put = s.put("docs/bin.dat", data)
    s.put("docs/readme.txt", "héllo", content_type="text/markdown")
    s.put("pics/cat.png", b"\\x89PNG", content_type="image/png")
    got = s.get("docs/bin.dat")
    stat = s.stat("pics/cat.png")
    s.put("docs/readme.txt", b"v2")
    return {
        "same": got == data and put.sha256 == hashlib.sha256(data).hexdigest(),
        "listed": [[o.key, o.size, o.content_type] for o in s.list("docs/")],
        "page": [o.key for o in s.list("", limit=1, start_after="docs/bin.dat")],
        "stat": [stat.size, stat.content_type],
        "text": s.get("docs/readme.txt").decode(),
        "missing": [s.get("nope"), s.stat("nope"), s.delete("nope")],
        "deleted": s.delete("pics/cat.png"),
        "after": [o.key for o in s.list()],
    }
'''


def object_store(platform: Platform) -> ObjectStore:
    """The objects of the agent's store, with the storage settings in effect."""
    agent = platform.agent.agent  # type: ignore[attr-defined]
    return ObjectStore(agent.store.engine,
                       storage_target(lambda: agent.integrations.values("storage")))


@contextmanager
def on_s3(platform: Platform, s3: S3Server, bucket: str, **more: Any) -> Iterator[str]:
    """New objects go to ``bucket`` (made here); afterwards every object is moved back
    to the built-in store, so the next test may point S3 elsewhere."""
    answer = configure(platform, "storage", s3.settings(s3.bucket(bucket), **more))
    assert answer.status_code == 200, answer.text
    try:
        yield bucket
    finally:
        object_store(platform).migrate("builtin", None, lambda state: None)
        assert configure(platform, "storage", {"backend": "builtin"}).status_code == 200


def exercise(platform: Platform, tenant: str) -> dict[str, Any]:
    """The same calls through the API and through a function; what they answer, with
    the times (which differ by nature) left out."""
    platform.tenant(tenant)
    assert platform.deploy("objects", SCENARIO, tenant).status_code in (200, 201)
    from_function = json.loads(body(platform.invoke("objects", tenant)))
    seen: dict[str, Any] = {"function": from_function}
    with platform.owner(tenant) as client:
        put = client.put("/v1/storage/api/one.bin", content=b"\x00\x01" * 500,
                         headers={"content-type": "application/x-thing"})
        seen["put"] = {k: v for k, v in put.json().items() if k != "updated_at"}
        got = client.get("/v1/storage/api/one.bin")
        seen["get"] = [got.status_code, got.content == b"\x00\x01" * 500, got.headers["etag"],
                       got.headers["content-type"], got.headers["content-disposition"]]
        head = client.head("/v1/storage/api/one.bin")
        seen["head"] = [head.status_code, head.headers["content-length"], head.headers["etag"]]
        seen["list"] = [(o["key"], o["size"], o["sha256"])
                        for o in client.get("/v1/storage", params={"prefix": "api/"}).json()]
        seen["pages"] = [[o["key"] for o in client.get("/v1/storage", params={
            "limit": 1, "start_after": after}).json()] for after in ("", "api/one.bin")]
        seen["missing"] = [client.get("/v1/storage/nope").status_code,
                           client.delete("/v1/storage/nope").status_code]
        seen["bad"] = [client.put("/v1/storage/a/%2E%2E/b", content=b"x").json()["error"]["code"]]
        seen["quota"] = client.get("/v1/quotas").json()["quotas"]["storage"]["use"]
        seen["deleted"] = client.delete("/v1/storage/api/one.bin").status_code
    return seen


def test_the_api_and_functions_answer_the_same_on_builtin_and_s3(
        api_platform: Platform, s3: S3Server) -> None:
    builtin = exercise(api_platform, "same-builtin")
    with on_s3(api_platform, s3, "same") as bucket:
        answered = exercise(api_platform, "same-s3")
        names = s3.names(bucket)
    assert answered == builtin
    assert builtin["function"]["same"] and builtin["function"]["missing"] == [None, None, False]
    # The bytes went to the bucket, under the tenant's own prefix, and deleted ones left it.
    assert len(names) == 2 and all(n.startswith("same-s3/") for n in names)


def test_hostile_keys_stay_in_their_tenants_namespace(api_platform: Platform, s3: S3Server) -> None:
    with on_s3(api_platform, s3, "hostile") as bucket:
        api_platform.tenant("hostile-a")
        api_platform.tenant("hostile-b")
        stored: dict[str, list[str]] = {}
        for tenant in ("hostile-a", "hostile-b"):
            with api_platform.owner(tenant) as client:
                accepted = []
                for key in HOSTILE_KEYS:
                    answer = client.put(f"/v1/storage/{quote(key, safe='')}",
                                        content=f"{tenant}:{key}".encode())
                    assert answer.status_code in (200, 400), answer.text
                    if answer.status_code == 200:
                        accepted.append(key)
                stored[tenant] = accepted
        assert stored["hostile-a"] == stored["hostile-b"] and "ünï/cödé/✓.txt" in stored["hostile-a"]
        names = s3.names(bucket)
        for tenant in ("hostile-a", "hostile-b"):
            with api_platform.owner(tenant) as client:
                for key in stored[tenant]:
                    got = client.get(f"/v1/storage/{quote(key, safe='')}")
                    assert got.content == f"{tenant}:{key}".encode()
        # Every name is the tenant, the key's hash and the bytes' hash: nothing of the key.
        assert len(names) == 2 * len(stored["hostile-a"])
        for name in names:
            tenant, hashed, sha = name.split("/")
            assert tenant in ("hostile-a", "hostile-b") and len(hashed) == len(sha) == 64


def test_the_quota_is_counted_by_the_agent_on_s3(api_platform: Platform, s3: S3Server) -> None:
    with on_s3(api_platform, s3, "quota") as bucket:
        api_platform.tenant("quota-s3")
        with api_platform.owner("quota-s3") as client:
            assert client.put("/v1/quotas", json={"values": {"storage": 1000}}).status_code == 200
            assert client.put("/v1/storage/a", content=b"x" * 600).status_code == 200
            over = client.put("/v1/storage/b", content=b"x" * 600)
            assert over.status_code == 413 and over.json()["error"]["code"] == "quota_exceeded"
            assert client.get("/v1/quotas").json()["quotas"]["storage"]["use"] == 601
        assert len(s3.names(bucket)) == 1  # the refused object never reached the bucket
        with api_platform.owner() as client:  # a removed tenant's bytes leave the bucket too
            assert client.delete("/v1/tenants/quota-s3").status_code == 204
        assert s3.names(bucket) == []


def test_unreachable_or_refused_s3_is_one_line_and_saves_nothing(
        api_platform: Platform, s3: S3Server) -> None:
    bucket = s3.bucket("refusals")
    cases = [
        ({"endpoint": f"http://127.0.0.1:{free_port()}"}, "cannot reach the S3 endpoint"),
        ({"bucket": "no-such-bucket"}, "there is no bucket 'no-such-bucket'"),
        ({"backend": "s3", "bucket": ""}, "the s3 backend needs a bucket"),
        ({"endpoint": "ftp://x"}, "http:// or https:// URL"),
        ({"path_style": "maybe"}, "true or false"),
        ({"prefix": "../up"}, "without '..'"),
        ({"colour": "blue"}, "no setting 'colour'"),
        ({"secret_key": "wrong"}, "refused the credentials for the bucket 'refusals' at "
                                  f"{s3.endpoint} (SignatureDoesNotMatch)"),
        ({"access_key": "AKIAUNKNOWN"}, "(InvalidAccessKeyId)"),
    ]
    with api_platform.owner() as client:
        before = client.get("/v1/system/integrations/storage").json()
        for change, needle in cases:
            answer = configure(api_platform, "storage", {**s3.settings(bucket), **change})
            assert answer.status_code in (400, 422), (change, answer.text)
            message = answer.json()["error"]["message"]
            assert needle in message and "\n" not in message, (change, message)
            assert s3.secret_key not in answer.text
        assert client.get("/v1/system/integrations/storage").json() == before
    # New objects can always go back to the built-in store, even while S3 is unreachable.
    down = configure(api_platform, "storage", {**s3.settings(bucket), "backend": "builtin",
                                                "endpoint": f"http://127.0.0.1:{free_port()}"})
    assert down.status_code == 200, down.text
    with api_platform.owner() as client:  # and `test` says what is wrong, in one line
        tested = client.post("/v1/system/integrations/storage/test")
    assert tested.status_code == 422, tested.text
    assert tested.json()["error"]["message"].startswith("cannot reach the S3 endpoint")
    with api_platform.owner() as client:
        assert configure(api_platform, "storage", s3.settings(bucket)).status_code == 200
        configure(api_platform, "storage", {"backend": "builtin"})
        view = client.get("/v1/system/integrations/storage").json()
        assert setting(view, "secret_key")["value"] == "set"
        assert setting(view, "access_key")["value"] == s3.access_key
        assert s3.secret_key not in json.dumps(view)
        tested = client.post("/v1/system/integrations/storage/test")
        assert tested.status_code == 200 and "read back" in tested.json()["message"]


def test_a_tenant_is_not_told_where_or_why_s3_failed(api_platform: Platform, s3: S3Server) -> None:
    with on_s3(api_platform, s3, "hidden") as bucket:
        api_platform.tenant("hidden")
        with api_platform.owner("hidden") as client:
            assert client.put("/v1/storage/k", content=b"bytes").status_code == 200
            s3.client().delete_object(Bucket=bucket, Key=s3.names(bucket)[0])  # lost
            answer = client.get("/v1/storage/k")
            assert client.delete("/v1/storage/k").status_code == 204
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "storage_unavailable"
    assert "unavailable" in answer.text
    for detail in (s3.endpoint, "hidden'", "missing"):
        assert detail not in answer.text


def test_s3_settings_cannot_move_while_objects_live_there(api_platform: Platform,
                                                         s3: S3Server) -> None:
    first, second = s3.bucket("first"), s3.bucket("second")
    api_platform.tenant("stranded")
    assert configure(api_platform, "storage", s3.settings(first)).status_code == 200
    with api_platform.owner("stranded") as client:
        assert client.put("/v1/storage/k", content=b"kept").status_code == 200
    moved = configure(api_platform, "storage", s3.settings(second))
    assert moved.status_code == 409 and "migrate" in moved.json()["error"]["message"]
    with api_platform.owner() as client:
        assert client.delete("/v1/system/integrations/storage").status_code == 409
    # Switching new objects back to the built-in store is fine: the old one stays readable.
    assert configure(api_platform, "storage", {"backend": "builtin"}).status_code == 200
    with api_platform.owner("stranded") as client:
        assert client.get("/v1/storage/k").content == b"kept"
        assert client.delete("/v1/storage/k").status_code == 204
    assert s3.names(first) == []
    assert configure(api_platform, "storage", s3.settings(second)).status_code == 200
    configure(api_platform, "storage", {"backend": "builtin"})


def test_migrate_to_s3_and_back_verified_and_resumable(api_platform: Platform,
                                                      s3: S3Server) -> None:
    bucket = s3.bucket("migrate")
    api_platform.tenant("mig-a")
    api_platform.tenant("mig-b")
    contents = {f"f{i}": hashlib.sha256(str(i).encode()).digest() * (i + 1) for i in range(5)}
    for tenant in ("mig-a", "mig-b"):
        with api_platform.owner(tenant) as client:
            for key, data in contents.items():
                assert client.put(f"/v1/storage/{key}", content=data).status_code == 200
    assert configure(api_platform, "storage", s3.settings(bucket, backend="builtin")).status_code == 200
    objects = object_store(api_platform)

    class Interrupted(Exception):
        pass

    def stop_after_two(state: MigrationProgress) -> None:
        if state.done == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        objects.migrate("s3", "mig-a", stop_after_two)
    assert len(s3.names(bucket)) == 2
    seen: list[tuple[int, int]] = []
    resumed = objects.migrate("s3", "mig-a", lambda s: seen.append((s.done, s.total)))
    assert (resumed.total, resumed.done, resumed.failed) == (3, 3, 0) and seen[-1] == (3, 3)
    assert len(s3.names(bucket)) == 5  # mig-b's stayed in the store
    assert all(n.startswith("mig-a/") for n in s3.names(bucket))

    def read_all(tenant: str) -> dict[str, bytes]:
        with api_platform.owner(tenant) as client:
            return {key: client.get(f"/v1/storage/{key}").content for key in contents}

    assert read_all("mig-a") == contents == read_all("mig-b")
    # Bytes that differ from the sha256 their row records are never moved on.
    s3.client().put_object(Bucket=bucket, Key=next(n for n in s3.names(bucket)),
                           Body=b"tampered")
    back = objects.migrate("builtin", None, lambda s: None)
    assert (back.done, back.failed) == (4, 1) and "sha256" in back.last_error
    assert len(s3.names(bucket)) == 1
    with api_platform.owner("mig-a") as client:  # the damaged one goes, bytes and all
        assert {client.delete(f"/v1/storage/{key}").status_code for key in contents} == {204}
    assert s3.names(bucket) == []
    configure(api_platform, "storage", {"backend": "builtin"})


def test_migrate_command_line(api_platform: Platform, s3: S3Server,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`hyac-agent storage migrate`, on the store the agent serves from."""
    from typer.testing import CliRunner

    from hyac_agent.main import app

    bucket = s3.bucket("cli-migrate")
    api_platform.tenant("mig-cli")
    with api_platform.owner("mig-cli") as client:
        assert client.put("/v1/storage/x", content=b"one").status_code == 200
    assert configure(api_platform, "storage", s3.settings(bucket, backend="builtin")).status_code == 200
    monkeypatch.setenv("HYAC_DATA_DIR", str(api_platform.agent.data_dir))

    def run(*args: str) -> Any:
        return CliRunner().invoke(app, ["storage", "migrate", *args])

    moved = run("--to", "s3", "--tenant", "mig-cli", "--json")
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout) == {"to": "s3", "tenant": "mig-cli", "total": 1, "moved": 1,
                                        "bytes": 3, "failed": 0, "last_error": None}
    assert "1/1 objects, 3 bytes" not in moved.stderr  # --json: no progress lines
    with api_platform.owner("mig-cli") as client:
        assert client.get("/v1/storage/x").content == b"one"
    failed = run("--to", "ftp")
    assert failed.exit_code == 1 and failed.stderr == "Error: objects move --to s3 or --to builtin\n"
    back = run("--to", "builtin")
    assert back.exit_code == 0 and "moved 1 object(s), 3 bytes, to builtin" in back.stdout
    assert "1/1 objects, 3 bytes" in back.stderr  # progress
    assert s3.names(bucket) == []
    configure(api_platform, "storage", {"backend": "builtin"})


def test_objects_move_both_ways_on_postgresql(s3: S3Server) -> None:
    """The same rows, moves and reads on a PostgreSQL store (the location column added
    to its existing objects table; the move's paging by tenant and key)."""
    from sqlalchemy import create_engine, text

    from hyac_agent.tenancy.store import TenancyStore
    from tests.tenancy.test_postgres_tenants import create_store, drop_store, url_of

    dbname = create_store()
    engine = create_engine("postgresql+psycopg://" + url_of(dbname).split("://", 1)[1])
    try:
        TenancyStore(engine).create_schema()
        with engine.begin() as conn:  # as a store made before objects could be in S3
            conn.execute(text("ALTER TABLE tenant_objects DROP COLUMN location"))
        TenancyStore(engine).create_schema()
        settings = {**s3.settings(s3.bucket("on-postgres")), "region": "", "prefix": "pg/"}
        objects = ObjectStore(engine, storage_target(lambda: settings))
        contents = {(tenant, f"k{i}"): f"{tenant}{i}".encode() * 100
                    for tenant in ("pg-a", "pg-b") for i in range(3)}
        for (tenant, key), data in list(contents.items())[:3]:  # pg-a's: into S3
            objects.put(tenant, key, data, "application/octet-stream")
        settings["backend"] = "builtin"
        for (tenant, key), data in list(contents.items())[3:]:  # pg-b's: the store
            objects.put(tenant, key, data, "application/octet-stream")
        assert len(s3.names("on-postgres")) == 3
        assert objects.migrate("s3", None, lambda state: None).done == 3
        assert len(s3.names("on-postgres")) == 6
        assert all(objects.read(t, k)[1] == data for (t, k), data in contents.items())  # type: ignore[index]
        assert objects.migrate("builtin", "pg-a", lambda state: None).done == 3
        assert [n.split("/")[1] for n in s3.names("on-postgres")] == ["pg-b"] * 3
        assert [o.key for o in objects.list("pg-a", "", 10)] == ["k0", "k1", "k2"]
        assert objects.footprint("pg-b") == sum(len(d) + 2 for (t, _), d in contents.items()
                                                if t == "pg-b")
    finally:
        engine.dispose()
        drop_store(dbname, "hyac_none_")
