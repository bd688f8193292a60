"""The console editor's intelligence: completion, hover and diagnostics by jedi.

Every query runs on the user's source with the shim of ``hyac stubs`` put before it in
memory (``hyac_common.stubs``: the same prelude, tailored to the tenant's function, env
and secret names with the same ``ProjectFacts``) and ``main(context)`` after it, so an
unannotated ``context`` parameter is inferred. Positions move by exactly one line on the
way in and back out; the user's file is never written. The stubs live in the agent's data
dir under a digest of their text, shared by every tenant with the same names.

Positions on the wire are 1-based lines and 0-based columns (jedi's).
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import concurrent.futures
import contextlib
import hashlib
import symtable
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hyac_common.diagnostics import Problem, handler_problems, unknown_members
from hyac_common.editing import ALIAS_OF, NAMED_ARGUMENT, clamp, describe, line_of
from hyac_common.errors import AnalysisTimeout, InvalidInput
from hyac_common.stubs import MODULE_NAME, ProjectFacts, Stubs, build_stubs

SHIFT = 1  # lines the prelude adds before the user's first line
MAX_SOURCE_BYTES = 512 * 1024
MAX_ITEMS = 200
HANDLER = "main"
#: how long a request waits for the first analysis of the agent's life (``_warmed``)
WARM_UP_WAIT = 60.0
#: seconds between looks for a free slot
SLOT_POLL = 0.02
_WORD = "_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
T = TypeVar("T")


@dataclass(frozen=True)
class Query:
    source: str
    line: int = 1  # 1-based
    column: int = 0  # 0-based
    file: str = "main.py"
    entry: bool = True  # the function's entry file: its handler is checked


def check_query(source: str, line: int, column: int) -> None:
    """Refuse what jedi must never see: huge or binary sources, positions outside them."""
    if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise InvalidInput(f"source is larger than {MAX_SOURCE_BYTES // 1024} KiB")
    if "\x00" in source:
        raise InvalidInput("source contains NUL bytes: the editor takes text only")
    lines = source.split("\n")
    if not 1 <= line <= len(lines):
        raise InvalidInput(f"line {line} is outside the source (1..{len(lines)})")
    if not 0 <= column <= len(lines[line - 1]):
        raise InvalidInput(f"column {column} is outside line {line} (0..{len(lines[line - 1])})")


class EditorService:
    """Jedi on the agent: analyses one at a time on a thread of their own, at most ``slots``
    running or waiting, each under a time cap."""

    def __init__(self, stubs_root: Path, timeout: float = 5.0, slots: int = 2) -> None:
        self.stubs_root = stubs_root
        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        # Jedi is not thread-safe: two analyses at once share its inference state and
        # the subprocess that inspects compiled modules, and read each other's answers
        # ("too many values to unpack" deep in jedi, a 500). Analyses run one at a time
        # on a thread of their own, never on the event loop's shared executor, which
        # requests waiting for a slot there once filled until nothing else could run.
        self._jedi = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hyac-editor")
        self._base: Stubs | None = None
        self._tailored: dict[ProjectFacts, tuple[Stubs, Path]] = {}
        self._warm_up: asyncio.Future[Any] | None = None

    # -- stubs ----------------------------------------------------------------------------

    def stubs(self, facts: ProjectFacts | None = None) -> tuple[Stubs, Path]:
        """The stubs (tailored to ``facts``) and the directory holding them."""
        key = facts or ProjectFacts()
        with self._lock:
            found = self._tailored.get(key)
            if found is None:
                stubs = build_stubs(facts=facts)
                digest = hashlib.sha256((stubs.module + stubs.builtins).encode()).hexdigest()
                directory = self.stubs_root / digest[:16]
                if stubs.stale(directory):
                    stubs.write(directory)
                if len(self._tailored) > 256:
                    self._tailored.clear()
                found = self._tailored[key] = (stubs, directory)
            return found

    # -- off the event loop ------------------------------------------------------------

    async def run(self, work: Callable[[], T]) -> T:
        """``work`` in a thread, under the time cap. A timed-out analysis keeps its slot
        until jedi returns, so pathological sources cannot pile up threads."""
        await self._warmed()
        # A slot is waited for on the event loop, not by a thread.
        deadline = time.monotonic() + self.timeout
        while not self._slots.acquire(blocking=False):
            if time.monotonic() >= deadline:
                raise AnalysisTimeout("the editor is busy analysing other sources; try again")
            await asyncio.sleep(SLOT_POLL)

        def guarded() -> T:
            try:
                return work()
            except (RecursionError, MemoryError):  # jedi's and the compiler's limits
                raise InvalidInput("the source is nested too deeply to analyse") from None
            finally:
                self._slots.release()

        task = asyncio.get_running_loop().run_in_executor(self._jedi, guarded)
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.timeout)
        except TimeoutError:
            raise AnalysisTimeout(
                f"analysing the source took longer than {self.timeout:g}s"
            ) from None

    async def _warmed(self) -> None:
        """The first analysis of the agent's life loads jedi's view of the standard
        library and the stubs: a second on a quiet host, past the time cap on a busy one,
        and independent of the source. It is made once, on a source of the agent's own,
        without the cap; requests that come meanwhile wait for it (at most
        ``WARM_UP_WAIT``) before their own capped analysis begins."""
        if self._warm_up is None:
            query = Query(source=f"def {HANDLER}(context):\n    context.kv.\n", line=2, column=15)
            self._warm_up = asyncio.get_running_loop().run_in_executor(
                self._jedi, self.complete, query, None
            )
        if not self._warm_up.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._warm_up), WARM_UP_WAIT)

    # -- queries ---------------------------------------------------------------------------

    def _script(self, query: Query, facts: ProjectFacts | None) -> Any:
        import jedi

        stubs, directory = self.stubs(facts)
        project = jedi.Project(directory, added_sys_path=[str(directory)], load_unsafe_extensions=False)
        text = stubs.prelude() + query.source
        if not text.endswith("\n"):
            text += "\n"
        text += f"{HANDLER}(context)\n"
        # A path inside the stubs dir that names no real file: nothing is read or written.
        path = directory / "functions" / Path(query.file).name
        return jedi.Script(text, path=path, project=project)

    def complete(self, query: Query, facts: ProjectFacts | None) -> list[dict[str, Any]]:
        line, column = clamp(query.source, query.line, query.column)
        named = self._named(query.source, line, column, facts)
        if named is not None:
            return named
        typed = line_of(query.source, line)[:column]
        private = typed[len(typed.rstrip(_WORD)):].startswith("_")
        items = []
        for c in self._script(query, facts).complete(line + SHIFT, column):
            if c.name.startswith("__") and not private:
                continue
            items.append({
                "label": c.name, "kind": c.type, "detail": c.description,
                "documentation": _doc(c), "insert_text": c.name,
                "replace": len(c.name) - len(c.complete or ""),
            })
            if len(items) >= MAX_ITEMS:
                break
        return items

    def hover(self, query: Query, facts: ProjectFacts | None) -> dict[str, Any] | None:
        line, column = clamp(query.source, query.line, query.column)
        for name in self._script(query, facts).help(line + SHIFT, column):
            described = describe(name)
            if described is not None:
                return {"name": name.name, "kind": name.type, "signature": described[0],
                        "documentation": described[1]}
        return None

    def diagnostics(self, query: Query, facts: ProjectFacts | None) -> list[dict[str, Any]]:
        """Syntax errors; undefined names; members of ``context`` the stubs lack; an entry
        point the platform cannot call."""
        problems = syntax_problems(query.source, query.file)
        if problems:
            return [_problem(p) for p in problems]
        tree = ast.parse(query.source)
        _, directory = self.stubs(facts)
        found = unknown_members(tree, directory / f"{MODULE_NAME}.pyi")
        found += undefined_names(query.source, query.file)
        if query.entry:
            found += handler_problems(tree, HANDLER)
        return [_problem(p) for p in sorted(found, key=lambda p: (p.line, p.column))]

    def _named(self, source: str, line: int, column: int, facts: ProjectFacts | None
               ) -> list[dict[str, Any]] | None:
        match = NAMED_ARGUMENT.search(line_of(source, line)[:column])
        if match is None:
            return None
        alias = ALIAS_OF[match.group("mapping") or match.group("call")]
        facts = facts or ProjectFacts()
        names = {"EnvName": facts.env, "SecretName": facts.secrets,
                 "FunctionName": facts.functions}[alias]
        quote, prefix = match.group("quote"), match.group("prefix")
        items = []
        for value in names:
            if value.startswith(prefix):
                items.append({"label": value, "kind": "string", "detail": alias,
                              "documentation": "", "insert_text": value if quote
                              else f'"{value}"', "replace": len(prefix)})
        return items


def syntax_problems(source: str, file: str) -> list[Problem]:
    try:
        compile(source, file, "exec", dont_inherit=True)
    except SyntaxError as exc:
        line = exc.lineno or 1
        column = max((exc.offset or 1) - 1, 0)
        return [Problem(line, column, line, column + 1, f"SyntaxError: {exc.msg}")]
    except ValueError as exc:  # NUL bytes (refused before, but never a 500)
        return [Problem(1, 0, 1, 1, str(exc))]
    return []


def undefined_names(source: str, file: str) -> list[Problem]:
    """Names read at module level or in a function that nothing binds: not the module,
    not the builtins, not what the runtime injects (from the symbol table, no import)."""
    try:
        table = symtable.symtable(source, file, "exec")
    except (SyntaxError, ValueError):
        return []
    bound = set(dir(builtins)) | {"context", "FunctionContext", "Response", "__file__",
                                   "__name__", "__builtins__"}
    bound |= {s.get_name() for s in table.get_symbols()
              if s.is_assigned() or s.is_imported() or s.is_namespace()}
    if any(s.get_name() == "*" for s in table.get_symbols()):
        return []  # `from x import *`: anything may be bound
    missing: set[str] = set()
    pending = [table]
    while pending:
        scope = pending.pop()
        pending.extend(scope.get_children())
        for symbol in scope.get_symbols():
            if symbol.is_referenced() and (scope is table or symbol.is_global()) \
                    and symbol.get_name() not in bound:
                missing.add(symbol.get_name())
    found: list[Problem] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id in missing:
            found.append(Problem(node.lineno, node.col_offset, node.lineno,
                                 node.col_offset + len(node.id),
                                 f"undefined name {node.id!r}", "error"))
    return found


def _problem(p: Problem) -> dict[str, Any]:
    return {"line": p.line, "column": p.column, "end_line": p.end_line,
            "end_column": p.end_column, "message": p.message, "severity": p.severity}


def _doc(completion: Any) -> str:
    try:
        return str(completion.docstring(raw=True))[:2000]
    except Exception:  # jedi may fail to infer a docstring; the item is still useful
        return ""
