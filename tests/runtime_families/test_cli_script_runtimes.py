"""A Node function and a Deno function, as a user deploys them with the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli_tour import hyac
from tests.runtime_families.conftest import requires_runtime
from tests.waiting import eventually


@pytest.fixture
def bwrap_local_agent(isolation: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HYAC_SANDBOX", "bwrap")
    monkeypatch.setenv("HYAC_POOL_SIZE", "0")
    up = hyac("agent", "up", "--port", "0")
    assert up.returncode == 0, up.stderr
    yield
    hyac("agent", "down")


@requires_runtime("node20")
@requires_runtime("deno")
def test_node_and_deno_functions_through_invoke_and_logs(
    tmp_path: Path, bwrap_local_agent: None
) -> None:
    init = hyac("init", "demo", "--runtime", "node20", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    project = tmp_path / "demo"
    assert (project / "functions" / "hello.js").is_file()
    assert "FunctionContext" in (project / "typings" / "hyac_context.d.ts").read_text()
    (project / "functions" / "greet.ts").write_text(
        "export async function main(context: FunctionContext) {\n"
        "  console.log('deno greets', context.request.query.name);\n"
        "  return `hi ${context.request.query.name} from ${context.function.runtime}`;\n"
        "}\n"
    )
    with (project / "hyac.toml").open("a") as fh:
        fh.write('\n[functions.greet]\nruntime = "deno"\n')

    deployed = hyac("deploy", "--json", cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    assert {r["name"] for r in json.loads(deployed.stdout)} == {"hello", "greet"}

    node = hyac("invoke", "hello", "--data", '{"name": "Ada"}', cwd=project)
    assert node.returncode == 0, node.stderr
    assert json.loads(node.stdout) == {"hello": "Ada"}
    deno = hyac("invoke", "greet", "--query", "name=Grace", cwd=project)
    assert deno.returncode == 0, deno.stderr
    assert deno.stdout.strip() == "hi Grace from deno"

    def both_logged() -> bool:
        logs = hyac("logs", "--json", cwd=project)
        lines = [json.loads(line) for line in logs.stdout.splitlines() if line.strip()]
        messages = {(r["function"], r["message"]) for r in lines}
        return {("hello", "greeting Ada"), ("greet", "deno greets Grace")} <= messages

    eventually(both_logged, timeout=30, interval=0.2)

    listed = hyac("runtime", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["node20"]["available"] and rows["deno"]["available"]
    refused = hyac("runtime", "rm", "deno")
    assert refused.returncode != 0 and "default/greet" in refused.stderr
    assert "Traceback" not in refused.stderr
