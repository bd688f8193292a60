from __future__ import annotations

import json
from pathlib import Path

from .conftest import Run
from .fake_agent import FakeAgent


def deploy_twice(run: Run, project: Path) -> None:
    assert run("deploy").exit_code == 0
    (project / "functions/hello.py").write_text("def main(context):\n    return 2\n")
    assert run("deploy").exit_code == 0


def test_ls_table_and_json(run: Run, project: Path, fake_agent: FakeAgent) -> None:
    deploy_twice(run, project)
    result = run("ls")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split() == ["NAME", "ACTIVE", "VERSIONS", "RUNTIME", "SHA256", "UPDATED", "PROJECT"]
    assert row.split()[:4] == ["hello", "v2", "2", "python3.11"]
    assert len(row.split()[4]) == 12
    listed = json.loads(run("ls", "--json").stdout)
    assert listed[0]["name"] == "hello" and listed[0]["active_version"] == 2


def test_ls_empty(run: Run, fake_agent: FakeAgent) -> None:
    result = run("ls")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "No functions deployed yet" in result.stderr
    assert json.loads(run("ls", "--json").stdout) == []


def test_versions_marks_the_active_one(run: Run, project: Path, fake_agent: FakeAgent) -> None:
    deploy_twice(run, project)
    result = run("versions", "hello")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["VERSION", "SHA256", "RUNTIME", "CREATED"]
    assert lines[1].split()[:2] == ["*", "v2"]
    assert lines[2].split()[0] == "v1"
    found = json.loads(run("versions", "hello", "--json").stdout)
    assert [(v["version"], v["active"]) for v in found] == [(1, False), (2, True)]


def test_rollback(run: Run, project: Path, fake_agent: FakeAgent) -> None:
    deploy_twice(run, project)
    result = run("rollback", "hello", "v1")
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello  v1  active\n"
    assert json.loads(fake_agent.calls("POST", r".*/rollback")[0].content) == {"version": 1}
    assert json.loads(run("rollback", "hello", "2", "--json").stdout)["active_version"] == 2


def test_rollback_mistakes(run: Run, project: Path, fake_agent: FakeAgent) -> None:
    deploy_twice(run, project)
    bad = run("rollback", "hello", "latest")
    assert bad.exit_code == 2
    assert "invalid version 'latest'" in bad.stderr
    missing = run("rollback", "hello", "9")
    assert missing.exit_code == 1
    assert missing.stderr == "Error: function 'hello' has no version 9\n"


def test_rm(run: Run, project: Path, fake_agent: FakeAgent) -> None:
    assert run("deploy").exit_code == 0
    result = run("rm", "hello")  # stdin is not a terminal: no question asked
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello  deleted\n"
    assert fake_agent.calls("DELETE")[0].url.path == "/v1/functions/hello"
    again = run("rm", "hello", "--yes")
    assert again.exit_code == 1
    assert again.stderr == "Error: function 'hello' not found\n"


def test_rm_asks_on_a_terminal(run: Run, project: Path, fake_agent: FakeAgent, monkeypatch) -> None:
    from hyac_cli.terminal import Terminal

    assert run("deploy").exit_code == 0
    monkeypatch.setattr(Terminal, "stdin_is_tty", property(lambda self: True))
    declined = run("rm", "hello", input="n\n")
    assert declined.exit_code == 1
    assert fake_agent.calls("DELETE") == []
    accepted = run("rm", "hello", input="y\n")
    assert accepted.exit_code == 0
    assert len(fake_agent.calls("DELETE")) == 1


def test_unknown_function(run: Run, fake_agent: FakeAgent) -> None:
    result = run("versions", "ghost")
    assert result.exit_code == 1
    assert result.stderr == "Error: function 'ghost' not found\n"
