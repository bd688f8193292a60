"""`hyac invoke` has a fast path for scripts (hyac_cli/fast.py): the same command lines
must give the same stdout, stderr and exit status through it and through Typer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hyac_cli.fast import parse_invoke
from tests.e2e.test_cli_tour import HYAC, hyac, local_agent, project  # noqa: F401 - fixtures

FUNCTIONS = {
    "echo": """
def main(context):
    return {"method": context.request.method, "path": context.request.path,
            "query": context.request.query, "header": context.request.headers.get("x-probe"),
            "body": context.request.text(), "tenant": context.function.tenant}
""",
    "fails": "def main(context):\n    raise ValueError('no good')\n",
    "raw": "def main(context):\n    return bytes(range(256))\n",
    "broken": "import json\nSETTINGS = json.loads('{not json')\n\ndef main(context):\n    return 1\n",
}


def both(*args: str, cwd: Path, input: str | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run one command line both ways; they must agree, and the fast one is returned."""
    runs = []
    for fast in (True, False):
        extra = {} if fast else {"HYAC_NO_FAST_PATH": "1"}
        runs.append(subprocess.run(
            [*HYAC, *args], cwd=cwd, input=input, capture_output=True, text=True, timeout=60,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {}), **extra},
        ))
    fast_run, full_run = runs
    assert (fast_run.returncode, fast_run.stderr) == (full_run.returncode, full_run.stderr), args
    if "--json" in args:  # request ids and durations differ from run to run
        strip = ("request_id", "duration_ms", "task_id", "location")
        first, second = (json.loads(r.stdout) for r in runs)
        assert {k: v for k, v in first.items() if k not in strip} == \
               {k: v for k, v in second.items() if k not in strip}
    else:
        assert fast_run.stdout == full_run.stdout, args
    assert "Traceback (most recent call last)" not in fast_run.stderr or \
        {"fails", "broken"} & set(args)
    return fast_run


@pytest.fixture
def deployed(project: Path) -> Path:  # noqa: F811 - the fixture above
    for name, source in FUNCTIONS.items():
        (project / "functions" / f"{name}.py").write_text(source)
    result = hyac("deploy", cwd=project)
    assert result.returncode == 0, result.stderr
    return project


def test_the_fast_path_answers_like_the_full_one(deployed: Path, tmp_path: Path) -> None:
    seen = json.loads(both("invoke", "echo", "--data", '{"a": 1}', "-q", "k=v", "--query=x=y",
                           "-H", "X-Probe: yes", "--path", "sub/dir", cwd=deployed).stdout)
    assert seen == {"method": "POST", "path": "/sub/dir", "query": {"k": "v", "x": "y"},
                    "header": "yes", "body": '{"a": 1}', "tenant": "default"}
    assert json.loads(both("invoke", "echo", "-X", "put", "-d", "plain text",
                           cwd=deployed).stdout)["body"] == "plain text"
    assert json.loads(both("invoke", "echo", "-d", "-", cwd=deployed,
                           input="from stdin").stdout)["body"] == "from stdin"
    payload = tmp_path / "payload.json"
    payload.write_text('{"from": "file"}')
    assert json.loads(both("invoke", "echo", f"--data=@{payload}", cwd=deployed).stdout)["body"] \
        == '{"from": "file"}'
    assert json.loads(both("invoke", "echo", "--json", cwd=deployed).stdout)["ok"] is True
    raw = subprocess.run([*HYAC, "invoke", "raw"], cwd=deployed, capture_output=True, timeout=60)
    assert raw.returncode == 0 and raw.stdout == bytes(range(256))
    queued = both("invoke", "echo", "--async", "--json", cwd=deployed)
    assert json.loads(queued.stdout)["task_id"]


def test_failures_and_mistakes_read_the_same(deployed: Path) -> None:
    failed = both("invoke", "fails", cwd=deployed)
    assert failed.returncode == 1 and "ValueError: no good" in failed.stderr
    # A module that fails at import is a function error too: the user's file and line.
    broken = both("invoke", "broken", cwd=deployed)
    assert broken.returncode == 1 and broken.stdout == ""
    assert 'File "functions/broken.py", line 2, in <module>' in broken.stderr
    assert "JSONDecodeError" in broken.stderr
    for args in (
        ("invoke", "nosuch"),                       # not found
        ("invoke", "Bad Name"),                     # invalid name
        ("invoke", "echo", "-q", "novalue"),        # malformed query
        ("invoke", "echo", "--wait", "soon"),       # malformed duration
        ("invoke", "echo", "--tenant", "nobody"),   # another tenant
        ("invoke", "echo", "--data", "@/nonexistent/file"),
        ("invoke", "echo", "--callback-url", "http://x"),  # without --async
        ("invoke", "echo", "--bogus"),              # Typer's own parse errors
        ("invoke",),
        ("invoke", "echo", "--data"),
    ):
        result = both(*args, cwd=deployed)
        assert result.returncode != 0 and result.stderr.strip(), args
        assert "Traceback" not in result.stderr, args
    tenant = both("invoke", "echo", cwd=deployed, env={"HYAC_TENANT": "nobody"})
    assert tenant.returncode == 1 and "nobody" in tenant.stderr


def test_an_agent_that_is_gone_reads_the_same(deployed: Path) -> None:
    assert hyac("agent", "down").returncode == 0
    gone = both("invoke", "echo", cwd=deployed)
    assert gone.returncode != 0 and "agent" in gone.stderr
    assert hyac("agent", "up", "--port", "0").returncode == 0  # for the fixture's teardown


@pytest.mark.parametrize(("argv", "expected"), [
    (["invoke", "f"], {"name": "f"}),
    (["invoke", "-d", "-", "f", "-q", "a=1", "-q", "b=2", "--json"],
     {"name": "f", "data": "-", "query": ["a=1", "b=2"], "as_json": True}),
    (["invoke", "f", "--data=--x"], {"name": "f", "data": "--x"}),
    (["invoke", "f", "--help"], None),
    (["invoke", "f", "-h"], None),
    (["invoke", "f", "g"], None),
    (["invoke", "-dX", "f"], None),
    (["invoke", "f", "--json=1"], None),
    (["invoke", "f", "--data", "a", "--data", "b"], None),
    (["invoke", "--", "f"], None),
    (["deploy"], None),
    (["--version"], None),
])
def test_parse_invoke_takes_only_plain_command_lines(
    argv: list[str], expected: dict | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HYAC_TENANT", raising=False)
    assert parse_invoke(argv) == expected


def test_the_fast_path_imports_neither_typer_nor_httpx(tmp_path: Path) -> None:
    probe = (
        "import sys, atexit, json\n"
        "atexit.register(lambda: sys.__stdout__.write(json.dumps(sorted(sys.modules))))\n"
        "sys.argv = ['hyac', 'invoke', 'hello']\n"
        "from hyac_cli.fast import run\n"
        "run()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
        env={**os.environ, "HYAC_URL": "http://127.0.0.1:9", "HYAC_DATA_DIR": str(tmp_path)},
    )
    assert out.returncode != 0 and "agent" in out.stderr  # nothing listens on port 9
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert not loaded & {"typer", "click", "httpx", "pydantic", "hyac_common.wire"}
