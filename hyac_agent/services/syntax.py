"""Syntax checks of Python bundles, by the interpreter that will run them.

Every Python file of a bundle is compiled (never executed) by the function's own
interpreter, so syntax is judged by the version that will run it, and in a process of
its own, so a source that exhausts the compiler cannot take the agent with it. The
checking process is kept per interpreter and serves one bundle at a time: starting an
interpreter per deploy cost more than the rest of a deploy.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import subprocess
import threading
from pathlib import Path
from typing import IO

from hyac_common.errors import FunctionSyntaxError, InvalidInput

#: a bundle's files that take longer to compile than this are refused
CHECK_TIMEOUT = 60.0

# One JSON line in (path → source), one JSON line out: {} when every file compiles.
_CHECKER = r"""
import json, sys
for line in sys.stdin:
    answer = {}
    try:
        for path, source in sorted(json.loads(line).items()):
            try:
                compile(source, path, "exec", dont_inherit=True)
            except SyntaxError as exc:
                answer = {"path": exc.filename or path, "line": exc.lineno or 0,
                          "message": "%s: %s" % (type(exc).__name__, exc.msg)}
                break
    except Exception as exc:
        answer = {"failed": "%s: %s" % (type(exc).__name__, exc)}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
"""


class _Checker:
    """One interpreter compiling bundles, one at a time."""

    def __init__(self, interpreter: Path) -> None:
        self.process = subprocess.Popen(
            [str(interpreter), "-I", "-S", "-c", _CHECKER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, encoding="utf-8",
        )

    def check(self, sources: dict[str, str]) -> dict[str, object]:
        """The checker's answer; InvalidInput (and the checker stopped) if it has none."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(json.dumps(sources) + "\n")
            stdin.flush()
            line = _read_line(stdout, CHECK_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            line = "timed out" if isinstance(exc, TimeoutError) else ""
        if not line.startswith("{"):
            self.stop()
            raise InvalidInput("could not check the function's syntax: "
                               + (line or "the checking interpreter exited"))
        answer: dict[str, object] = json.loads(line)
        return answer

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _read_line(stream: IO[str], timeout: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError
    return stream.readline()


class SyntaxChecks:
    """The checking interpreters of this agent: started on demand, one per deploy being
    checked (a slow bundle holds up no other deploy), up to ``keep`` of them kept idle
    per interpreter path for the next deploys."""

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self._idle: dict[Path, list[_Checker]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def check(self, interpreter: Path, files: dict[str, bytes]) -> None:
        """Raise FunctionSyntaxError (path, line) for the first Python file of ``files``
        that ``interpreter`` does not compile."""
        sources = {
            path: content.decode("utf-8", "replace")
            for path, content in files.items()
            if path.endswith(".py")
        }
        with self._lock:
            idle = self._idle.setdefault(interpreter, [])
            checker = idle.pop() if idle else None
        if checker is not None and checker.process.poll() is not None:
            checker.stop()  # it died idle (killed from outside): start another
            checker = None
        if checker is None:
            checker = _Checker(interpreter)
        answer = checker.check(sources)  # raises with the checker stopped
        with self._lock:
            kept = not self._closed and len(self._idle.setdefault(interpreter, [])) < self.keep
            if kept:
                self._idle[interpreter].append(checker)
        if not kept:
            checker.stop()
        if "failed" in answer:
            raise InvalidInput(f"could not check the function's syntax: {answer['failed']}")
        if answer:
            path, line = str(answer["path"]), int(str(answer["line"]))
            raise FunctionSyntaxError(f"{path}:{line}: {answer['message']}", path=path, line=line)

    def close(self) -> None:
        """Stop the idle checkers; a check still running stops its own when it ends."""
        with self._lock:
            self._closed = True
            checkers = [c for idle in self._idle.values() for c in idle]
            self._idle = {}
        for checker in checkers:
            checker.stop()
