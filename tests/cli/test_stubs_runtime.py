"""The generated stub and the runtime's context module must agree, member by member and
signature by signature: the runtime is inspected as imported, the stub read as a tree."""

from __future__ import annotations

import ast
import inspect
from typing import Any

import pytest

from hyac_cli.stubs import ProjectFacts, build_stubs, context_module_path

from .test_complete import runtime_module

pytestmark = pytest.mark.skipif(
    not context_module_path().is_file(), reason="runtimes/python/hyac_context.py is not there"
)

Surface = dict[str, Any]  # "Class.member" -> a comparable description


def _norm(annotation: Any) -> str | None:
    if annotation is inspect.Parameter.empty or annotation is inspect.Signature.empty:
        return None
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return ast.unparse(ast.parse(text, mode="eval"))


def _runtime_signature(function: Any) -> tuple[Any, ...]:
    signature = inspect.signature(function)
    params = []
    for p in signature.parameters.values():
        default = None
        if p.default is not inspect.Parameter.empty:
            try:
                ast.literal_eval(repr(p.default))
                default = repr(p.default)
            except (ValueError, SyntaxError):
                default = "..."
        params.append((p.name, p.kind.name, _norm(p.annotation), default))
    return tuple(params), _norm(signature.return_annotation)


def runtime_surface(module: Any) -> Surface:
    surface: Surface = {}
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj):
            surface[name] = "class"
            for attr, annotation in obj.__dict__.get("__annotations__", {}).items():
                if not attr.startswith("_"):
                    surface[f"{name}.{attr}"] = ("attribute", _norm(annotation))
            for attr, value in vars(obj).items():
                private = attr.startswith("_") and not attr.endswith("__")
                if private or f"{name}.{attr}" in surface:
                    continue
                function = getattr(value, "__func__", value)
                if inspect.isfunction(function):
                    if function.__module__ != module.__name__:
                        continue  # added by typing.Protocol, not written in the module
                    asynchronous = inspect.iscoroutinefunction(function)
                    surface[f"{name}.{attr}"] = ("async def" if asynchronous else "def",
                                                 *_runtime_signature(function))
                elif not attr.startswith("__"):
                    surface[f"{name}.{attr}"] = "class attribute"
        elif inspect.isfunction(obj):
            surface[name] = ("def", *_runtime_signature(obj))
        else:
            surface[name] = "constant"
    return surface


def _stub_signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[Any, ...]:
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    kinds = ["POSITIONAL_ONLY"] * len(args.posonlyargs) + ["POSITIONAL_OR_KEYWORD"] * len(args.args)
    rows = list(zip(positional, kinds, defaults, strict=True))
    if args.vararg:
        rows.append((args.vararg, "VAR_POSITIONAL", None))
    rows += [(a, "KEYWORD_ONLY", d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if args.kwarg:
        rows.append((args.kwarg, "VAR_KEYWORD", None))
    params = tuple(
        (arg.arg, kind, ast.unparse(arg.annotation) if arg.annotation else None,
         None if default is None else ("..." if isinstance(default, ast.Constant)
                                       and default.value is Ellipsis else ast.unparse(default)))
        for arg, kind, default in rows
    )
    return params, ast.unparse(node.returns) if node.returns else None


def stub_surface(text: str) -> Surface:
    surface: Surface = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.ClassDef):
            surface[node.name] = "class"
            for child in node.body:
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    kind = "async def" if isinstance(child, ast.AsyncFunctionDef) else "def"
                    surface[f"{node.name}.{child.name}"] = (kind, *_stub_signature(child))
                elif isinstance(child, ast.AnnAssign) and isinstance(child.target, ast.Name):
                    surface[f"{node.name}.{child.target.id}"] = (
                        "attribute", ast.unparse(child.annotation))
                elif isinstance(child, ast.Assign):
                    surface[f"{node.name}.{child.targets[0].id}"] = "class attribute"  # type: ignore[attr-defined]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            surface[node.name] = ("def", *_stub_signature(node))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name) and not target.id.startswith("_"):
                surface[target.id] = "constant"
    return surface


def test_stub_and_runtime_agree_on_every_member_and_signature() -> None:
    runtime = runtime_surface(runtime_module())
    stub = stub_surface(build_stubs().module)
    assert "FunctionContext.remaining_time" in runtime and "KV.aget" in runtime
    assert runtime.keys() == stub.keys(), (
        f"only in the runtime: {sorted(runtime.keys() - stub.keys())}; "
        f"only in the stub: {sorted(stub.keys() - runtime.keys())}"
    )
    differ = {name: (runtime[name], stub[name]) for name in runtime if runtime[name] != stub[name]}
    assert not differ


def test_a_tailored_stub_changes_only_the_named_members() -> None:
    facts = ProjectFacts("acme", ("hello", "report"), ("REGION",), ("API_KEY",))
    tailored = stub_surface(build_stubs(facts=facts).module)
    plain = stub_surface(build_stubs().module)
    added = tailored.keys() - plain.keys()
    assert {"FunctionName", "EnvName", "SecretName", "Env"} <= added
    assert all(name.split(".")[0] in {"Env", "Secrets", "FunctionName", "EnvName", "SecretName"}
               for name in added)
    changed = {name for name in plain if plain[name] != tailored[name]}
    assert "FunctionContext.env" in changed
    assert tailored["FunctionContext.env"] == ("attribute", "Env")
    allowed = {f"FunctionContext.{name}" for name in
               ("env", "secrets", "invoke", "ainvoke", "enqueue", "aenqueue")}
    assert changed <= allowed
    for method in ("invoke", "ainvoke", "enqueue", "aenqueue"):
        if f"FunctionContext.{method}" in tailored:  # once the runtime has it
            params = tailored[f"FunctionContext.{method}"][1]
            assert params[1][2] == "FunctionName"
