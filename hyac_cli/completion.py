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
from hyac_common.diagnostics import Problem, handler_problems, unknown_members
from hyac_common.editing import ALIAS_OF as _ALIAS_OF
from hyac_common.editing import NAMED_ARGUMENT as _NAMED_ARGUMENT
from hyac_common.editing import clamp as _clamp
from hyac_common.editing import describe, literal_aliases
from hyac_common.editing import line_of as _line

if TYPE_CHECKING:
    import jedi

SHIFT = 1  # lines the prelude adds before the user's first line
DEFAULT_HANDLER = "main"


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
        self._names_stamp: float | None = None
        self._project_stamp: float | None = None

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
        path = self.stubs_dir / f"{MODULE_NAME}.pyi"
        stamp = _mtime(path)  # `hyac stubs` may rewrite them while an editor runs
        if self._names is None or stamp != self._names_stamp:
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (OSError, SyntaxError):
                tree = ast.Module(body=[], type_ignores=[])
            self._names, self._names_stamp = literal_aliases(tree), stamp
        return self._names

    def handler_of(self, path: Path) -> str:
        """The entry point name of the function whose file is ``path`` (``main``)."""
        if self.root is None:
            return DEFAULT_HANDLER
        try:
            from hyac_cli.manifest import MANIFEST, load_project

            stamp = _mtime(self.root / MANIFEST)
            if self._project is None or stamp != self._project_stamp:
                self._project, self._project_stamp = load_project(self.root), stamp
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
        for name in self.script(source, path).help(line + SHIFT, column):
            described = describe(name)
            if described is None:
                continue
            head, doc = described
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


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]
