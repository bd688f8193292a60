"""The ``hyac`` command. This module only assembles the command groups.

Start-up must stay fast: the command modules import httpx, pydantic and rich tables
inside their bodies, and ``tests/cli/test_startup.py`` checks that importing this
module pulls in none of them.
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from hyac_cli.commands import (
    agent,
    audit,
    console,
    deploy,
    dev,
    edge,
    editor,
    env,
    functions,
    init,
    invoke,
    login,
    logs,
    notify,
    quota,
    runtime,
    scan,
    schedule,
    secret,
    storage,
    system,
    tasks,
    template,
    tenant,
    token,
    trigger,
    user,
    vulndb,
    webhook,
)
from hyac_cli.terminal import wants_json
from hyac_common import errors
from hyac_common.errors import HyacError

try:  # Typer vendors Click: its own exceptions are the ones its commands raise
    from typer._click.exceptions import UsageError
except ImportError:  # a Typer that uses Click itself
    from click.exceptions import UsageError  # type: ignore[assignment]


class HyacGroup(TyperGroup):
    """Turns user-facing failures into ``Error: ...`` on stderr and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        # The command line after `hyac`: its --json decides how a failure is reported.
        args = [*getattr(ctx, "_protected_args", ()), *ctx.args]
        with handle_errors(as_json=wants_json(args)):
            return super().invoke(ctx)


app = typer.Typer(
    name="hyac",
    cls=HyacGroup,
    help="Hyac: deploy and run serverless functions on your own machines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: rich-formatted help costs more start-up time than the rest of the CLI.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.command("init")(init.init)
app.command("deploy")(deploy.deploy)
app.command("invoke")(invoke.invoke)
app.command("logs")(logs.logs)
app.command("ls")(functions.ls)
app.command("rm")(functions.rm)
app.command("versions")(functions.versions)
app.command("rollback")(functions.rollback)
app.command("stubs")(editor.stubs)
app.command("complete")(editor.complete)
app.command("lsp")(editor.lsp)
app.command("dev")(dev.dev)
app.add_typer(agent.app, name="agent")
app.add_typer(tasks.app, name="tasks")
app.add_typer(runtime.app, name="runtime")
app.command("login")(login.login)
app.command("audit")(audit.audit)
app.command("console")(console.console)
app.command("scan")(scan.scan)
app.command("scan-policy")(scan.scan_policy)
app.command("sbom")(scan.sbom)
app.add_typer(login.profile_app, name="profile")
app.add_typer(tenant.app, name="tenant")
app.add_typer(quota.app, name="quota")
app.add_typer(user.app, name="user")
app.add_typer(token.app, name="token")
app.add_typer(secret.app, name="secret")
app.add_typer(env.app, name="env")
app.add_typer(storage.app, name="storage")
app.add_typer(notify.app, name="notify")
app.add_typer(system.app, name="system")
app.add_typer(template.app, name="template")
app.add_typer(vulndb.app, name="vulndb")
app.add_typer(schedule.app, name="schedule")
app.add_typer(trigger.app, name="trigger")
app.add_typer(webhook.app, name="webhook")
app.add_typer(edge.ip_app, name="ip")
app.add_typer(edge.access_app, name="access")
app.add_typer(edge.domain_app, name="domain")


def _print_version(value: bool) -> None:
    if value:
        from hyac_cli import __version__

        typer.echo(f"hyac {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True,
                     help="Print the version and exit."),
    ] = False,
) -> None:
    """Hyac: deploy and run serverless functions on your own machines."""


@contextmanager
def handle_errors(*, as_json: bool = False) -> Iterator[None]:
    """One line on stderr and a non-zero exit for every failure that is not a bug; with
    ``--json`` also the error as one JSON object on stdout."""
    try:
        yield
    except HyacError as exc:
        _fail(exc.message, exc.exit_code, exc.code, as_json, exc.details)
    except BrokenPipeError:
        # The reader went away (`hyac logs | head`): stop quietly, like other tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(1) from None
    except OSError as exc:
        from hyac_cli.terminal import os_error_message

        _fail(os_error_message(exc), errors.LocalOSError.exit_code, errors.LocalOSError.code, as_json)
    except UsageError as exc:
        if not as_json:
            raise  # Click prints the usage with it
        _fail(exc.format_message(), exc.exit_code, errors.UsageError.code, as_json)
    except Exception as exc:
        httpx = sys.modules.get("httpx")
        if httpx is not None and isinstance(exc, httpx.HTTPError):
            _fail(f"talking to the agent failed: {exc}", 1, errors.AgentUnreachable.code, as_json)
        pydantic = sys.modules.get("pydantic")
        if pydantic is not None and isinstance(exc, pydantic.ValidationError):
            first = exc.errors()[0] if exc.errors() else {}
            where = ".".join(str(p) for p in first.get("loc", ()))
            _fail(f"unexpected answer from the agent ({where}: {first.get('msg', exc)})", 1,
                  errors.UnexpectedAnswer.code, as_json)
        raise


def _fail(message: str, exit_code: int, code: str, as_json: bool,
          details: dict[str, Any] | None = None) -> NoReturn:
    from hyac_cli.terminal import report_failure

    report_failure(message, code=code, as_json=as_json, details=details)
    raise typer.Exit(exit_code)


def run() -> None:
    """Entry point of the ``hyac`` console script."""
    try:
        # failures outside any command, e.g. while parsing options
        with handle_errors(as_json=wants_json(sys.argv[1:])):
            app(prog_name="hyac")
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
