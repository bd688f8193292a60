"""Diagnostics for a function file, from its syntax tree and the stubs alone (no jedi):
members of ``context`` the stubs do not have, and an entry point the platform cannot
call. Shared by ``hyac lsp``; positions are jedi's (1-based lines, 0-based columns).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based
    column: int  # 0-based
    end_line: int
    end_column: int
    message: str
    severity: str = "error"  # or "warning"



def member_table(stub: ast.Module) -> tuple[str | None, dict[str, dict[str, str | None]]]:
    """The context class, and ``{class: {member: class of its value or None}}`` for the
    classes whose every member the stub lists (no base classes from elsewhere)."""
    classes = {n.name: n for n in stub.body if isinstance(n, ast.ClassDef)}
    table: dict[str, dict[str, str | None]] = {}
    for name, node in classes.items():
        if any(not (isinstance(b, ast.Name) and b.id in classes) for b in node.bases):
            continue  # inherits members the stub does not show
        members: dict[str, str | None] = {}
        for child in node.body:
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                members[child.name] = None
            elif isinstance(child, ast.AnnAssign) and isinstance(child.target, ast.Name):
                annotation = child.annotation
                if (isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr)
                        and isinstance(annotation.right, ast.Constant)
                        and annotation.right.value is None):
                    annotation = annotation.left  # `Task | None`: the members of Task
                kind = annotation.id if isinstance(annotation, ast.Name) else None
                members[child.target.id] = kind if kind in classes else None
            elif isinstance(child, ast.Assign):
                for target in child.targets:
                    if isinstance(target, ast.Name):
                        members[target.id] = None
        table[name] = members
    for name, node in classes.items():  # bases declared in the same stub
        if name in table:
            for base in node.bases:
                if isinstance(base, ast.Name):
                    for member, kind in table.get(base.id, {}).items():
                        table[name].setdefault(member, kind)
    context = None
    for statement in stub.body:
        if isinstance(statement, ast.AnnAssign) and getattr(statement.target, "id", None) == "context":
            context = getattr(statement.annotation, "id", None)
    if context is None:
        context = next((c for c in classes if c.endswith("Context")), None)
    return context, table


def unknown_members(tree: ast.Module, stub_path: Path) -> list[Problem]:
    """``context.x`` (and ``context.request.x``, …) where the stubs have no ``x``."""
    try:
        stub = ast.parse(stub_path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return []
    context_class, table = member_table(stub)
    if context_class is None or context_class not in table:
        return []
    roots = {"context"}
    for node in ast.walk(tree):  # parameters annotated with the context class
        if isinstance(node, ast.arg) and isinstance(node.annotation, (ast.Name, ast.Constant)):
            annotation = node.annotation
            text = annotation.id if isinstance(annotation, ast.Name) else annotation.value
            if text == context_class:
                roots.add(node.arg)
    problems: list[Problem] = []
    seen: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in seen:
            continue
        chain: list[ast.Attribute] = []
        current: ast.expr = node
        while isinstance(current, ast.Attribute):
            chain.append(current)
            seen.add(id(current))
            current = current.value
        if not (isinstance(current, ast.Name) and current.id in roots):
            continue
        kind: str | None = context_class
        for attribute in reversed(chain):
            members = table.get(kind or "")
            if members is None:
                break
            name = attribute.attr
            if name.startswith("__") and name.endswith("__"):
                break
            if name not in members:
                line = attribute.end_lineno or attribute.lineno
                end = attribute.end_col_offset or 0
                problems.append(Problem(
                    line, end - len(name), line, end,
                    f"{kind} has no member {name!r}", "error",
                ))
                break
            kind = members[name]
    return problems


def handler_problems(tree: ast.Module, handler: str) -> list[Problem]:
    """A missing entry point, or one that cannot be called with the context alone."""
    found = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == handler:
            found = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.ClassDef, ast.Import,
                               ast.ImportFrom)) and handler in _bound(node):
            return []  # bound some other way: trust the author
    if found is None:
        return [Problem(1, 0, 1, 0, f"no top-level {handler}(context): the platform calls "
                                    f"`def {handler}(context)` for each request", "warning")]
    args = found.args
    positional = [*args.posonlyargs, *args.args]
    required = len(positional) - len(args.defaults)
    required_kwonly = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                       if d is None]
    if (not positional and args.vararg is None) or required > 1 or required_kwonly:
        line = found.lineno
        column = found.col_offset + (6 if isinstance(found, ast.AsyncFunctionDef) else 0) + 4
        return [Problem(line, column, line, column + len(handler),
                        f"{handler} must take exactly one argument, the context: "
                        f"def {handler}(context)", "error")]
    return []


def _bound(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.ClassDef):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    else:
        targets = []
    return {t.id for t in targets if isinstance(t, ast.Name)}
