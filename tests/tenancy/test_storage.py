"""context.storage, /v1/storage and `hyac storage`: a tenant's objects, reached only by
that tenant, counted in its storage quota and removed with it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from hyac_agent.tenancy.objects import MAX_OBJECT_BYTES
from hyac_common.errors import InvalidInput
from hyac_common.names import validate_object_key
from tests.tenancy.conftest import Platform, body

BINARY = bytes(range(256)) * 4 + b"\x00\xff\r\n"

ROUND_TRIP = '''
import base64, hashlib

def main(context):
    data = base64.b64decode(context.request.json()["data_b64"])
    s = context.storage
    put = s.put("docs/bin.dat", data)
    text = s.put("docs/readme.txt", "héllo")
    typed = s.put("pics/cat.png", b"\\x89PNG", content_type="image/png")
    text_back = s.get("docs/readme.txt").decode()
    got = s.get("docs/bin.dat")
    listed = s.list("docs/")
    stat = s.stat("pics/cat.png")
    replaced = s.put("docs/readme.txt", b"v2")
    return {
        "same": got == data,
        "sha": put.sha256 == hashlib.sha256(data).hexdigest(),
        "put": [put.key, put.size, put.content_type],
        "text": [text.content_type, text_back],
        "typed": [typed.content_type, typed.size],
        "listed": [o.key for o in listed],
        "limited": [o.key for o in s.list("", limit=1)],
        "stat": [stat.key, stat.size, stat.content_type, stat.updated_at > 0],
        "replaced": [replaced.size, replaced.content_type],
        "missing": [s.get("nope"), s.stat("nope"), s.delete("nope")],
        "deleted": s.delete("pics/cat.png"),
        "after": [o.key for o in s.list()],
    }
'''

ASYNC_ROUND_TRIP = '''
async def main(context):
    s = context.storage
    info = await s.aput("async/one", b"\\x00\\x01")
    data = await s.aget("async/one")
    stat = await s.astat("async/one")
    keys = [o.key for o in await s.alist("async/")]
    gone = await s.adelete("async/one")
    return {"size": info.size, "data": list(data), "stat": stat.sha256 == info.sha256,
            "keys": keys, "gone": gone, "again": await s.aget("async/one")}
'''

PROBE = '''
from hyac_context import HostCallError

def attempt(fn):
    try:
        return {"value": fn()}
    except HostCallError as exc:
        return {"error": exc.code, "message": exc.message}

def main(context):
    key = context.request.query.get("key", "secret.txt")
    s = context.storage
    return {
        "get": attempt(lambda: s.get(key)),
        "stat": attempt(lambda: None if s.stat(key) is None else "found"),
        "list": attempt(lambda: [o.key for o in s.list()]),
        "delete": attempt(lambda: s.delete(key)),
        "put": attempt(lambda: s.put(key, b"x").key),
    }
'''


def api_put(platform: Platform, tenant: str, key: str, data: bytes, token: str | None = None,
            content_type: str = "application/octet-stream") -> int:
    with platform.http(token, tenant) as client:
        return client.put(f"/v1/storage/{key}", content=data,
                          headers={"content-type": content_type}).status_code


def error_of(answer) -> dict:  # type: ignore[no-untyped-def]
    return answer.json()["error"]


def test_a_function_puts_gets_lists_stats_and_deletes_objects(platform: Platform) -> None:
    platform.tenant("st-fn")
    assert platform.deploy("objects", ROUND_TRIP, "st-fn").status_code == 201
    payload = {"data_b64": base64.b64encode(BINARY).decode()}
    result = json.loads(body(platform.invoke("objects", "st-fn", body_b64=base64.b64encode(
        json.dumps(payload).encode()).decode())))
    assert result["same"] and result["sha"]
    assert result["put"] == ["docs/bin.dat", len(BINARY), "application/octet-stream"]
    assert result["text"] == ["text/plain; charset=utf-8", "héllo"]
    assert result["typed"] == ["image/png", 4]
    assert result["listed"] == ["docs/bin.dat", "docs/readme.txt"]
    assert result["limited"] == ["docs/bin.dat"]
    assert result["stat"] == ["pics/cat.png", 4, "image/png", True]
    assert result["replaced"] == [2, "application/octet-stream"]
    assert result["missing"] == [None, None, False]
    assert result["deleted"] is True
    assert result["after"] == ["docs/bin.dat", "docs/readme.txt"]

    # the same objects through the API, bytes exact
    with platform.owner("st-fn") as client:
        got = client.get("/v1/storage/docs/bin.dat")
        assert got.status_code == 200 and got.content == BINARY
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["etag"] == f'"{hashlib.sha256(BINARY).hexdigest()}"'
        assert got.headers["content-disposition"] == "attachment"
        assert got.headers["x-content-type-options"] == "nosniff"
        listed = client.get("/v1/storage", params={"prefix": "docs/"}).json()
        assert [(o["key"], o["size"]) for o in listed] == [("docs/bin.dat", len(BINARY)),
                                                            ("docs/readme.txt", 2)]

    assert platform.deploy("aobjects", ASYNC_ROUND_TRIP, "st-fn").status_code == 201
    result = json.loads(body(platform.invoke("aobjects", "st-fn")))
    assert result == {"size": 2, "data": [0, 1], "stat": True, "keys": ["async/one"],
                      "gone": True, "again": None}


def test_api_round_trip_and_errors(platform: Platform) -> None:
    platform.tenant("st-api")
    with platform.owner("st-api") as client:
        odd = "/v1/storage/" + quote("a b/ü%?#.txt")
        made = client.put(odd, content=b"text", headers={"content-type": "text/plain"})
        assert made.status_code == 200, made.text
        assert made.json()["key"] == "a b/ü%?#.txt" and made.json()["size"] == 4
        got = client.get(odd)
        assert got.content == b"text" and got.headers["content-type"] == "text/plain"
        # '%' and '_' in a prefix are themselves; prefixes are case-sensitive
        client.put("/v1/storage/a_c", content=b"1")
        client.put("/v1/storage/A b", content=b"1")
        assert [o["key"] for o in client.get("/v1/storage", params={"prefix": "a b"}).json()] == [
            "a b/ü%?#.txt"]
        assert [o["key"] for o in client.get("/v1/storage", params={"prefix": "a_"}).json()] == ["a_c"]

        missing = client.get("/v1/storage/nope")
        assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
        assert client.delete("/v1/storage/nope").status_code == 404
        assert client.delete("/v1/storage/a_c").status_code == 204
        assert client.get("/v1/storage/a_c").status_code == 404

        # (dot segments are sent encoded: HTTP clients rewrite them in URLs)
        for key in ("%2Fleading", "a/%2E/b", "a/%2E%2E/b", "tab%09key", "x" * 1025):
            bad = client.put(f"/v1/storage/{key}", content=b"1")
            assert bad.status_code == 400, (key, bad.text)
            assert error_of(bad)["code"] == "invalid_input" and "object key" in error_of(bad)["message"]
        bad_type = client.put("/v1/storage/t", content=b"1", headers={"content-type": "nonsense"})
        assert bad_type.status_code == 400 and "content type" in error_of(bad_type)["message"]
        big = client.put("/v1/storage/big", content=b"\0" * (MAX_OBJECT_BYTES + 1))
        assert big.status_code == 413 and error_of(big)["code"] == "payload_too_large"
        assert client.get("/v1/storage", params={"limit": 0}).status_code == 422


def test_oversize_and_bad_keys_from_a_function(platform: Platform) -> None:
    platform.tenant("st-bad")
    source = f'''
from hyac_context import HostCallError

def main(context):
    out = {{}}
    for name, key, data in [("big", "big", b"\\0" * ({MAX_OBJECT_BYTES} + 1)),
                            ("dotdot", "a/../b", b"1"), ("nul", "a\\x00b", b"1")]:
        try:
            context.storage.put(key, data)
            out[name] = "stored"
        except HostCallError as exc:
            out[name] = exc.code
    try:
        context.storage.get("")
    except ValueError:
        out["empty"] = "ValueError"
    return out
'''
    assert platform.deploy("bad", source, "st-bad", memory=256 * 1024 * 1024).status_code == 201
    result = json.loads(body(platform.invoke("bad", "st-bad")))
    assert result == {"big": "payload_too_large", "dotdot": "invalid_input", "nul": "invalid_input",
                      "empty": "ValueError"}


def test_tenant_a_reaches_none_of_bs_objects(platform: Platform) -> None:
    platform.tenant("st-a")
    platform.tenant("st-b")
    a = platform.user("st-alice", "st-a", "admin")
    b = platform.user("st-bob", "st-b", "admin")
    assert api_put(platform, "st-b", "secret.txt", b"bob's", b) == 200
    assert platform.deploy("probe", PROBE, "st-a", a).status_code == 201
    seen = json.loads(body(platform.invoke("probe", "st-a", a)))
    assert seen == {"get": {"value": None}, "stat": {"value": None}, "list": {"value": []},
                    "delete": {"value": False}, "put": {"value": "secret.txt"}}
    # A's put landed in A; B's object is untouched and B's own
    with platform.http(b, "st-b") as client:
        assert client.get("/v1/storage/secret.txt").content == b"bob's"
        assert [o["key"] for o in client.get("/v1/storage").json()] == ["secret.txt"]
    # A's token is refused in B, whatever it asks
    with platform.http(a, "st-b") as client:
        for answer in (client.get("/v1/storage"), client.get("/v1/storage/secret.txt"),
                       client.put("/v1/storage/secret.txt", content=b"x"),
                       client.delete("/v1/storage/secret.txt")):
            assert answer.status_code == 403, answer.text
    with platform.http(b, "st-b") as client:
        assert client.get("/v1/storage/secret.txt").content == b"bob's"


def test_roles_viewer_reads_developer_writes(platform: Platform) -> None:
    platform.tenant("st-roles")
    viewer = platform.user("st-vic", "st-roles", "viewer")
    dev = platform.user("st-dev", "st-roles", "developer")
    assert api_put(platform, "st-roles", "doc", b"v1", dev) == 200
    with platform.http(viewer, "st-roles") as client:
        assert client.get("/v1/storage").status_code == 200
        assert client.get("/v1/storage/doc").content == b"v1"
        denied = client.put("/v1/storage/doc", content=b"v2")
        assert denied.status_code == 403 and error_of(denied)["code"] == "forbidden"
        assert client.delete("/v1/storage/doc").status_code == 403
    with platform.http(dev, "st-roles") as client:
        assert client.delete("/v1/storage/doc").status_code == 204
    with platform.owner("st-roles") as owner:
        actions = [(r["actor"], r["action"], r["target"], r["result"])
                   for r in owner.get("/v1/audit").json()]
    assert ("st-dev", "storage.put", "doc", 200) in actions
    assert ("st-vic", "storage.put", "doc", 403) in actions
    assert ("st-dev", "storage.rm", "doc", 204) in actions


def test_storage_quota_counts_objects(platform: Platform) -> None:
    platform.tenant("st-quota")
    with platform.owner("st-quota") as owner:
        assert owner.put("/v1/quotas", json={"values": {"storage": "10k"}}).status_code == 200
    assert api_put(platform, "st-quota", "one", b"x" * 6000) == 200
    with platform.owner("st-quota") as owner:
        use = owner.get("/v1/quotas").json()["quotas"]["storage"]["use"]
        assert use == 6000 + len("one")
        refused = owner.put("/v1/storage/two", content=b"x" * 6000)
        assert refused.status_code == 413
        assert error_of(refused)["code"] == "quota_exceeded" and error_of(refused)["quota"] == "storage"
        # replacing an object counts only its growth
        assert owner.put("/v1/storage/one", content=b"y" * 9000).status_code == 200
    fill = '''
from hyac_context import HostCallError
def main(context):
    try:
        context.storage.put("more", b"z" * 5000)
    except HostCallError as exc:
        return exc.code
    return "stored"
'''
    assert platform.deploy("fill", fill, "st-quota").status_code == 201
    assert body(platform.invoke("fill", "st-quota")) == b"quota_exceeded"
    with platform.owner("st-quota") as owner:
        assert owner.delete("/v1/storage/one").status_code == 204
        assert owner.get("/v1/quotas").json()["quotas"]["storage"]["use"] == 0
    assert body(platform.invoke("fill", "st-quota")) == b"stored"


def test_deleting_a_tenant_deletes_its_objects(platform: Platform) -> None:
    platform.tenant("st-gone")
    assert api_put(platform, "st-gone", "keep/me", b"data") == 200
    with platform.owner() as owner:
        assert owner.delete("/v1/tenants/st-gone").status_code in (200, 204)
    platform.tenant("st-gone")
    with platform.owner("st-gone") as client:
        assert client.get("/v1/storage").json() == []
        assert client.get("/v1/storage/keep/me").status_code == 404


def hyac(*args: str, platform: Platform, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "HYAC_URL": platform.agent.url,
           "HYAC_TOKEN": platform.agent.token}
    return subprocess.run([sys.executable, "-m", "hyac_cli", *args], capture_output=True,
                          input=input, env=env, timeout=60)


def test_cli_round_trip(platform: Platform, tmp_path: Path) -> None:
    platform.tenant("st-cli")
    source = tmp_path / "in.bin"
    source.write_bytes(BINARY)

    def ok(*args: str, input: bytes | None = None) -> bytes:
        result = hyac(*args, "--tenant", "st-cli", platform=platform, input=input)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    assert b"docs/bin.dat" in ok("storage", "put", "docs/bin.dat", str(source))
    ok("storage", "put", "docs/note.txt", "-", "--content-type", "text/markdown", input=b"# hi\n")
    assert ok("storage", "get", "docs/bin.dat") == BINARY
    out = tmp_path / "out.bin"
    ok("storage", "get", "docs/bin.dat", "-o", str(out))
    assert out.read_bytes() == BINARY
    listing = ok("storage", "ls", "docs/").decode()
    assert "docs/bin.dat" in listing and "text/markdown" in listing
    listed = json.loads(ok("storage", "ls", "--json"))
    assert [(o["key"], o["size"]) for o in listed] == [("docs/bin.dat", len(BINARY)), ("docs/note.txt", 5)]
    quotas = json.loads(ok("quota", "show", "--json"))
    assert quotas["quotas"]["storage"]["use"] == len(BINARY) + 5 + len("docs/bin.dat") + len("docs/note.txt")
    info = json.loads(ok("storage", "put", "x", str(source), "--json"))
    assert info["sha256"] == hashlib.sha256(BINARY).hexdigest()
    ok("storage", "rm", "x")
    assert [o["key"] for o in json.loads(ok("storage", "ls", "--json"))] == ["docs/bin.dat", "docs/note.txt"]

    for args, needle in [(("storage", "get", "missing"), b"no object 'missing'"),
                         (("storage", "rm", "missing"), b"no object 'missing'"),
                         (("storage", "put", "a/../b", str(source)), b"'.' and '..'"),
                         (("storage", "put", "k", str(tmp_path / "absent")), b"absent")]:
        failed = hyac(*args, "--tenant", "st-cli", platform=platform)
        assert failed.returncode != 0, args
        assert needle in failed.stderr and b"Traceback" not in failed.stderr, failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr


PAGES = '''
def main(context):
    for i in range(5):
        context.storage.put(f"p/{i}", str(i))
    pages, after = [], None
    while True:
        page = context.storage.list("p/", limit=2, start_after=after)
        if not page:
            return pages
        pages.append([o.key for o in page])
        after = page[-1].key
'''


def test_listing_pages_through_with_start_after(platform: Platform, tmp_path: Path) -> None:
    platform.tenant("st-pages")
    assert platform.deploy("pages", PAGES, "st-pages").status_code == 201
    assert json.loads(body(platform.invoke("pages", "st-pages"))) == [["p/0", "p/1"], ["p/2", "p/3"], ["p/4"]]
    with platform.owner("st-pages") as client:
        page = client.get("/v1/storage", params={"limit": 2, "start_after": "p/1"}).json()
        assert [o["key"] for o in page] == ["p/2", "p/3"]
        head = client.head(f"/v1/storage/{quote('p/3')}")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == "1" and head.headers["etag"]
        assert client.head("/v1/storage/absent").status_code == 404
    listed = hyac("storage", "ls", "--json", "--tenant", "st-pages", platform=platform)
    assert [o["key"] for o in json.loads(listed.stdout)] == [f"p/{i}" for i in range(5)]
    two = hyac("storage", "ls", "--limit", "2", "--json", "--tenant", "st-pages", platform=platform)
    assert [o["key"] for o in json.loads(two.stdout)] == ["p/0", "p/1"]


@pytest.mark.parametrize("key", ["a", "photos/2026/cat.jpg", "trailing/", "ü" * 512, "a b%_?#"])
def test_valid_keys(key: str) -> None:
    assert validate_object_key(key) == key


@pytest.mark.parametrize("key", ["", "/abs", "a/./b", "..", "a/..", "x\x00y", "tab\t", "del\x7f",
                                 "é" * 513, None, 7])
def test_invalid_keys(key: object) -> None:
    with pytest.raises(InvalidInput):
        validate_object_key(key)
