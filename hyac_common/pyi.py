"""Renders the public surface of a Python module as the text of a ``.pyi`` stub.

Classes, annotated attributes (with the docstrings that follow them), signatures and
docstrings are kept; bodies become ``...``. Private names are dropped, and an
annotation that mentions one (or a name imported from outside the standard library,
which a stub cannot follow) becomes ``Any``.
"""

from __future__ import annotations

import ast
import inspect
import sys

_TYPE_FACTORIES = {"TypeVar", "ParamSpec", "TypeVarTuple", "NewType", "NamedTuple", "TypedDict"}
_MAX_LINE = 100


class StubWriter:
    """Renders the public surface of a module as the text of a ``.pyi`` file."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.public = _public_names(tree)
        self.classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        self.foreign: set[str] = set()  # names bound by imports a stub cannot follow
        self.imports: list[ast.Import | ast.ImportFrom] = []
        for node in _top_imports(tree.body):
            if _is_stdlib(node):
                self.imports.append(node)
            else:
                self.foreign.update(_bound_names(node))
        defined = {name for node in tree.body for name in _defined_names(node)}
        self.hidden = (defined - self.public) | self.foreign
        self.needs_any = False
        self.aliases: dict[str, str] = {}  # module-level names under another name

    def render(self) -> str:
        body: list[str] = []
        doc = ast.get_docstring(self.tree, clean=True)
        if doc:
            body += _docstring(doc, "") + [""]
        members: list[list[str]] = []
        statements = self.tree.body
        for index, node in enumerate(statements):
            following = statements[index + 1] if index + 1 < len(statements) else None
            lines = self._member(node, "", following, statements[:index])
            if lines:
                members.append(lines)
        members += [[f"{alias} = {name}"] for name, alias in self.aliases.items()]
        code = [line for lines in members for line in [*lines, ""]]
        imports = self._used_imports("\n".join(code))
        if imports:
            imports.append("")
        return "\n".join(body + imports + code).rstrip("\n") + "\n"

    # -- members --------------------------------------------------------------------

    def _member(
        self, node: ast.stmt, indent: str, following: ast.stmt | None, before: list[ast.stmt]
    ) -> list[str]:
        if isinstance(node, ast.ClassDef) and self._keep(node.name, indent):
            return self._class(node, indent)
        functions = (ast.FunctionDef, ast.AsyncFunctionDef)
        if isinstance(node, functions) and self._keep(node.name, indent):
            if not _is_overload(node) and any(
                isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef))
                and b.name == node.name and _is_overload(b) for b in before
            ):
                return []  # the implementation behind @overload signatures
            return self._function(node, indent)
        target, value = assignment(node)
        if target and self._keep(target, indent) and target not in ("__slots__", "__all__"):
            annotation = node.annotation if isinstance(node, ast.AnnAssign) else None
            lines = [indent + self._attribute(target, annotation, value)]
            attr_doc = _string_of(following)
            if attr_doc is not None:
                lines += _docstring(inspect.cleandoc(attr_doc), indent)
            return lines
        return []

    def _keep(self, name: str, indent: str) -> bool:
        if indent:  # inside a class: public names and dunders
            return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))
        return name in self.public

    def _class(self, node: ast.ClassDef, indent: str) -> list[str]:
        body = list(node.body)
        bases = []
        for base in node.bases:
            name = base.id if isinstance(base, ast.Name) else None
            if name in self.hidden and name in self.classes:
                body += self.classes[name].body  # inline the public members of a private base
            else:
                bases.append(self._expr(base))
        bases += [f"{kw.arg}={self._expr(kw.value)}" for kw in node.keywords if kw.arg]
        lines = [f"{indent}@{self._expr(d)}" for d in node.decorator_list]
        arguments = f"({', '.join(bases)})" if bases else ""
        lines.append(f"{indent}class {node.name}{arguments}:")
        inner = indent + "    "
        doc = ast.get_docstring(node, clean=True)
        attributes: list[str] = _docstring(doc, inner) if doc else []
        blocks: list[str] = []
        seen: set[str] = set()
        for index, child in enumerate(body):
            following = body[index + 1] if index + 1 < len(body) else None
            name = getattr(child, "name", None) or assignment(child)[0]
            if name in seen and not _is_overload(child) and not _is_property_part(child):
                continue  # overridden by the subclass itself
            member = self._member(child, inner, following, body[:index])
            if not member:
                continue
            seen.add(name or "")
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                blocks += [""] + member if (attributes or blocks) else member
            else:
                attributes += member
        attributes += self._instance_attributes(body, seen, inner)
        if blocks and attributes and blocks[0] != "":
            blocks.insert(0, "")
        return lines + (attributes + blocks or [inner + "..."])

    def _instance_attributes(self, body: list[ast.stmt], seen: set[str], indent: str) -> list[str]:
        """``self.x = ...`` in ``__init__`` for attributes the class does not declare."""
        init = next(
            (n for n in body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None
        )
        if init is None:
            return []
        params = {a.arg: a.annotation for a in [*init.args.args, *init.args.kwonlyargs]}
        lines: list[str] = []
        for node in ast.walk(init):
            target, value = assignment(node, attributes=True)
            if not target or target in seen or target.startswith("_"):
                continue
            annotation = node.annotation if isinstance(node, ast.AnnAssign) else None
            if annotation is None and isinstance(value, ast.Name):
                annotation = params.get(value.id)
            seen.add(target)
            lines.append(f"{indent}{target}: {self._annotation(annotation)}")
        return lines

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, indent: str) -> list[str]:
        lines = [f"{indent}@{self._expr(d)}" for d in node.decorator_list]
        prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
        params = self._parameters(node.args)
        returns = f" -> {self._annotation(node.returns, default=None)}" if node.returns else ""
        head = f"{indent}{prefix} {node.name}({', '.join(params)}){returns}:"
        if len(head) > _MAX_LINE and params:
            inner = indent + "    "
            head = "\n".join(
                [f"{indent}{prefix} {node.name}("]
                + [f"{inner}{p}," for p in params]
                + [f"{indent}){returns}:"]
            )
        doc = ast.get_docstring(node, clean=True)
        if not doc:
            return lines + [head + " ..."]
        return lines + [head] + _docstring(doc, indent + "    ") + [indent + "    ..."]

    def _parameters(self, args: ast.arguments) -> list[str]:
        positional = [*args.posonlyargs, *args.args]
        defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
        defaults += list(args.defaults)
        params: list[str] = []
        for index, (arg, default) in enumerate(zip(positional, defaults, strict=True)):
            params.append(self._param(arg, default))
            if args.posonlyargs and index == len(args.posonlyargs) - 1:
                params.append("/")
        if args.vararg:
            params.append("*" + self._param(args.vararg, None))
        elif args.kwonlyargs:
            params.append("*")
        for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
            params.append(self._param(arg, default))
        if args.kwarg:
            params.append("**" + self._param(args.kwarg, None))
        return params

    def _param(self, arg: ast.arg, default: ast.expr | None) -> str:
        text = arg.arg
        if arg.annotation is not None:
            text += f": {self._annotation(arg.annotation)}"
        if default is not None:
            value = self._expr(default) if _is_literal(default) else "..."
            text += f" = {value}" if arg.annotation is not None else f"={value}"
        return text

    def _attribute(self, name: str, annotation: ast.expr | None, value: ast.expr | None) -> str:
        if annotation is not None:
            text = f"{name}: {self._annotation(annotation)}"
            if value is not None and _is_literal(value):
                text += f" = {self._expr(value)}"
            return text
        if isinstance(value, ast.Name) and value.id == name and value.id not in self.hidden:
            # `Response = Response` in a class body: in a stub, where every name may be a
            # forward reference, pyright would read it as the attribute itself.
            self.aliases[name] = f"_{name}_alias"
            return f"{name} = {self.aliases[name]}"
        if value is not None and (_is_literal(value) or self._is_type_expression(value)):
            return f"{name} = {self._expr(value)}"
        self.needs_any = True
        return f"{name}: Any"

    # -- expressions ----------------------------------------------------------------

    def _annotation(self, node: ast.expr | None, default: str | None = "Any") -> str:
        if node is None:
            self.needs_any = True
            return default or "Any"
        return self._expr(_unquote(node))

    def _expr(self, node: ast.expr) -> str:
        copy = ast.parse(ast.unparse(node), mode="eval").body  # never change the source tree
        return ast.unparse(_HideNames(self).visit(copy))

    def _is_type_expression(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            return name in _TYPE_FACTORIES
        allowed = (ast.Name, ast.Attribute, ast.Subscript, ast.BinOp, ast.BitOr, ast.Tuple,
                   ast.List, ast.Constant, ast.Load, ast.Slice)
        return all(isinstance(n, allowed) for n in ast.walk(node))

    def _used_imports(self, code: str) -> list[str]:
        try:
            used = {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)}
        except SyntaxError:  # pragma: no cover - the writer only emits valid code
            used = set()
        lines: list[str] = []
        has_any = False
        for node in self.imports:
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            kept = [a for a in node.names if (a.asname or a.name).split(".")[0] in used]
            if not kept:
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "typing":
                has_any = has_any or any((a.asname or a.name) == "Any" for a in kept)
            clone = type(node)(**{**node.__dict__, "names": kept})
            lines.append(ast.unparse(clone))
        if (self.needs_any or "Any" in used) and not has_any:
            lines.insert(0, "from typing import Any")
        return lines


class _HideNames(ast.NodeTransformer):
    """Replaces names a stub cannot offer (private, or from non-stdlib imports) by ``Any``."""

    def __init__(self, writer: StubWriter) -> None:
        self.writer = writer

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id in self.writer.hidden:
            self.writer.needs_any = True
            return ast.copy_location(ast.Name(id="Any", ctx=ast.Load()), node)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        root: ast.expr = node
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id in self.writer.hidden:
            self.writer.needs_any = True
            return ast.copy_location(ast.Name(id="Any", ctx=ast.Load()), node)
        return node


def _unquote(node: ast.expr) -> ast.expr:
    """Forward references need no quotes in a stub: ``"Request"`` becomes ``Request``."""
    copy = ast.parse(ast.unparse(node), mode="eval").body
    unquoted: ast.expr = _Unquote().visit(copy)
    return unquoted


class _Unquote(ast.NodeTransformer):
    def visit_Constant(self, node: ast.Constant) -> ast.expr:
        if isinstance(node.value, str):
            try:
                parsed: ast.expr = self.visit(ast.parse(node.value.strip(), mode="eval").body)
                return parsed
            except SyntaxError:
                return node
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
        head = node.value
        name = head.id if isinstance(head, ast.Name) else getattr(head, "attr", None)
        if name == "Literal":
            return node  # Literal["a"] holds strings, not forward references
        if name == "Annotated" and isinstance(node.slice, ast.Tuple) and node.slice.elts:
            node.slice.elts[0] = self.visit(node.slice.elts[0])
            return node
        self.generic_visit(node)
        return node


def _docstring(text: str, indent: str) -> list[str]:
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    lines = text.splitlines() or [""]
    if len(lines) == 1:
        return [f'{indent}"""{lines[0]}"""']
    out = [f'{indent}"""{lines[0]}']
    out += [f"{indent}{line}" if line else "" for line in lines[1:]]
    out.append(f'{indent}"""')
    return out


def _public_names(tree: ast.Module) -> set[str]:
    for node in tree.body:
        target, value = assignment(node)
        if target == "__all__" and value is not None:
            try:
                names = ast.literal_eval(value)
            except ValueError:
                break
            return {n for n in names if isinstance(n, str)}
    return {name for node in tree.body for name in _defined_names(node) if not name.startswith("_")}


def _defined_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return [node.name]
    target, _ = assignment(node)
    return [target] if target else []


def assignment(
    node: ast.AST | None, *, attributes: bool = False
) -> tuple[str | None, ast.expr | None]:
    """``(name, value)`` of ``name = value`` / ``name: T = value`` (``self.name`` if attributes)."""
    target: ast.expr
    if isinstance(node, ast.AnnAssign):
        target, value = node.target, node.value
    elif isinstance(node, ast.Assign) and len(node.targets) == 1:
        target, value = node.targets[0], node.value
    else:
        return None, None
    if attributes:
        if isinstance(target, ast.Attribute) and getattr(target.value, "id", None) == "self":
            return target.attr, value
        return None, None
    if isinstance(target, ast.Name):
        return target.id, value
    return None, None


def _string_of(node: ast.stmt | None) -> str | None:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        if isinstance(node.value.value, str):
            return node.value.value
    return None


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _is_overload(node: ast.AST) -> bool:
    decorators = getattr(node, "decorator_list", [])
    return any(
        (isinstance(d, ast.Name) and d.id == "overload")
        or (isinstance(d, ast.Attribute) and d.attr == "overload") for d in decorators
    )


def _is_property_part(node: ast.AST) -> bool:
    return any(isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter")
               for d in getattr(node, "decorator_list", []))


def _top_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """Module-level imports, including those under ``if TYPE_CHECKING:`` and ``try:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found += _top_imports(node.body)
        elif isinstance(node, ast.Try):
            found += _top_imports(node.body)
    return found


def _bound_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    return [(a.asname or a.name).split(".")[0] for a in node.names]


def _is_stdlib(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        if node.level or not node.module:
            return False
        modules = [node.module]
    else:
        modules = [a.name for a in node.names]
    stdlib = getattr(sys, "stdlib_module_names", None) or _FALLBACK_STDLIB
    return all(m.split(".")[0] in stdlib or m == "__future__" for m in modules)


# Python 3.10+ has sys.stdlib_module_names; this short list covers typical type imports.
_FALLBACK_STDLIB = frozenset({
    "abc", "asyncio", "collections", "concurrent", "contextlib", "dataclasses", "datetime",
    "enum", "functools", "io", "json", "logging", "os", "pathlib", "sys", "time", "types",
    "typing", "typing_extensions", "__future__",
})
