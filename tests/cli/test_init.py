from __future__ import annotations

import ast
import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from hyac_cli.manifest import load_project
from hyac_cli.stubs import context_module_path

from .conftest import Run


def test_init_writes_a_working_project(run: Run, cli_environment: Path) -> None:
    result = run("init", "demo")
    assert result.exit_code == 0, result.output
    root = cli_environment / "demo"
    for rel in ["hyac.toml", "functions/hello.py", ".gitignore", "pyrightconfig.json",
                ".vscode/settings.json", "typings/hyac_context.pyi", "typings/__builtins__.pyi"]:
        assert (root / rel).is_file(), rel
        assert f"created  {rel}" in result.stdout
    project = load_project(root)
    assert project.name == "demo"
    assert project.tenant == "default"
    assert project.runtime == f"python3.{sys.version_info.minor}"
    assert list(project.functions) == ["hello"]
    compile((root / "functions/hello.py").read_text(), "hello.py", "exec")
    assert json.loads((root / "pyrightconfig.json").read_text())["stubPath"] == "typings"
    settings = json.loads((root / ".vscode/settings.json").read_text())
    assert settings["python.analysis.stubPath"] == "typings"
    for stub in ["hyac_context.pyi", "__builtins__.pyi"]:
        ast.parse((root / "typings" / stub).read_text())
    assert "context: FunctionContext" in (root / "typings/__builtins__.pyi").read_text()


@pytest.mark.parametrize(
    ("runtime", "named", "foreign"),
    [("node20", "functions/NAME.js", ".py"), ("deno", "functions/NAME.ts", ".py"),
     ("python3.12", "functions/NAME.py", ".js")],
)
def test_init_manifest_names_the_runtime_s_function_files(
    run: Run, cli_environment: Path, runtime: str, named: str, foreign: str
) -> None:
    result = run("init", "demo", "--runtime", runtime, "--template", "empty")
    assert result.exit_code == 0, result.output
    text = (cli_environment / "demo" / "hyac.toml").read_text()
    assert named in text and foreign not in text, text
    assert load_project(cli_environment / "demo").runtime == runtime


def test_init_in_the_current_directory(run: Run, cli_environment: Path) -> None:
    result = run("init", "--runtime", "python3.12", "--template", "empty")
    assert result.exit_code == 0, result.output
    project = load_project(cli_environment)
    assert project.runtime == "python3.12"
    assert project.name == cli_environment.name
    assert project.functions == {}
    pyright = json.loads((cli_environment / "pyrightconfig.json").read_text())
    assert pyright["pythonVersion"] == "3.12"


def test_init_refuses_to_overwrite_a_manifest(run: Run, cli_environment: Path) -> None:
    (cli_environment / "hyac.toml").write_text("[project]\nname = 'mine'\n")
    result = run("init")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ")
    assert "hyac.toml already exists" in result.stderr
    assert (cli_environment / "hyac.toml").read_text() == "[project]\nname = 'mine'\n"


def test_init_keeps_existing_files_and_settings(run: Run, cli_environment: Path) -> None:
    (cli_environment / "functions").mkdir()
    (cli_environment / "functions/hello.py").write_text("def main(context):\n    return 'mine'\n")
    (cli_environment / ".vscode").mkdir()
    (cli_environment / ".vscode/settings.json").write_text('{"editor.tabSize": 2}')
    result = run("init")
    assert result.exit_code == 0, result.output
    assert "kept     functions/hello.py" in result.stdout
    assert "'mine'" in (cli_environment / "functions/hello.py").read_text()
    settings = json.loads((cli_environment / ".vscode/settings.json").read_text())
    assert settings == {"editor.tabSize": 2, "python.analysis.stubPath": "typings"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--template", "nope"], "unknown template 'nope'"),
        (["--runtime", "cobol85"], "unknown runtime 'cobol85'"),
    ],
)
def test_init_rejects_bad_options(run: Run, args: list[str], message: str) -> None:
    result = run("init", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_init_without_runtime_still_creates_the_project(
    run: Run, cli_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYAC_RUNTIMES_DIR", str(cli_environment / "nowhere"))
    result = run("init", "demo")
    assert result.exit_code == 0
    assert "Warning: editor stubs not written" in result.stderr
    assert (cli_environment / "demo/hyac.toml").is_file()


def test_stubs_command_refreshes_typings(run: Run, cli_environment: Path) -> None:
    run("init")
    stub = cli_environment / "typings/hyac_context.pyi"
    stub.write_text("stale")
    result = run("stubs")
    assert result.exit_code == 0, result.output
    assert "wrote  typings/hyac_context.pyi" in result.stdout
    assert stub.read_text() != "stale"


def test_stubs_command_outside_a_project(run: Run) -> None:
    result = run("stubs")
    assert result.exit_code == 2
    assert "run `hyac init`" in result.stderr


class _Host:
    def __init__(self) -> None:
        self.lines: list[tuple[Any, ...]] = []

    def log(self, request_id: Any, stream: str, message: str, level: Any = None) -> None:
        self.lines.append((stream, level, message))

    def call(self, *args: Any) -> Any:
        raise AssertionError("the hello template makes no host calls")

    def format_exception(self, exc: BaseException) -> str:
        return repr(exc)


@pytest.mark.skipif(not context_module_path().is_file(), reason="the Python runtime is not there")
@pytest.mark.parametrize(
    ("query", "headers", "body", "expected"),
    [
        ({}, {}, b"", "world"),
        ({"name": "Bob"}, {}, b"", "Bob"),
        ({}, {"content-type": "application/json"}, b'{"name": "Ada"}', "Ada"),
        ({}, {"content-type": "text/plain"}, b"Ada", "world"),
    ],
)
def test_hello_template_runs_with_the_real_context(
    run: Run, cli_environment: Path, query: dict, headers: dict, body: bytes, expected: str
) -> None:
    run("init")
    spec = importlib.util.spec_from_file_location("hyac_context", context_module_path())
    assert spec and spec.loader
    hyac_context = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hyac_context)
    namespace: dict[str, Any] = {n: getattr(hyac_context, n) for n in hyac_context.SHIM_NAMES}
    source = (cli_environment / "functions/hello.py").read_text()
    exec(compile(source, "hello.py", "exec"), namespace)
    host = _Host()
    context = hyac_context.FunctionContext(
        request=hyac_context.Request("POST", "/", query, headers, body),
        logger=hyac_context.Logger(host, "req_1"),
        env={}, kv=hyac_context.KV(host, "req_1"),
        function=hyac_context.FunctionInfo(name="hello"), deadline=0.0,
    )
    assert asyncio.run(namespace["main"](context)) == {"hello": expected}
    assert host.lines == [("logger", "INFO", f"greeting {expected}")]
