from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hyac_cli.stubs import build_stubs, context_module_path, render_builtins

SAMPLE = Path(__file__).with_name("sample_context.py")
RUNTIME_CONTEXT = context_module_path()

# Installed beside the test interpreter (the venv's bin/), which need not be on PATH.
BASEDPYRIGHT = shutil.which("basedpyright") or shutil.which(
    "basedpyright", path=str(Path(sys.executable).parent)
)


def members(tree: ast.Module) -> dict[str, ast.AST]:
    """``{"Class.method": node, "function": node, ...}`` of a module's public surface."""
    found: dict[str, ast.AST] = {}

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                found[prefix + node.name] = node
                if isinstance(node, ast.ClassDef):
                    walk(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                found[prefix + node.target.id] = node
            elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                found[prefix + node.targets[0].id] = node

    walk(tree.body, "")
    return found


def bodies_are_stubs(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for statement in node.body:
                is_constant = isinstance(statement, ast.Expr) and isinstance(
                    statement.value, ast.Constant
                )
                if not is_constant:
                    return False
    return True


@pytest.fixture(scope="module")
def sample() -> tuple[str, dict[str, ast.AST]]:
    text = build_stubs(SAMPLE).module
    return text, members(ast.parse(text))


def test_sample_public_surface_is_kept(sample: tuple[str, dict[str, ast.AST]]) -> None:
    text, found = sample
    for name in [
        "SHIM_NAMES", "TIMEOUT", "Headers", "Reply", "Reply.__init__", "Reply.status", "Reply.kind",
        "Reply.size", "Reply.parse", "Reply.empty", "Reply.overridden", "Context", "Context.Info",
        "Context.Info.name", "Context.fetch", "Context.get", "helper",
    ]:
        assert name in found, name
    assert '"""Fetch a URL.' in text
    assert '"""The status."""' in text  # attribute docstrings survive
    assert "kind: Literal['json', 'text'] = 'json'" in text


def test_sample_private_names_are_dropped(sample: tuple[str, dict[str, ast.AST]]) -> None:
    text, found = sample
    for name in ["_Base", "_Secret", "_CACHE", "_private_helper", "Reply._helper", "Reply._hidden",
                 "Reply._private"]:
        assert name not in found, name
    assert "_Secret" not in text and "Gadget" not in text and "somewhere_else" not in text
    assert "import json" not in text and "import os" not in text  # used only in bodies


def test_sample_details(sample: tuple[str, dict[str, ast.AST]]) -> None:
    text, found = sample
    tree = ast.parse(text)
    assert bodies_are_stubs(tree)
    assert "from typing import Any, Literal, Optional, overload" in text
    assert "from decimal import Decimal" in text  # an import under TYPE_CHECKING that is used
    assert "def secret(self) -> Any: ..." in text  # private class in a signature
    assert "def gadget(self) -> Any: ..." in text  # a name a stub cannot import
    assert "def parse(text: str) -> Reply: ..." in text  # quotes dropped
    assert "when: float = ...," in text  # a default that is not a literal
    assert "def shared(self, x: int = 1) -> int:" in text  # inherited from a private base
    assert text.count("def overridden") == 1
    assert "extra: list[str]" in text and "body: Any" in text  # set in __init__ only
    assert "loaded_at: Any" in text
    get = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "get"]
    assert len(get) == 2  # the overloads, not the implementation
    fetch = found["Context.fetch"]
    assert isinstance(fetch, ast.AsyncFunctionDef)
    assert ast.unparse(fetch.args) == (
        "self, url: str, /, timeout: float=..., *rest: str, retries: int=3, **options: str"
    )


def test_generation_is_deterministic() -> None:
    assert build_stubs(SAMPLE) == build_stubs(SAMPLE)


def test_builtins_re_export_the_shim_names() -> None:
    stubs = build_stubs(SAMPLE)
    assert stubs.shim_names == ("Context", "Reply")
    tree = ast.parse(stubs.builtins)
    imported = [(a.name, a.asname) for n in tree.body if isinstance(n, ast.ImportFrom)
                for a in n.names]
    assert imported == [("Context", "Context"), ("Reply", "Reply")]
    assert "context: Context" in stubs.builtins


def test_builtins_without_a_context_class() -> None:
    text = render_builtins(("Thing",), ["Thing"])
    assert "context: Any" in text
    ast.parse(text)


def test_unreadable_module_is_a_clear_error(tmp_path: Path) -> None:
    from hyac_common.errors import HyacError

    with pytest.raises(HyacError, match="cannot read the runtime's context module"):
        build_stubs(tmp_path / "missing.py")


needs_runtime = pytest.mark.skipif(
    not RUNTIME_CONTEXT.is_file(), reason="runtimes/python/hyac_context.py is not there"
)


@needs_runtime
def test_runtime_context_module_has_every_public_member_in_its_stub() -> None:
    source = ast.parse(RUNTIME_CONTEXT.read_text())
    stubs = build_stubs()
    stub_tree = ast.parse(stubs.module)  # the stub is valid Python
    assert bodies_are_stubs(stub_tree)
    expected = {
        name for name, node in members(source).items()
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and not any(part.startswith("_") and not part.endswith("__") for part in name.split("."))
    }
    public = set(getattr(_load(RUNTIME_CONTEXT), "__all__", []))
    if public:
        expected = {n for n in expected if n.split(".")[0] in public}
    missing = expected - set(members(stub_tree))
    assert not missing
    assert "FunctionContext" in expected


@needs_runtime
def test_runtime_builtins_match_shim_names() -> None:
    module = _load(RUNTIME_CONTEXT)
    stubs = build_stubs()
    assert stubs.shim_names == tuple(module.SHIM_NAMES)
    tree = ast.parse(stubs.builtins)
    exported = [a.asname for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names
                if a.asname]
    assert exported == list(module.SHIM_NAMES)
    assert "context: FunctionContext" in stubs.builtins


@needs_runtime
@pytest.mark.skipif(BASEDPYRIGHT is None, reason="basedpyright is not installed (pip install basedpyright)")
def test_pyright_resolves_injected_names(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hyac_cli.main import app

    project = tmp_path / "proj"
    assert CliRunner().invoke(app, ["init", str(project)]).exit_code == 0
    (project / "functions" / "check.py").write_text(
        "def main(context: FunctionContext):\n"
        "    context.logger.info('x')\n"
        "    return context.Response(status=201, body=context.request.query)\n"
    )
    clean = subprocess.run([str(BASEDPYRIGHT)], cwd=project, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout
    (project / "functions" / "bad.py").write_text(
        "def main(c: FunctionContext):\n    return c.no_such_member\n"
    )
    flagged = subprocess.run([str(BASEDPYRIGHT)], cwd=project, capture_output=True, text=True)
    assert flagged.returncode != 0 and "no_such_member" in flagged.stdout


def _load(path: Path):  # noqa: ANN202 - a module
    spec = importlib.util.spec_from_file_location("hyac_context_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
