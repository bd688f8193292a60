"""Runtimes against a real agent: Python versions, node20 and deno, /v1/runtimes."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import RunningAgent, current_runtime
from tests.runtime_families.conftest import requires_runtime, runtime_missing

VERSION = """
import sys
def main(context):
    return {"version": list(sys.version_info[:2]), "runtime": context.function.runtime}
"""
PYTHONS = [f"python3.{minor}" for minor in (10, 11, 12, 13)]


def deploy(agent: RunningAgent, name: str, entry: str, source: str, **config: object) -> dict:
    body = {"entry": entry, "files_b64": {entry: base64.b64encode(source.encode()).decode()},
            "config": config}
    with agent.client() as client:
        response = client.put(f"/v1/functions/{name}", json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def result_of(agent: RunningAgent, name: str, payload: object = None) -> object:
    body = base64.b64encode(json.dumps(payload).encode()).decode() if payload is not None else ""
    response = agent.invoke(name, body_b64=body, headers={"content-type": "application/json"})
    data = response.json()
    assert response.status_code == 200 and data["ok"], data
    return json.loads(base64.b64decode(data["body_b64"]))


def test_same_function_on_three_python_versions(bwrap_agent: RunningAgent) -> None:
    present = [name for name in PYTHONS if runtime_missing(name) is None]
    if len(present) < 3:
        pytest.skip(f"fewer than three Python versions on this host: {present}")
    seen = set()
    for index, runtime in enumerate(present[:3]):
        deploy(bwrap_agent, f"py{index}", f"functions/py{index}.py", VERSION, runtime=runtime)
        answer = result_of(bwrap_agent, f"py{index}")
        assert answer["runtime"] == runtime  # type: ignore[index]
        assert f"python{answer['version'][0]}.{answer['version'][1]}" == runtime  # type: ignore[index]
        seen.add(tuple(answer["version"]))  # type: ignore[index]
    assert len(seen) == 3


def test_runtime_is_part_of_the_version_and_rollback_restores_it(bwrap_agent: RunningAgent) -> None:
    others = [n for n in PYTHONS if n != current_runtime() and runtime_missing(n) is None]
    if not others:
        pytest.skip("needs a second Python version")
    first = deploy(bwrap_agent, "ver", "functions/ver.py", VERSION, runtime=current_runtime())
    second = deploy(bwrap_agent, "ver", "functions/ver.py", VERSION, runtime=others[0])
    assert second["version"] == first["version"] + 1 and second["created"]
    assert result_of(bwrap_agent, "ver")["runtime"] == others[0]  # type: ignore[index]
    with bwrap_agent.client() as client:
        rolled = client.post("/v1/functions/ver/rollback", json={"version": first["version"]})
        assert rolled.status_code == 200, rolled.text
        versions = client.get("/v1/functions/ver/versions").json()
    assert [v["runtime"] for v in versions] == [current_runtime(), others[0]]
    assert result_of(bwrap_agent, "ver")["runtime"] == current_runtime()  # type: ignore[index]


@requires_runtime("node20")
def test_node_output_too_large_to_frame_is_output_too_large(bwrap_agent: RunningAgent) -> None:
    # 50 MiB of text is over 64 MiB once base64-encoded in the result frame: the bootstrap
    # cannot send it (a RangeError in JavaScript) and says so with the result's error code.
    deploy(bwrap_agent, "huge", "functions/huge.mjs",
           "export function main() {\n  return 'x'.repeat(50 * 1024 * 1024);\n}\n",
           runtime="node20", memory=1024 * 1024 * 1024)
    answer = bwrap_agent.invoke("huge")
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["code"] == "output_too_large", error
    assert "64 MiB frame limit" in error["message"] and error["request_id"]


@requires_runtime("node20")
def test_node_function_storage(bwrap_agent: RunningAgent) -> None:
    deploy(bwrap_agent, "nodestore", "functions/nodestore.mjs", """
export async function main(context) {
  const s = context.storage;
  const info = await s.put("n/bin", new Uint8Array([0, 1, 255]));
  const text = await s.put("n/text", "héllo");
  const data = await s.get("n/bin");
  const stat = await s.stat("n/text");
  const keys = (await s.list("n/")).map((o) => o.key);
  const after = (await s.list("n/", 10, "n/bin")).map((o) => o.key);
  return {
    after,
    info: [info.key, info.size, info.content_type], text: text.content_type,
    data: Array.from(data), textBack: (await s.get("n/text")).toString("utf-8"),
    stat: [stat.size, stat.sha256 === text.sha256], keys,
    deleted: await s.delete("n/bin"), missing: [await s.get("n/bin"), await s.stat("n/bin")],
  };
}
""", runtime="node20")
    assert result_of(bwrap_agent, "nodestore") == {
        "after": ["n/text"],
        "info": ["n/bin", 3, "application/octet-stream"], "text": "text/plain; charset=utf-8",
        "data": [0, 1, 255], "textBack": "héllo", "stat": [6, True], "keys": ["n/bin", "n/text"],
        "deleted": True, "missing": [None, None],
    }
    with bwrap_agent.client() as client:
        assert client.get("/v1/storage/n/text").content == "héllo".encode()


@requires_runtime("deno")
def test_deno_typescript_function_is_locked_down(bwrap_agent: RunningAgent) -> None:
    deploy(bwrap_agent, "denofn", "functions/denofn.ts", """
export default async function main(context: any): Promise<object> {
  context.logger.info("deno says %s", "hi");
  let net = "allowed";
  try { await fetch("http://127.0.0.1:9/"); } catch (e) { net = (e as Error).name; }
  let write = "allowed";
  try { Deno.writeTextFileSync("/code/x", "x"); } catch (e) { write = (e as Error).name; }
  return { deno: Deno.version.deno, runtime: context.function.runtime, net, write };
}
""", runtime="deno")
    answer = result_of(bwrap_agent, "denofn")
    assert answer["runtime"] == "deno" and answer["deno"]  # type: ignore[index]
    assert answer["net"] != "allowed" and answer["write"] == "NotCapable"  # type: ignore[index]


@requires_runtime("node20")
def test_runtimes_api_lists_refuses_removal_in_use_and_sets_default(bwrap_agent: RunningAgent) -> None:
    deploy(bwrap_agent, "user", "functions/user.js", "exports.main = () => 1;", runtime="node20")
    with bwrap_agent.client() as client:
        listed = {r["name"]: r for r in client.get("/v1/runtimes").json()}
        assert {"python3.11", "node20", "deno"} <= set(listed)
        assert listed["node20"]["available"] and listed["node20"]["backends"]["bwrap"] == "ok"
        assert listed["node20"]["functions"] == ["default/user"]
        refused = client.delete("/v1/runtimes/node20")
        assert refused.status_code == 409
        assert "default/user" in refused.json()["error"]["message"]
        assert client.delete("/v1/functions/user").status_code == 200
        assert client.delete("/v1/runtimes/node20").status_code == 200
        gone = {r["name"] for r in client.get("/v1/runtimes").json()}
        assert "node20" not in gone
        again = client.put("/v1/functions/x", json={
            "entry": "functions/x.js", "files_b64": {"functions/x.js": base64.b64encode(b"1").decode()},
            "config": {"runtime": "node20"}})
        assert again.status_code == 400 and "removed" in again.json()["error"]["message"]
        assert client.post("/v1/runtimes", json={"name": "node20"}).status_code == 201
        assert client.put("/v1/runtimes/default", json={"name": "node20"}).json() == {"name": "node20"}
        plain = client.put("/v1/functions/y", json={
            "entry": "functions/y.js",
            "files_b64": {"functions/y.js": base64.b64encode(b"exports.main = () => 2;").decode()}})
        assert plain.status_code == 201, plain.text
        assert client.get("/v1/functions/y").json()["runtime"] == "node20"
        bad = client.put("/v1/runtimes/default", json={"name": "cobol85"})
        assert bad.status_code == 400
