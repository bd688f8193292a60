"""Stubs tailored to a project: `hyac stubs [--check]`, and what type checkers make of them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hyac_cli.stubs import MODULE_NAME, context_module_path
from hyac_common.wire import DeployRequest, FunctionConfig

from .conftest import Run
from .fake_agent import FakeAgent

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BASEDPYRIGHT = shutil.which("basedpyright") or shutil.which("basedpyright", path=str(BIN))
MYPY = shutil.which("mypy", path=str(BIN)) or shutil.which("mypy")
STUB = f"typings/{MODULE_NAME}.pyi"

needs_runtime = pytest.mark.skipif(
    not context_module_path().is_file(), reason="runtimes/python/hyac_context.py is not there"
)
needs_pyright = pytest.mark.skipif(
    BASEDPYRIGHT is None, reason="basedpyright is not installed (pip install basedpyright)"
)


def deploy_elsewhere(fake: FakeAgent, tenant: str, name: str, env: dict[str, str]) -> None:
    """A deploy the project did not make: another checkout, another teammate."""
    entry = f"functions/{name}.py"
    request = DeployRequest(entry=entry, files_b64={entry: ""},
                            config=FunctionConfig(runtime="python3.11", env=env))
    fake._deploy(tenant, name, request)


def test_check_turns_stale_when_the_agent_learns_a_function(
    run: Run, project: Path, fake_agent: FakeAgent
) -> None:
    first = run("stubs")
    assert first.exit_code == 0, first.output
    assert f"wrote  {STUB}" in first.stdout and "created  pyrightconfig.json" in first.stdout
    fresh = run("stubs", "--check")
    assert fresh.exit_code == 0, fresh.output
    assert "up to date" in fresh.stdout

    deploy_elsewhere(fake_agent, "acme", "billing", {})
    stale = run("stubs", "--check")
    assert stale.exit_code == 1
    assert f"stale  {STUB}" in stale.stdout and "run `hyac stubs`" in stale.stderr

    assert run("stubs").exit_code == 0
    assert run("stubs", "--check").exit_code == 0
    assert 'FunctionName = _Literal["billing", "hello"]' in (project / STUB).read_text()


def test_env_names_come_from_the_manifest_and_the_agent(
    run: Run, project: Path, fake_agent: FakeAgent
) -> None:
    manifest = project / "hyac.toml"
    manifest.write_text(manifest.read_text() + '\n[functions.hello]\nenv = { REGION = "eu" }\n')
    deploy_elsewhere(fake_agent, "acme", "hello", {"API_URL": "https://x", "REGION": "us"})
    deploy_elsewhere(fake_agent, "other-tenant", "spy", {"SECRET_THING": "x"})
    assert run("stubs").exit_code == 0
    text = (project / STUB).read_text()
    assert 'EnvName = _Literal["API_URL", "REGION"]' in text
    assert "spy" not in text and "SECRET_THING" not in text
    assert "    env: Env\n" in text


def test_without_an_agent_the_project_alone_is_used(run: Run, project: Path) -> None:
    result = run("stubs")
    assert result.exit_code == 0
    assert "Warning: no agent is running" in result.stderr
    offline = run("stubs", "--check", "--offline")
    assert offline.exit_code == 0 and offline.stderr == ""


def _pyright(cwd: Path) -> tuple[int, list[dict]]:
    done = subprocess.run([str(BASEDPYRIGHT), "--outputjson"], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    report = json.loads(done.stdout)
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    return done.returncode, errors


@needs_runtime
@needs_pyright
def test_examples_type_check_and_typos_are_flagged(run: Run, tmp_path: Path) -> None:
    for example in ("hello", "todo"):
        root = tmp_path / example
        shutil.copytree(REPO / "examples" / example, root)
        assert run("stubs", str(root), "--offline").exit_code == 0
    code, errors = _pyright(tmp_path / "todo")
    assert (code, errors) == (0, [])

    hello = tmp_path / "hello"
    code, errors = _pyright(hello)
    assert (code, errors) == (0, [])
    (hello / "functions" / "typo.py").write_text(
        "def main(context: FunctionContext):\n    return {'x': context.nonexistent}\n"
    )
    code, errors = _pyright(hello)
    assert code == 1 and len(errors) == 1, errors
    assert "nonexistent" in errors[0]["message"]
    assert errors[0]["file"].endswith("typo.py") and errors[0]["range"]["start"]["line"] == 1

    # Names the project knows are Literal types: a misspelt one is an error.
    source = (
        "def main(context: FunctionContext):\n"
        "    context.env['GREETING']\n"
        "    return context.env['NOPE']\n"
    )
    enqueue = "def enqueue(" in (hello / STUB).read_text()
    if enqueue:  # the runtime has background tasks
        source += "\n\ndef later(context: FunctionContext):\n    context.enqueue('helo')\n"
    (hello / "functions" / "typo.py").write_text(source)
    code, errors = _pyright(hello)
    assert [e["range"]["start"]["line"] for e in errors] == [2, 6][: 1 + enqueue], errors
    assert "NOPE" in errors[0]["message"]


@needs_runtime
@pytest.mark.skipif(MYPY is None, reason="mypy is not installed (pip install mypy)")
def test_mypy_checks_the_explicit_import_style(run: Run, cli_environment: Path) -> None:
    assert run("init", "--template", "empty").exit_code == 0
    functions = cli_environment / "functions"
    (functions / "typed.py").write_text(
        "from hyac_context import FunctionContext, Response\n\n\n"
        "def main(context: FunctionContext) -> Response:\n"
        "    context.logger.info('%s', context.request.method)\n"
        "    return Response(200, body={'kv': context.kv.get('k')})\n"
    )
    command = [str(MYPY), "--no-incremental", "--cache-dir", "/dev/null"]
    clean = subprocess.run(command, cwd=cli_environment, capture_output=True, text=True,
                           timeout=120)
    assert clean.returncode == 0, clean.stdout
    (functions / "typed.py").write_text(
        "from hyac_context import FunctionContext\n\n\n"
        "def main(context: FunctionContext) -> object:\n    return context.nonexistent\n"
    )
    flagged = subprocess.run(command, cwd=cli_environment, capture_output=True, text=True,
                             timeout=120)
    assert flagged.returncode == 1 and "nonexistent" in flagged.stdout


@needs_runtime
@pytest.mark.skipif(MYPY is None, reason="mypy is not installed (pip install mypy)")
def test_mypy_accepts_stubs_that_know_env_names(run: Run, cli_environment: Path) -> None:
    assert run("init", "--template", "empty").exit_code == 0
    manifest = cli_environment / "hyac.toml"
    manifest.write_text(manifest.read_text() + '\n[functions.typed]\nenv = { REGION = "eu" }\n')
    typed = cli_environment / "functions" / "typed.py"
    typed.write_text(
        "from hyac_context import FunctionContext\n\n\n"
        "def main(context: FunctionContext) -> str:\n    return context.env['REGION']\n"
    )
    assert run("stubs", "--offline").exit_code == 0
    assert 'EnvName = _Literal["REGION"]' in (cli_environment / STUB).read_text()
    command = [str(MYPY), "--no-incremental", "--cache-dir", "/dev/null"]
    clean = subprocess.run(command, cwd=cli_environment, capture_output=True, text=True,
                           timeout=120)
    assert clean.returncode == 0, clean.stdout
    typed.write_text(typed.read_text().replace("'REGION'", "'REGOIN'"))
    flagged = subprocess.run(command, cwd=cli_environment, capture_output=True, text=True,
                             timeout=120)
    assert flagged.returncode == 1 and "REGOIN" in flagged.stdout, flagged.stdout
    assert f"{STUB}:" not in flagged.stdout
