"""The five-minute tour, as a user types it: the `hyac` CLI as a subprocess against a
real agent that `hyac agent up` started."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.waiting import eventually

HYAC = [sys.executable, "-m", "hyac_cli"]


def hyac(*args: str, cwd: Path | None = None, input: str | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HYAC, *args], cwd=cwd, input=input, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )


@pytest.fixture
def local_agent(isolation: Path) -> Iterator[dict]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    up = hyac("agent", "up", "--port", "0")
    assert up.returncode == 0, up.stderr
    status = hyac("agent", "status", "--json")
    info = json.loads(status.stdout)
    assert info["running"] is True and info["url"].startswith("http://127.0.0.1:")
    yield info
    down = hyac("agent", "down")
    assert down.returncode == 0, down.stderr


@pytest.fixture
def project(tmp_path: Path, local_agent: dict) -> Path:
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    result = hyac("init", "demo", "--runtime", runtime, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / "demo"


def test_init_writes_a_project(tmp_path: Path) -> None:
    result = hyac("init", "demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    root = tmp_path / "demo"
    for name in ("hyac.toml", "functions/hello.py", ".gitignore", "typings/hyac_context.pyi",
                 "typings/__builtins__.pyi"):
        assert (root / name).is_file(), name
    again = hyac("init", "demo", cwd=tmp_path)
    assert again.returncode != 0 and "already" in again.stderr.lower()
    assert "Traceback" not in again.stderr


def test_deploy_invoke_logs_versions_rollback_rm(project: Path, local_agent: dict) -> None:
    first = hyac("deploy", cwd=project)
    assert first.returncode == 0, first.stderr
    assert "hello" in first.stdout and "v1" in first.stdout
    unchanged = hyac("deploy", cwd=project)
    assert unchanged.returncode == 0 and "unchanged" in unchanged.stdout

    answer = hyac("invoke", "hello", "--data", '{"name": "Ada"}', cwd=project)
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout) == {"hello": "Ada"}
    by_query = hyac("invoke", "hello", "--method", "GET", "--query", "name=Bob")
    assert json.loads(by_query.stdout) == {"hello": "Bob"}
    from_stdin = hyac("invoke", "hello", "--data", "-", input='{"name": "Cy"}')
    assert json.loads(from_stdin.stdout) == {"hello": "Cy"}
    payload = project / "payload.json"
    payload.write_text('{"name": "Di"}')
    from_file = hyac("invoke", "hello", "--data", f"@{payload}")
    assert json.loads(from_file.stdout) == {"hello": "Di"}
    as_json = json.loads(hyac("invoke", "hello", "--json").stdout)
    assert as_json["ok"] is True and as_json["version"] == 1

    # the same function answers plain HTTP on the gateway
    gateway = httpx.post(f"{local_agent['url']}/default/hello", json={"name": "Eve"})
    assert gateway.status_code == 200 and gateway.json() == {"hello": "Eve"}

    logs = hyac("logs", "hello")
    assert logs.returncode == 0
    assert "greeting Ada" in logs.stdout and "v1" in logs.stdout and "req_" in logs.stdout
    records = [json.loads(line) for line in hyac("logs", "hello", "--json").stdout.splitlines()]
    assert {"greeting Ada", "greeting Eve"} <= {r["message"] for r in records}

    hello = project / "functions" / "hello.py"
    hello.write_text(hello.read_text().replace('{"hello": name}', '{"hi": name}'))
    second = hyac("deploy", cwd=project)
    assert "v2" in second.stdout
    assert json.loads(hyac("invoke", "hello", "--data", '{"name": "A"}').stdout) == {"hi": "A"}
    versions = hyac("versions", "hello", "--json")
    assert [v["version"] for v in json.loads(versions.stdout)] == [1, 2]
    rolled = hyac("rollback", "hello", "1")
    assert rolled.returncode == 0, rolled.stderr
    assert json.loads(hyac("invoke", "hello", "--data", '{"name": "A"}').stdout) == {"hello": "A"}
    listed = json.loads(hyac("ls", "--json").stdout)
    assert [(f["name"], f["active_version"]) for f in listed] == [("hello", 1)]
    # Deploying the project again (its code is v2's) makes v2 active again, and says so.
    redeployed = hyac("deploy", cwd=project)
    assert redeployed.returncode == 0 and "v2" in redeployed.stdout, redeployed.stdout
    assert "reactivated (was v1)" in redeployed.stdout
    assert json.loads(hyac("invoke", "hello", "--data", '{"name": "A"}').stdout) == {"hi": "A"}

    removed = hyac("rm", "hello", "--yes")
    assert removed.returncode == 0, removed.stderr
    gone = hyac("invoke", "hello")
    assert gone.returncode != 0 and "not found" in gone.stderr
    assert json.loads(hyac("ls", "--json").stdout) == []
    typo = hyac("logs", "helo")
    assert typo.returncode != 0 and "not found" in typo.stderr and "Traceback" not in typo.stderr


def test_function_error_prints_user_traceback(project: Path) -> None:
    (project / "functions" / "oops.py").write_text(
        "def main(context):\n    items = []\n    return items[3]\n"
    )
    assert hyac("deploy", cwd=project).returncode == 0
    result = hyac("invoke", "oops")
    assert result.returncode == 1
    assert 'File "functions/oops.py", line 3, in main' in result.stderr
    assert "IndexError: list index out of range" in result.stderr
    assert "bootstrap" not in result.stderr
    assert result.stdout == ""


def test_logs_follow_streams_live(project: Path) -> None:
    assert hyac("deploy", cwd=project).returncode == 0
    follower = subprocess.Popen(
        [*HYAC, "logs", "hello", "-f"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    seen: list[str] = []
    output = follower.stdout
    assert output is not None

    def read() -> None:
        for line in output:
            seen.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def shown(name: str, invoke: bool) -> bool:
        if invoke:
            assert hyac("invoke", "hello", "--query", f"name={name}", "--method", "GET").returncode == 0
        return any(f"greeting {name}" in line for line in list(seen))

    try:
        # Invoked until the follower shows it: then it is connected, and a line made
        # after that must arrive live.
        eventually(lambda: shown("live-one", invoke=True), timeout=30, interval=0.2)
        assert hyac("invoke", "hello", "--query", "name=live-two", "--method", "GET").returncode == 0
        eventually(lambda: shown("live-two", invoke=False), timeout=15)
    finally:
        follower.terminate()
        follower.wait(10)
        reader.join(10)  # it ends with the output
        output.close()


def test_bad_input_is_one_line_and_nonzero(project: Path, tmp_path: Path) -> None:
    manifest = project / "hyac.toml"
    original = manifest.read_text()
    manifest.write_text(original + "\n[functions.hello]\ntimout = 5\n")
    result = hyac("deploy", cwd=project)
    assert result.returncode != 0
    line = len(original.splitlines()) + 3
    assert f"hyac.toml:{line}" in result.stderr and "timout" in result.stderr
    assert "Traceback" not in result.stderr

    manifest.write_text(original + "\n[project\n")
    broken = hyac("deploy", cwd=project)
    assert broken.returncode != 0 and "hyac.toml" in broken.stderr
    manifest.write_text(original)

    (project / "functions" / "syntax.py").write_text("def main(context):\n    return (1,\n")
    syntax = hyac("deploy", cwd=project)
    assert syntax.returncode != 0
    assert "functions/syntax.py:2" in syntax.stderr or "functions/syntax.py:3" in syntax.stderr
    (project / "functions" / "syntax.py").unlink()

    (project / "functions" / "Bad Name.py").write_text("def main(context):\n    return 1\n")
    bad_name = hyac("deploy", cwd=project)
    assert bad_name.returncode != 0 and "Bad Name" in bad_name.stderr
    (project / "functions" / "Bad Name.py").unlink()

    missing = hyac("invoke", "nope")
    assert missing.returncode != 0 and "not found" in missing.stderr
    for result in (missing, bad_name, syntax, broken):
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    nowhere = hyac("deploy", cwd=tmp_path)
    assert nowhere.returncode != 0 and "hyac.toml" in nowhere.stderr


def test_agent_not_running_says_how_to_start_it(isolation: Path, tmp_path: Path) -> None:
    result = hyac("ls")
    assert result.returncode != 0
    assert "hyac agent up" in result.stderr
    assert "Traceback" not in result.stderr
    status = hyac("agent", "status", "--json")
    assert json.loads(status.stdout)["running"] is False
