"""Tracebacks as the user should see them: their own frames, paths relative to the code.

Frames from the runtime and from the standard library are dropped; a frame is the
user's when its file lies inside the code directory (the entry file is compiled with
its relative name, helper modules are imported with absolute paths).
"""

from __future__ import annotations

# traceback is imported at start, not by the first failure: a function out of memory
# fails with no memory left to import anything, and its error must still be described.
import os
import re
import traceback

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not imported at run time (see bootstrap.py)
    from typing import Any

MAIN_MODULE = "__hyac_main__"
_MAIN_PREFIX = re.compile(r"^([ |+\-]*)" + re.escape(MAIN_MODULE) + r"\.", re.MULTILINE)


class UserTracebacks:
    """Formats exceptions raised by code under ``code_dir``."""

    def __init__(self, code_dir: str, entry: str, runtime_dir: str) -> None:
        self._code_dir = os.path.abspath(code_dir)
        self._entry = entry
        self._runtime_dir = os.path.abspath(runtime_dir)

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
        te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
        self._filter(te, set())
        return _MAIN_PREFIX.sub(r"\1", "".join(te.format()))

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
