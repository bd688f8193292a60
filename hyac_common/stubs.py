"""Editor stubs generated from the runtime's context module, the single source of truth.

``hyac_context.pyi`` mirrors the public API of ``runtimes/python/hyac_context.py``:
classes, annotated attributes (with their docstrings), method signatures and
docstrings, every body replaced by ``...``. Private names are dropped; an annotation
that mentions one becomes ``Any``. ``__builtins__.pyi`` re-exports the module's
``SHIM_NAMES`` and declares ``context``, so pyright resolves the names the runtime
injects into a function's file without an import.

Stubs may be *tailored* to a project (``ProjectFacts``: what ``hyac stubs`` learns from
hyac.toml and the agent). The module then also declares ``FunctionName``, ``EnvName``
and ``SecretName`` as ``Literal`` types, and the context's members that take or hold
such names use them: ``env`` becomes an ``Env`` mapping whose ``[...]`` only accepts
``EnvName`` (likewise ``secrets``), and the first parameter of ``invoke``/``enqueue`` (and their
``a``-prefixed async twins) becomes ``FunctionName``. A member the runtime does not have yet is simply not
rewritten; the aliases are written regardless, so the rewrite applies as soon as the
runtime grows the member.

``shim_prelude`` is the one-line import that editor tools (jedi in ``hyac complete`` and
``hyac lsp``) put before a function's source: the same ``SHIM_NAMES`` the runtime
injects, plus ``context``.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hyac_cli.pyi import StubWriter, assignment
from hyac_common.errors import HyacError
from hyac_common.paths import runtimes_dir

if TYPE_CHECKING:
    from hyac_cli.client import AgentClient
    from hyac_cli.manifest import Project

MODULE_NAME = "hyac_context"
STUBS_DIR = "typings"
DEFAULT_SHIM_NAMES = ("FunctionContext", "Response")
# Members of the context class rewritten for a project (see the module docstring).
NAMED_MAPPINGS = {"env": ("Env", "EnvName"), "secrets": ("Secrets", "SecretName")}
FUNCTION_NAME_METHODS = ("invoke", "ainvoke", "enqueue", "aenqueue")


@dataclass(frozen=True)
class ProjectFacts:
    """What a project's stubs know beyond the runtime: names, as sorted tuples."""

    tenant: str = "default"
    functions: tuple[str, ...] = ()  # the tenant's functions: deployed and in the project
    env: tuple[str, ...] = ()  # env names of the project's functions (hyac.toml and agent)
    secrets: tuple[str, ...] = ()  # the tenant's secret names, once the agent has secrets
    sources: tuple[str, ...] = field(default=(), compare=False)  # "project", "agent"


@dataclass(frozen=True)
class Stubs:
    module: str  # text of hyac_context.pyi
    builtins: str  # text of __builtins__.pyi
    shim_names: tuple[str, ...]
    context_class: str | None = None  # the class of ``context``, e.g. FunctionContext

    def files(self) -> dict[str, str]:
        return {f"{MODULE_NAME}.pyi": self.module, "__builtins__.pyi": self.builtins}

    def stale(self, directory: Path) -> list[Path]:
        """Files under ``directory`` that are missing or differ from these stubs."""
        found = []
        for name, text in self.files().items():
            path = directory / name
            try:
                current = path.read_text(encoding="utf-8")
            except OSError:
                current = None
            if current != text:
                found.append(path)
        return found

    def prelude(self) -> str:
        """The one-line shim editor tools put before a function's source."""
        return shim_prelude(self.shim_names, self.context_class)

    def write(self, directory: Path) -> list[Path]:
        """Write both files into ``directory`` (usually ``PROJECT/typings``)."""
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in self.files().items():
            path = directory / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
        return written


def context_module_path() -> Path:
    return runtimes_dir() / "python" / f"{MODULE_NAME}.py"


def build_stubs(source_path: Path | None = None, facts: ProjectFacts | None = None) -> Stubs:
    """Stubs for the runtime's context module (or the module at ``source_path``),
    tailored to a project when ``facts`` are given."""
    path = source_path or context_module_path()
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise HyacError(
            f"cannot read the runtime's context module {path}: {exc.strerror or exc} "
            "(set HYAC_RUNTIMES_DIR to the folder holding python/hyac_context.py)"
        ) from None
    try:
        tree = ast.parse(source, str(path))
    except SyntaxError as exc:
        raise HyacError(
            f"{path}:{exc.lineno}: cannot parse the context module: {exc.msg}"
        ) from None
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    header = (
        f"# Generated by `hyac stubs` from the runtime's {MODULE_NAME}.py "
        f"(sha256 {digest}). Do not edit.\n"
    )
    header = header.replace(f"{MODULE_NAME}.py", path.name)
    shims = shim_names(tree)
    classes = [
        node.name for node in tree.body
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_")
    ]
    context_class = context_class_of(shims, classes)
    block = ""
    if facts is not None:
        header += f"# Tailored to tenant {facts.tenant!r} by `hyac stubs`.\n"
        block = _tailor(tree, context_class, facts)
    writer = StubWriter(tree)
    classes = [name for name in writer.classes if name in writer.public]
    module_text = header + writer.render() + block
    return Stubs(module_text, header + render_builtins(shims, classes), shims, context_class)


def context_class_of(names: tuple[str, ...], classes: list[str]) -> str | None:
    """The class of the injected ``context``: the first ``*Context`` class."""
    candidates = ["FunctionContext", *names, *classes]
    return next((c for c in candidates if c in classes and c.endswith("Context")), None)


def shim_prelude(names: tuple[str, ...], context_class: str | None) -> str:
    """One line (so line numbers shift by exactly one) declaring what the runtime injects."""
    line = f"from {MODULE_NAME} import {', '.join(names)}"
    if context_class is not None:
        if context_class not in names:
            line += f"; from {MODULE_NAME} import {context_class}"
        line += f"; context: {context_class}"
    return line + "\n"


def _tailor(tree: ast.Module, context_class: str | None, facts: ProjectFacts) -> str:
    """Rewrite the context class's name-typed members in ``tree``; the block declaring
    the names, to append to the stub."""
    aliases = {
        "FunctionName": (facts.functions, f"A function of tenant {facts.tenant!r}."),
        "EnvName": (facts.env, "An environment variable declared for the project's functions."),
        "SecretName": (facts.secrets, f"A secret of tenant {facts.tenant!r}."),
    }
    known = {alias for alias, (names, _) in aliases.items() if names}
    cls = next(
        (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == context_class), None
    )
    mappings: list[tuple[str, str, str]] = []
    for node in cls.body if cls is not None else []:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            member = node.target.id
            if member in NAMED_MAPPINGS and NAMED_MAPPINGS[member][1] in known:
                mapping, alias = NAMED_MAPPINGS[member]
                node.annotation = ast.Name(mapping, ast.Load())
                mappings.append((member, mapping, alias))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            params = [*node.args.posonlyargs, *node.args.args][1:]  # after self
            if node.name in FUNCTION_NAME_METHODS and params and "FunctionName" in known:
                params[0].annotation = ast.Name("FunctionName", ast.Load())
    lines = [
        "",
        f"# -- Names of this project (tenant {facts.tenant!r}), from `hyac stubs` " + "-" * 10,
        "",
        "from collections.abc import Iterator as _Iterator, Mapping as _Mapping",
        "from typing import Literal as _Literal",
        "",
    ]
    for alias, (names, doc) in aliases.items():
        values = ", ".join(json.dumps(n) for n in names)
        lines += [f"{alias} = _Literal[{values}]" if names else f"{alias} = str", f'"""{doc}"""']
    for member, mapping, alias in mappings:
        lines += [
            "",
            f"class {mapping}(_Mapping[str, str]):",
            f'    """``context.{member}``: a read-only mapping whose keys are ``{alias}``."""',
            "",
            # Narrower than Mapping's key on purpose: a misspelt name is a type error.
            f"    def __getitem__(self, key: {alias}, /) -> str: ...  # type: ignore[override]",
            "    def __iter__(self) -> _Iterator[str]: ...",
            "    def __len__(self) -> int: ...",
        ]
    return "\n".join(lines) + "\n"


def shim_names(tree: ast.Module) -> tuple[str, ...]:
    """The module's ``SHIM_NAMES`` constant, or the documented default."""
    for node in tree.body:
        target, value = assignment(node)
        if target == "SHIM_NAMES" and value is not None:
            try:
                names = ast.literal_eval(value)
            except ValueError:
                break
            if isinstance(names, (tuple, list)) and all(isinstance(n, str) for n in names):
                return tuple(names)
    return DEFAULT_SHIM_NAMES


def render_builtins(names: tuple[str, ...], classes: list[str] | None = None) -> str:
    """``__builtins__.pyi``: the injected names, plus ``context`` for top-level code."""
    classes = list(DEFAULT_SHIM_NAMES) if classes is None else classes
    context_class = context_class_of(names, classes)
    lines = [
        '"""Names the Hyac runtime injects into every function file (no import needed)."""',
        "",
    ]
    if context_class is None:
        lines.append("from typing import Any")
    lines += [f"from {MODULE_NAME} import {name} as {name}" for name in names]
    if context_class is not None and context_class not in names:
        lines.append(f"from {MODULE_NAME} import {context_class}")
    lines += [
        "",
        f"context: {context_class or 'Any'}",
        '"""The context of the running invocation."""',
        "",
    ]
    return "\n".join(lines)


def project_facts(project: Project, agent: AgentClient | None = None) -> ProjectFacts:
    """The names ``project`` declares, plus what ``agent`` (if given) reports for its tenant.

    Env names come from each function's ``env`` table and, for functions the project
    holds, from the config of the version the agent serves; function names from the
    project and from ``GET /v1/functions``.
    """
    functions = set(project.functions)
    env = {key for spec in project.functions.values() for key in spec.config.get("env", {})}
    sources = ["project"]
    if agent is not None:
        sources.append("agent")
        deployed = agent.get("/v1/functions") or []
        functions.update(str(f["name"]) for f in deployed if f.get("name"))
        for summary in deployed:
            name = summary.get("name")
            if name not in project.functions:
                continue
            for version in agent.get(f"/v1/functions/{name}/versions") or []:
                if version.get("active"):
                    env.update((version.get("config") or {}).get("env") or {})
    secrets: list[str] = []
    if agent is not None:
        try:
            secrets = [str(n) for n in agent.get("/v1/secrets") or []]
        except HyacError:  # a viewer may not list secrets; an older agent has none
            secrets = []
    return ProjectFacts(
        project.tenant, tuple(sorted(functions)), tuple(sorted(env)), tuple(sorted(secrets)),
        tuple(sources),
    )
