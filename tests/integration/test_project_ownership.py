"""Projects do not silently overwrite each other: each function records the project that
deployed it, and a deploy from another project (or in another language) is refused
unless --force or ``take_over = true`` says so. The `hyac` CLI as a subprocess against a
real agent."""

from __future__ import annotations

import json
import os
import select
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.test_json_errors import hyac
from tests.conftest import RunningAgent, current_runtime

RUNTIME = current_runtime()


def make_project(root: Path, name: str, answer: str, runtime: str = RUNTIME,
                 extra: str = "") -> Path:
    (root / "functions").mkdir(parents=True)
    (root / "hyac.toml").write_text(
        f'[project]\nname = "{name}"\nruntime = "{runtime}"\n{extra}'
    )
    if runtime.startswith("node"):
        (root / "functions/hello.js").write_text(
            f"export function main(context) {{ return {json.dumps(answer)}; }}\n"
        )
    else:
        (root / "functions/hello.py").write_text(f"def main(context):\n    return {answer!r}\n")
    return root


def in_dir(agent: RunningAgent, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYAC_URL": agent.url, "HYAC_TOKEN": agent.token, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "hyac_cli", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_second_project_cannot_replace_the_first_ones_function(
    agent: RunningAgent, tmp_path: Path
) -> None:
    alpha = make_project(tmp_path / "alpha", "alpha", "from alpha")
    beta = make_project(tmp_path / "beta", "beta", "from beta")
    first = in_dir(agent, alpha, "deploy")
    assert first.returncode == 0, first.stderr

    refused = in_dir(agent, beta, "deploy")
    assert refused.returncode != 0
    error_lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1, refused.stderr
    assert "belongs to project 'alpha'" in error_lines[0] and "--force" in error_lines[0]
    as_json = in_dir(agent, beta, "deploy", "--json")
    assert json.loads(as_json.stdout)["error"]["code"] == "owned_by_another_project"
    # alpha's function is untouched, still one version, still alpha's.
    assert hyac(agent.url, agent.token, "invoke", "hello").stdout.strip() == "from alpha"
    listed = json.loads(hyac(agent.url, agent.token, "ls", "--json").stdout)
    assert [(f["name"], f["project"], f["versions"]) for f in listed] == [("hello", "alpha", 1)]

    # The owner itself deploys as often as it likes.
    (alpha / "functions/hello.py").write_text("def main(context):\n    return 'alpha v2'\n")
    again = in_dir(agent, alpha, "deploy")
    assert again.returncode == 0, again.stderr

    taken = in_dir(agent, beta, "deploy", "--force")
    assert taken.returncode == 0, taken.stderr
    assert hyac(agent.url, agent.token, "invoke", "hello").stdout.strip() == "from beta"
    listed = json.loads(hyac(agent.url, agent.token, "ls", "--json").stdout)
    assert [(f["name"], f["project"]) for f in listed] == [("hello", "beta")]
    # ... and now alpha is the one refused.
    assert in_dir(agent, alpha, "deploy").returncode != 0


def test_take_over_in_the_manifest_acts_as_force(agent: RunningAgent, tmp_path: Path) -> None:
    alpha = make_project(tmp_path / "alpha", "alpha", "from alpha")
    beta = make_project(tmp_path / "beta", "beta", "from beta", extra="take_over = true\n")
    assert in_dir(agent, alpha, "deploy").returncode == 0
    taken = in_dir(agent, beta, "deploy")
    assert taken.returncode == 0, taken.stderr
    assert hyac(agent.url, agent.token, "invoke", "hello").stdout.strip() == "from beta"


def test_changing_the_language_of_a_function_needs_force(
    agent: RunningAgent, tmp_path: Path
) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed (apt-get install nodejs); the node20 runtime cannot run")
    python = make_project(tmp_path / "py", "demo", "from python")
    node = make_project(tmp_path / "js", "demo", "from node", runtime="node20")
    assert in_dir(agent, python, "deploy").returncode == 0
    refused = in_dir(agent, node, "deploy")
    assert refused.returncode != 0
    assert f"runs on {RUNTIME}" in refused.stderr and "--force" in refused.stderr
    assert hyac(agent.url, agent.token, "invoke", "hello").stdout.strip() == "from python"
    forced = in_dir(agent, node, "deploy", "--force")
    assert forced.returncode == 0, forced.stderr
    assert hyac(agent.url, agent.token, "invoke", "hello").stdout.strip() == "from node"


def test_rm_asks_on_a_terminal_and_not_in_scripts(agent: RunningAgent, tmp_path: Path) -> None:
    alpha = make_project(tmp_path / "alpha", "alpha", "from alpha")
    assert in_dir(agent, alpha, "deploy").returncode == 0

    # On a terminal: a question, and "n" keeps the function.
    primary, secondary = os.openpty()
    env = {**os.environ, "HYAC_URL": agent.url, "HYAC_TOKEN": agent.token, "NO_COLOR": "1"}
    process = subprocess.Popen([sys.executable, "-m", "hyac_cli", "rm", "hello"], cwd=alpha,
                               env=env, stdin=secondary, stdout=secondary, stderr=secondary)
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 60
    while b"[y/N]" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 1)
        if ready:
            try:
                seen += os.read(primary, 1024)
            except OSError:
                break
    assert b"Delete function 'hello'" in seen, seen
    os.write(primary, b"n\n")
    assert process.wait(timeout=60) == 1
    os.close(primary)
    assert hyac(agent.url, agent.token, "invoke", "hello").stdout.strip() == "from alpha"

    # In a script (stdin not a terminal) --yes is not needed to proceed, and it is honoured.
    removed = in_dir(agent, alpha, "rm", "hello", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(hyac(agent.url, agent.token, "ls", "--json").stdout) == []


def test_a_store_from_before_projects_gains_the_column(tmp_path: Path) -> None:
    from hyac_agent.store import SqlStore
    from hyac_common.wire import FunctionConfig

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the functions table as an older agent made it
        db.execute("CREATE TABLE functions (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                   "tenant VARCHAR(63) NOT NULL, name VARCHAR(63) NOT NULL, "
                   "active_version INTEGER NOT NULL, created_at FLOAT NOT NULL, "
                   "updated_at FLOAT NOT NULL, "
                   "CONSTRAINT uq_function_tenant_name UNIQUE (tenant, name))")
        db.execute("INSERT INTO functions (tenant, name, active_version, created_at, updated_at)"
                   " VALUES ('t', 'old', 0, 1.0, 1.0)")
    store = SqlStore(f"sqlite:///{path}")
    try:
        store.create_schema()
        old = store.get_function("t", "old")
        assert old is not None and old.project is None
        config = FunctionConfig(runtime=RUNTIME)
        store.record_deploy("t", "old", "a" * 64, "functions/old.py", config, project="alpha")
        owned = store.get_function("t", "old")
        assert owned is not None and owned.project == "alpha"
        with pytest.raises(Exception, match="belongs to project 'alpha'"):
            store.record_deploy("t", "old", "b" * 64, "functions/old.py", config, project="beta")
    finally:
        store.close()
