"""Tracebacks as the user should see them: their own frames, paths relative to the code.

Frames from the runtime and from the standard library are dropped; a frame is the
user's when its file lies inside the code directory (the entry file is compiled with
its relative name, helper modules are imported with absolute paths).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (see bootstrap.py)
    import traceback
    from typing import Any

MAIN_MODULE = "__hyac_main__"


class UserTracebacks:
    """Formats exceptions raised by code under ``code_dir``."""

    def __init__(self, code_dir: str, entry: str, runtime_dir: str) -> None:
        self._code_dir = os.path.abspath(code_dir)
        self._entry = entry
        self._runtime_dir = os.path.abspath(runtime_dir)
        #: the entry file's bytes and path, once loaded: its lines go to linecache
        self.entry_source: tuple[bytes, str] | None = None
        self._modules: tuple[Any, Any] | None = None

    def prepare(self) -> tuple[Any, Any]:
        """Import what formatting needs (``traceback`` and ``re``, about 8 ms) and give
        linecache the entry file's lines. Not done at start, where it would be most of
        the interpreter's imports: the worker calls it once the first invocation is
        answered, so that a function out of memory later still finds it done, and the
        first failure calls it if that comes first."""
        if self._modules is None:
            import linecache
            import re
            import tokenize
            import traceback

            if self.entry_source is not None:
                # Compiled under its relative name: tracebacks show "functions/hello.py".
                source, path = self.entry_source
                try:
                    encoding = tokenize.detect_encoding(iter(source.splitlines(True)).__next__)[0]
                except SyntaxError:  # an unknown coding: compiling it failed the same way
                    encoding = "utf-8"
                lines = source.decode(encoding, "replace").splitlines(True)
                linecache.cache[self._entry] = (len(source), None, lines, path)
            prefix = re.compile(r"^([ |+\-]*)" + re.escape(MAIN_MODULE) + r"\.", re.MULTILINE)
            self._modules = (traceback, prefix)
        return self._modules

    def user_path(self, filename: str | None) -> str | None:
        """The path to show for ``filename``, or None if it is not the user's code."""
        if not filename:
            return None
        if filename == self._entry:
            return filename
        if not os.path.isabs(filename):
            return None
        path = os.path.normpath(filename)
        if _inside(path, self._runtime_dir) or not _inside(path, self._code_dir):
            return None
        return os.path.relpath(path, self._code_dir)

    def format(self, exc: BaseException) -> str:
        """A standard traceback of ``exc`` (and its chain) holding only user frames."""
        try:
            traceback, main_prefix = self.prepare()
        except MemoryError:  # out of memory before the first answer: frames without lines
            return self._bare_format(exc)
        te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
        self._filter(te, set())
        return main_prefix.sub(r"\1", "".join(te.format()))

    def _bare_format(self, exc: BaseException) -> str:
        """``exc``'s user frames and its line, as a traceback prints them but without
        their source lines: what can be made with no memory to import traceback."""
        lines = ["Traceback (most recent call last):\n"]
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            shown = self.user_path(code.co_filename)
            if shown is not None:
                lines.append(f'  File "{shown}", line {tb.tb_lineno}, in {code.co_name}\n')
            tb = tb.tb_next
        name = type(exc).__qualname__
        lines.append(f"{name}: {exc}\n" if str(exc) else f"{name}\n")
        return "".join(lines)

    def describe(self, exc: BaseException) -> dict[str, Any]:
        """The protocol's ERROR object for ``exc``."""
        message = str(exc)
        if isinstance(exc, SyntaxError):
            where = self.user_path(exc.filename) or exc.filename
            message = f"{exc.msg} ({where}, line {exc.lineno})"
        try:
            shown = self.format(exc)
        except MemoryError:  # no memory left even to format it: the error without frames
            shown = ""
        return {"type": type(exc).__qualname__, "message": message, "traceback": shown}

    def _filter(self, te: traceback.TracebackException | None, seen: set[int]) -> None:
        import traceback

        if te is None or id(te) in seen:
            return
        seen.add(id(te))
        kept = []
        for frame in te.stack:
            shown = self.user_path(frame.filename)
            if shown is not None:
                frame.filename = shown
                kept.append(frame)
        te.stack = traceback.StackSummary.from_list(kept)
        if getattr(te, "filename", None):  # SyntaxError: where the bad line is
            te.filename = self.user_path(te.filename) or te.filename
        self._filter(te.__cause__, seen)
        self._filter(te.__context__, seen)
        for group_member in getattr(te, "exceptions", None) or ():
            self._filter(group_member, seen)


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)
