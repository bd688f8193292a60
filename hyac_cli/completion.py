"""Editor intelligence for function files, shared by ``hyac complete`` and ``hyac lsp``.

Jedi does not read ``typings/__builtins__.pyi``, so every query runs on the source with
the stubs' one-line prelude put before it (``from hyac_context import FunctionContext,
Response; context: FunctionContext``, the names the runtime injects) and a call
``main(context)`` put after it, from which jedi infers an unannotated ``context``
parameter. Positions move by exactly one line on the way in and back out.

Positions follow jedi: ``line`` is 1-based, ``column`` 0-based, both in the user's file.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyac_cli.stubs import MODULE_NAME, STUBS_DIR, Stubs, build_stubs

if TYPE_CHECKING:
    import jedi

SHIFT = 1  # lines the prelude adds before the user's first line
DEFAULT_HANDLER = "main"

# A string argument whose values the tailored stubs know: `context.env["RE`, …
_NAMED_ARGUMENT = re.compile(
    r"""\bcontext\.(?:(?P<mapping>env|secrets)(?:\[|\.get\()|a?(?P<call>invoke|enqueue)\()"""
    r"""\s*(?P<quote>["']?)(?P<prefix>[\w.-]*)$"""
)
_ALIAS_OF = {"env": "EnvName", "secrets": "SecretName", "invoke": "FunctionName",
             "enqueue": "FunctionName"}


@dataclass(frozen=True)
class Completion:
    name: str
    complete: str  # what to insert after the cursor
    type: str  # jedi's kind: function, instance, module, keyword, statement, ...
    description: str
    replace: int = 0  # characters before the cursor the item replaces (0: it extends them)
    insert: str | None = None  # the text replacing those characters, if replace > 0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "complete": self.complete, "type": self.type,
                "description": self.description}


@dataclass(frozen=True)
class Location:
    path: Path
    line: int  # 1-based
    column: int  # 0-based


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based
    column: int  # 0-based
    end_line: int
    end_column: int
    message: str
    severity: str = "error"  # or "warning"


@dataclass(frozen=True)
class Signature:
    label: str
    parameters: list[str]
    active: int | None
    doc: str


class Workspace:
    """One project's view for jedi: its stubs directory and its prelude."""

    def __init__(self, root: Path | None) -> None:
        self.root = root.resolve() if root is not None else None
        self._stubs: Stubs | None = None
        self._stubs_dir: Path | None = None
        self._project: Any = None
        self._names: dict[str, list[str]] | None = None

    @classmethod
    def around(cls, path: Path) -> Workspace:
        from hyac_cli.manifest import find_project_root

        return cls(find_project_root(path.resolve().parent))

    # -- stubs ----------------------------------------------------------------------

    @property
    def stubs_dir(self) -> Path:
        """The project's typings/, or generated stubs in the data dir when it has none."""
        if self._stubs_dir is None:
            own = self.root / STUBS_DIR if self.root is not None else None
            if own is not None and (own / f"{MODULE_NAME}.pyi").is_file():
                self._stubs_dir = own
            else:
                from hyac_common.paths import data_dir

                stubs = self.stubs
                digest = _digest(stubs.module + stubs.builtins)
                directory = data_dir() / "editor-stubs" / digest
                if stubs.stale(directory):
                    stubs.write(directory)
                self._stubs_dir = directory
        return self._stubs_dir

    @property
    def stubs(self) -> Stubs:
        if self._stubs is None:
            self._stubs = build_stubs()
        return self._stubs

    def prelude(self) -> str:
        return self.stubs.prelude()

    def names(self) -> dict[str, list[str]]:
        """``{"FunctionName": [...], "EnvName": [...], ...}`` from the stub's Literal aliases."""
        if self._names is None:
            path = self.stubs_dir / f"{MODULE_NAME}.pyi"
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (OSError, SyntaxError):
                tree = ast.Module(body=[], type_ignores=[])
            self._names = literal_aliases(tree)
        return self._names

    def handler_of(self, path: Path) -> str:
        """The entry point name of the function whose file is ``path`` (``main``)."""
        if self.root is None:
            return DEFAULT_HANDLER
        try:
            from hyac_cli.manifest import load_project

            if self._project is None:
                self._project = load_project(self.root)
            rel = path.resolve().relative_to(self.root).as_posix()
        except Exception:  # a broken manifest must not break the editor
            return DEFAULT_HANDLER
        for spec in self._project.functions.values():
            if spec.entry == rel:
                return str(spec.config.get("handler", DEFAULT_HANDLER))
        return DEFAULT_HANDLER

    # -- jedi -----------------------------------------------------------------------

    def script(self, source: str, path: Path) -> jedi.Script:
        import jedi

        project_root = self.root or path.resolve().parent
        project = jedi.Project(project_root, added_sys_path=[str(self.stubs_dir)])
        handler = self.handler_of(path)
        text = self.prelude() + source
        if not text.endswith("\n"):
            text += "\n"
        text += f"{handler}(context)\n"  # lets jedi infer an unannotated context parameter
        return jedi.Script(text, path=path, project=project)

    def complete(self, source: str, path: Path, line: int, column: int) -> list[Completion]:
        line, column = _clamp(source, line, column)
        named = self._named_completions(source, line, column)
        if named is not None:
            return named
        prefix = _line(source, line)[:column]
        typed = re.search(r"\w*$", prefix)
        private = bool(typed and typed.group().startswith("_"))
        items = []
        for c in self.script(source, path).complete(line + SHIFT, column):
            if c.name.startswith("__") and not private:
                continue
            items.append(Completion(c.name, c.complete or "", c.type, c.description))
        return items

    def hover(self, source: str, path: Path, line: int, column: int) -> str | None:
        """Markdown: the signature or type in a code block, then the docstring."""
        line, column = _clamp(source, line, column)
        names = self.script(source, path).help(line + SHIFT, column)
        for name in names:
            if name.type == "keyword":
                continue
            doc = name.docstring(raw=True).strip()
            signatures = [s.to_string() for s in name.get_signatures()]
            if signatures:
                head = "\n".join(signatures)
            elif name.type == "instance" or name.type == "statement":
                inferred = name.infer()
                kind = inferred[0].name if inferred else "Any"
                head = f"{name.name}: {kind}"
                if not doc and inferred:
                    doc = inferred[0].docstring(raw=True).strip()
            else:
                head = f"{name.type} {name.name}"
            text = f"```python\n{head}\n```"
            return f"{text}\n\n{doc}" if doc else text
        return None

    def signatures(self, source: str, path: Path, line: int, column: int) -> list[Signature]:
        line, column = _clamp(source, line, column)
        found = []
        for sig in self.script(source, path).get_signatures(line + SHIFT, column):
            params = [p.to_string() for p in sig.params]
            found.append(Signature(sig.to_string(), params, sig.index, sig.docstring(raw=True)))
        return found

    def definitions(self, source: str, path: Path, line: int, column: int) -> list[Location]:
        line, column = _clamp(source, line, column)
        script = self.script(source, path)
        names = script.goto(line + SHIFT, column, follow_imports=True)
        if any(self._in_prelude(n, path) for n in names):
            names = script.infer(line + SHIFT, column)  # `context` itself: go to its class
        found = []
        for name in names:
            if name.module_path is None or name.line is None:
                continue
            where = Path(name.module_path)
            own = _same(where, path)
            if own and name.line <= SHIFT:
                continue
            found.append(Location(where, name.line - (SHIFT if own else 0), name.column or 0))
        return found

    def diagnostics(self, source: str, path: Path) -> list[Problem]:
        """Syntax errors; unknown members of ``context``; a missing or misshapen handler."""
        try:
            tree = ast.parse(source, str(path))
            compile(source, str(path), "exec", dont_inherit=True)
        except SyntaxError as exc:
            line = exc.lineno or 1
            column = max((exc.offset or 1) - 1, 0)
            return [Problem(line, column, line, column + 1, f"SyntaxError: {exc.msg}")]
        except ValueError as exc:  # null bytes
            return [Problem(1, 0, 1, 1, str(exc))]
        problems = unknown_members(tree, self.stubs_dir / f"{MODULE_NAME}.pyi")
        problems += handler_problems(tree, self.handler_of(path))
        return sorted(problems, key=lambda p: (p.line, p.column))

    # -- helpers ----------------------------------------------------------------------

    def _named_completions(self, source: str, line: int, column: int) -> list[Completion] | None:
        match = _NAMED_ARGUMENT.search(_line(source, line)[:column])
        if match is None:
            return None
        alias = _ALIAS_OF[match.group("mapping") or match.group("call")]
        quote, prefix = match.group("quote"), match.group("prefix")
        items = []
        for value in self.names().get(alias, []):
            if not value.startswith(prefix):
                continue
            if quote:
                items.append(Completion(value, value[len(prefix):], "string", alias))
            else:
                text = f'"{value}"'
                items.append(Completion(value, text[len(prefix):], "string", alias,
                                        replace=len(prefix), insert=text))
        return items

    def _in_prelude(self, name: Any, path: Path) -> bool:
        return (name.module_path is not None and _same(Path(name.module_path), path)
                and (name.line or 0) <= SHIFT)


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
    for node in stub.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "context":
            context = getattr(node.annotation, "id", None)
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
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]  # type: ignore[union-attr]
    return {t.id for t in targets if isinstance(t, ast.Name)}


def _line(source: str, line: int) -> str:
    lines = source.split("\n")
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _clamp(source: str, line: int, column: int) -> tuple[int, int]:
    """A position jedi accepts: inside the file, at most at the end of its line."""
    count = source.count("\n") + 1
    line = min(max(line, 1), count)
    return line, min(max(column, 0), len(_line(source, line).rstrip("\r")))


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]
