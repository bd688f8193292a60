"""The ``hyac`` entry point, with a fast path for ``hyac invoke`` in scripts.

CI jobs and shell loops call ``hyac invoke`` many times; Typer (which brings pydantic)
and httpx cost several times more to import than the call itself takes. When stderr is
not a terminal (so there is no spinner to draw) and the command line is a plain
``invoke`` — one function name and the options below, nothing else — this module reads
it itself and runs the very same ``run_invoke`` the Typer command runs. Anything else
(``--help``, an unknown or malformed option, a terminal) goes to the full Typer app,
which also owns every error message about the command line. ``HYAC_NO_FAST_PATH=1``
turns the fast path off.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# option -> (keyword of run_invoke, takes a value, repeatable)
_OPTIONS: dict[str, tuple[str, bool, bool]] = {
    "--data": ("data", True, False), "-d": ("data", True, False),
    "--method": ("method", True, False), "-X": ("method", True, False),
    "--path": ("path", True, False),
    "--query": ("query", True, True), "-q": ("query", True, True),
    "--header": ("header", True, True), "-H": ("header", True, True),
    "--async": ("background", False, False),
    "--callback-url": ("callback_url", True, False),
    "--wait": ("wait", True, False),
    "--tenant": ("tenant", True, False), "-t": ("tenant", True, False),
    "--json": ("as_json", False, False),
}


def parse_invoke(argv: list[str]) -> dict[str, Any] | None:
    """The keyword arguments of ``run_invoke`` for a plain ``invoke`` command line, or
    None for anything the full parser should see."""
    if not argv or argv[0] != "invoke":
        return None
    found: dict[str, Any] = {}
    names: list[str] = []
    rest = argv[1:]
    index = 0
    while index < len(rest):
        token = rest[index]
        index += 1
        if token.startswith("-") and token != "-":
            flag, equals, attached = token.partition("=")
            spec = _OPTIONS.get(flag)
            if spec is None or (equals and not flag.startswith("--")):
                return None  # --help, --, -dVALUE, unknown options: Typer's job
            key, takes_value, repeatable = spec
            if not takes_value:
                if equals:
                    return None
                found[key] = True
                continue
            if equals:
                value = attached
            elif index < len(rest):
                value = rest[index]
                index += 1
            else:
                return None  # the value is missing: let Typer say so
            if repeatable:
                found.setdefault(key, []).append(value)
            elif key in found:
                return None  # given twice: Typer decides which wins
            else:
                found[key] = value
        else:
            names.append(token)
    if len(names) != 1:
        return None
    if "tenant" not in found and os.environ.get("HYAC_TENANT"):
        found["tenant"] = os.environ["HYAC_TENANT"]
    return {"name": names[0], **found}


def _fast_enabled() -> bool:
    if os.environ.get("HYAC_NO_FAST_PATH"):
        return False
    try:
        return not os.isatty(sys.stderr.fileno())
    except (AttributeError, ValueError, OSError):
        return False


def run() -> None:
    """Entry point of the ``hyac`` console script."""
    arguments = parse_invoke(sys.argv[1:]) if _fast_enabled() else None
    if arguments is None:
        from hyac_cli.main import run as run_full

        run_full()
        return
    sys.exit(_invoke(arguments))


def _invoke(arguments: dict[str, Any]) -> int:
    """``run_invoke`` with the failures handled as the Typer app handles them."""
    from hyac_cli.invoking import run_invoke
    from hyac_cli.terminal import report_failure
    from hyac_common.errors import HyacError, LocalOSError

    as_json = bool(arguments.get("as_json"))
    try:
        return run_invoke(**arguments, light=True)
    except HyacError as exc:
        report_failure(exc.message, code=exc.code, as_json=as_json, details=exc.details)
        return exc.exit_code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:
        from hyac_cli.terminal import os_error_message

        report_failure(os_error_message(exc), code=LocalOSError.code, as_json=as_json)
        return LocalOSError.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("\nAborted!\n")
        return 1
