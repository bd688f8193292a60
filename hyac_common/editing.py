"""Editor helpers shared by ``hyac complete``/``hyac lsp`` and the agent's editor API.

Positions follow jedi: ``line`` is 1-based, ``column`` 0-based.
"""

from __future__ import annotations

import ast
import re
from typing import Any

# A string argument whose values the tailored stubs know: `context.env["RE`, …
NAMED_ARGUMENT = re.compile(
    r"""\bcontext\.(?:(?P<mapping>env|secrets)(?:\[|\.get\()|a?(?P<call>invoke|enqueue)\()"""
    r"""\s*(?P<quote>["']?)(?P<prefix>[\w.-]*)$"""
)
ALIAS_OF = {"env": "EnvName", "secrets": "SecretName", "invoke": "FunctionName",
            "enqueue": "FunctionName"}


def literal_aliases(tree: ast.Module) -> dict[str, list[str]]:
    """``X = Literal["a", "b"]`` assignments of a module, as ``{"X": ["a", "b"]}``."""
    found: dict[str, list[str]] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Subscript)):
            continue
        head = node.value.value
        if (head.id if isinstance(head, ast.Name) else getattr(head, "attr", "")).lstrip(
            "_") != "Literal":
            continue
        items = node.value.slice
        elements = items.elts if isinstance(items, ast.Tuple) else [items]
        found[node.targets[0].id] = [
            e.value for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)
        ]
    return found


def line_of(source: str, line: int) -> str:
    lines = source.split("\n")
    return lines[line - 1] if 0 < line <= len(lines) else ""


def clamp(source: str, line: int, column: int) -> tuple[int, int]:
    """A position jedi accepts: inside the file, at most at the end of its line."""
    count = source.count("\n") + 1
    line = min(max(line, 1), count)
    return line, min(max(column, 0), len(line_of(source, line).rstrip("\r")))


def describe(name: Any) -> tuple[str, str] | None:
    """A jedi name for hover: its signature (or ``name: type``) and its docstring; None
    for a keyword."""
    if name.type == "keyword":
        return None
    doc = str(name.docstring(raw=True)).strip()
    signatures = [s.to_string() for s in name.get_signatures()]
    if signatures:
        head = "\n".join(signatures)
    elif name.type in ("instance", "statement"):
        inferred = name.infer()
        head = f"{name.name}: {inferred[0].name if inferred else 'Any'}"
        if not doc and inferred:
            doc = str(inferred[0].docstring(raw=True)).strip()
    else:
        head = f"{name.type} {name.name}"
    return head, doc
