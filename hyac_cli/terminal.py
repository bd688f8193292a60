"""Every byte the CLI shows goes through one ``Terminal``: data on stdout, talk on stderr.

Rich is imported only when something is actually printed, and ``rich.table`` only
when a table is drawn on a terminal: piped output gets plain aligned columns that
``awk`` and ``cut`` can read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from rich.console import Console


class Status:
    """The handle of a live spinner; ``update`` changes its text."""

    def __init__(self, live: Any = None) -> None:
        self._live = live

    def update(self, message: str) -> None:
        if self._live is not None:
            self._live.update(message)


class Terminal:
    """Owns stdout and stderr for one command run."""

    def __init__(self) -> None:
        self._out: Console | None = None
        self._err: Console | None = None

    # -- consoles -------------------------------------------------------------------

    @property
    def out(self) -> Console:
        if self._out is None:
            self._out = _console(stderr=False)
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            self._err = _console(stderr=True)
        return self._err

    @property
    def stdout_is_tty(self) -> bool:
        return _isatty(sys.stdout)

    @property
    def stderr_is_tty(self) -> bool:
        return _isatty(sys.stderr)

    @property
    def stdin_is_tty(self) -> bool:
        return _isatty(sys.stdin)

    # -- messages -------------------------------------------------------------------

    def error(self, message: str) -> None:
        """One line on stderr: ``Error: message``."""
        self._tagged(self.err, "Error:", "bold red", message)

    def warn(self, message: str) -> None:
        self._tagged(self.err, "Warning:", "bold yellow", message)

    def note(self, message: str, style: str | None = "dim") -> None:
        """Talk meant for a human that must not mix with data on stdout."""
        from rich.text import Text

        self.err.print(Text(message, style=style or ""))

    def say(self, message: str, style: str | None = None) -> None:
        """A result line on stdout (``hello  v3  deployed``)."""
        from rich.text import Text

        self.out.print(Text(message, style=style or ""))

    def styled(self, parts: Sequence[tuple[str, str | None]], *, stderr: bool = False) -> None:
        """One line assembled from (text, style) pieces, colours only on a terminal."""
        from rich.text import Text

        text = Text()
        for piece, style in parts:
            text.append(piece, style=style or "")
        (self.err if stderr else self.out).print(text)

    def abort(self, message: str, code: int = 1) -> NoReturn:
        import typer

        self.error(message)
        raise typer.Exit(code)

    @contextmanager
    def status(self, message: str) -> Iterator[Status]:
        """A spinner on stderr while something slow happens; silent when not a terminal."""
        if not self.stderr_is_tty:
            yield Status()
            return
        with self.err.status(message) as live:
            yield Status(live)

    # -- data -----------------------------------------------------------------------

    def write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def write_bytes(self, data: bytes) -> None:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:
            sys.stdout.write(data.decode("utf-8", "replace"))
        else:
            sys.stdout.flush()
            buffer.write(data)
            buffer.flush()

    def write_err(self, text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    def print_json(self, data: Any, *, compact: bool = False) -> None:
        """JSON on stdout: pretty (and coloured on a terminal), or one line if ``compact``."""
        if compact:
            self.write(json.dumps(data, default=str, separators=(",", ":")) + "\n")
        elif self.stdout_is_tty:
            self.out.print_json(data=data, default=str)
        else:
            self.write(json.dumps(data, indent=2, default=str) + "\n")

    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        empty: str | None = None,
    ) -> None:
        """Rows under a header; ``empty`` is said instead when there are none."""
        if not rows and empty is not None:
            self.note(empty, style=None)
            return
        cells = [[_cell(value) for value in row] for row in rows]
        if self.stdout_is_tty:
            from rich import box
            from rich.table import Table

            table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
            for column in columns:
                table.add_column(column.upper(), overflow="fold")
            for row in cells:
                table.add_row(*row)
            self.out.print(table)
            return
        widths = [len(column) for column in columns]
        for row in cells:
            widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
        for row in [[c.upper() for c in columns], *cells]:
            line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            self.write(line.rstrip() + "\n")

    # -- helpers --------------------------------------------------------------------

    @staticmethod
    def _tagged(console: Console, tag: str, style: str, message: str) -> None:
        from rich.text import Text

        console.print(Text.assemble((tag, style), " ", message))


def _console(*, stderr: bool) -> Console:
    from rich.console import Console

    # soft_wrap: an error stays one line however narrow the terminal, and piped
    # output is never hard-wrapped at 80 columns.
    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def wants_json(args: Sequence[str]) -> bool:
    """Whether a command line asks for ``--json`` (before any ``--``)."""
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def report_failure(
    message: str, *, code: str, as_json: bool, details: dict[str, Any] | None = None
) -> None:
    """A failure as the user asked for it: ``Error: message`` on stderr, and with
    ``--json`` also one ``{"error": {"code", "message", ...}}`` object on stdout, so a
    script reading stdout always gets JSON."""
    term = Terminal()
    term.error(message)
    if as_json:
        term.print_json({"error": {**(details or {}), "code": code, "message": message}},
                        compact=True)


def os_error_message(exc: OSError) -> str:
    """One line for a failed file or socket operation: ``No such file: path``."""
    if exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return exc.strerror or str(exc)
