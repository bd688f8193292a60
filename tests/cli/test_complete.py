"""`hyac complete` and the jedi logic behind it (hyac_cli/completion.py)."""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path
from types import ModuleType

import pytest

from hyac_cli.completion import Workspace
from hyac_cli.stubs import context_module_path

from .conftest import Run


def runtime_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hyac_context_for_tests", context_module_path())
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runtime_members(class_name: str) -> set[str]:
    """Public members of a class of the runtime's context module, found by inspection:
    methods and class attributes, plus the instance attributes it declares."""
    cls = getattr(runtime_module(), class_name)
    names = {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}
    names |= {name for name in getattr(cls, "__annotations__", {}) if not name.startswith("_")}
    return names


def member_class(attribute: str) -> str:
    """The runtime class of ``FunctionContext.<attribute>``, from its annotation."""
    annotation = runtime_module().FunctionContext.__annotations__[attribute]
    return annotation if isinstance(annotation, str) else annotation.__name__


@pytest.fixture
def initialised(run: Run, cli_environment: Path) -> Path:
    assert run("init").exit_code == 0
    return cli_environment


@pytest.mark.parametrize(
    ("expression", "class_name"),
    [("context.", "FunctionContext"), ("context.request.", None), ("context.kv.", None)],
)
def test_completions_list_the_runtime_members(
    run: Run, initialised: Path, expression: str, class_name: str | None
) -> None:
    if class_name is None:
        class_name = member_class(expression.split(".")[1])
    path = initialised / "functions" / "probe.py"
    path.write_text(f"def main(context):\n    x = {expression}\n")
    result = run("complete", str(path), "2", str(len(f"    x = {expression}")))
    assert result.exit_code == 0, result.output
    assert set(result.stdout.split()) == runtime_members(class_name)


def test_annotated_top_level_and_json(run: Run, initialised: Path) -> None:
    path = initialised / "functions" / "probe.py"
    path.write_text("async def main(ctx: FunctionContext):\n    ctx.kv.a\ncontext.function.na")
    result = run("complete", str(path), "2", "12", "--json")
    items = json.loads(result.stdout)
    assert [i["name"] for i in items] == ["adelete", "aget", "alist", "aset"]
    assert items[1] == {"name": "aget", "complete": "get", "type": "function",
                        "description": "def aget"}
    top = run("complete", str(path), "3", "19")
    assert top.stdout.split() == ["name"]


def test_string_completions_know_the_project(run: Run, initialised: Path) -> None:
    (initialised / "hyac.toml").write_text(
        (initialised / "hyac.toml").read_text()
        + '\n[functions.hello]\nenv = { REGION = "eu", RETRIES = "3" }\n'
    )
    assert run("stubs", "--offline").exit_code == 0
    path = initialised / "functions" / "probe.py"
    path.write_text('def main(context):\n    context.env["RE\n    context.env.get(\n')
    result = run("complete", str(path), "2", "19", "--json")
    assert [(i["name"], i["complete"]) for i in json.loads(result.stdout)] == [
        ("REGION", "GION"), ("RETRIES", "TRIES")]
    bare = run("complete", str(path), "3", "20", "--json")
    assert [(i["name"], i["complete"]) for i in json.loads(bare.stdout)] == [
        ("REGION", '"REGION"'), ("RETRIES", '"RETRIES"')]


def test_outside_a_project_uses_generated_stubs(run: Run, cli_environment: Path) -> None:
    path = cli_environment / "loose.py"
    path.write_text("def main(context):\n    context.request.me\n")
    result = run("complete", str(path), "2", "22")
    assert result.stdout.split() == ["method"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["9", "0"], "line 9 is outside"), (["1", "99"], "column 99 is outside")],
)
def test_positions_outside_the_file(run: Run, cli_environment: Path, args: list[str],
                                    message: str) -> None:
    path = cli_environment / "f.py"
    path.write_text("x = 1\n")
    result = run("complete", str(path), *args)
    assert result.exit_code == 2 and message in result.stderr


def test_missing_file(run: Run, cli_environment: Path) -> None:
    result = run("complete", str(cli_environment / "nope.py"), "1", "0")
    assert result.exit_code == 1 and "nope.py" in result.stderr


def test_definitions_land_in_the_stubs(initialised: Path) -> None:
    path = initialised / "functions" / "hello.py"
    source = path.read_text()
    workspace = Workspace.around(path)
    line = next(i for i, text in enumerate(source.splitlines(), 1) if "context.logger.info" in text)
    column = source.splitlines()[line - 1].index("info")
    (found,) = workspace.definitions(source, path, line, column)
    assert found.path == initialised / "typings" / "hyac_context.pyi"
    stub_line = found.path.read_text().splitlines()[found.line - 1]
    assert "def info(" in stub_line


def test_function_names_complete_in_enqueue(run: Run, initialised: Path) -> None:
    if not hasattr(runtime_module().FunctionContext, "enqueue"):
        pytest.skip("the runtime's context has no enqueue yet")
    path = initialised / "functions" / "probe.py"
    path.write_text("def main(context):\n    context.enqueue('he\n")
    result = run("complete", str(path), "2", "23", "--json")
    assert [(i["name"], i["complete"]) for i in json.loads(result.stdout)] == [("hello", "llo")]


def test_diagnostics(initialised: Path) -> None:
    path = initialised / "functions" / "probe.py"
    source = (
        "async def main(ctx: FunctionContext):\n"
        "    ctx.request.nope\n"
        "    ctx.logger.info('x'); ctx.__class__; ctx.Response(200)\n"
        "    other.anything\n"
        "    return context.kv.gett('a')\n"
    )
    problems = Workspace.around(path).diagnostics(source, path)
    assert [(p.line, p.column, p.end_column, p.message) for p in problems] == [
        (2, 16, 20, "Request has no member 'nope'"),
        (5, 22, 26, "KV has no member 'gett'"),
    ]
    assert Workspace.around(path).diagnostics("def main(context, extra):\n    pass\n", path)[
        0].message.startswith("main must take exactly one argument")
    assert Workspace.around(path).diagnostics("def main(context, extra=1):\n    pass\n", path) == []
