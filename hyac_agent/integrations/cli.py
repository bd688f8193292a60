"""``hyac-agent storage``: move tenants' objects between the built-in store and S3.

It works on the agent's store directly (the data dir's database, or HYAC_DATABASE_URL),
with the storage settings in effect (the environment's, else those set through
``hyac system integrations set storage``), so it runs beside serving agents or with none:
objects keep being served from wherever their row says while they move."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

app = typer.Typer(help="Tenants' object storage: move objects between backends.",
                  no_args_is_help=True, rich_markup_mode=None)


@app.command()
def migrate(
    to: Annotated[str, typer.Option("--to", help="Where the objects go: s3 or builtin.",
                                    show_default=False)],
    tenant: Annotated[Optional[str], typer.Option(help="Only this tenant's objects (default: "
                                                       "every tenant's).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(
        help="State directory [env: HYAC_DATA_DIR].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Copy every object not yet in the backend --to there, check each copy by its sha256,
    then drop the old copy. Interrupted or partly failed, run it again: it resumes."""
    from hyac_common.errors import HyacError

    try:
        outcome = _migrate(to, tenant, data_dir, as_json)
    except (HyacError, ValueError, OSError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        if as_json:
            typer.echo(json.dumps({"error": {"code": getattr(exc, "code", "error"), "message": message}}))
        typer.echo(f"Error: {message}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(outcome))
    else:
        typer.echo(f"moved {outcome['moved']} object(s), {outcome['bytes']} bytes, to {to}"
                   + (f"; {outcome['failed']} failed (run again to retry): {outcome['last_error']}"
                      if outcome["failed"] else ""))
    if outcome["failed"]:
        raise typer.Exit(1)


def _migrate(to: str, tenant: str | None, data_dir: Path | None, quiet: bool) -> dict[str, Any]:
    import functools
    import sys

    from pydantic import ValidationError

    from hyac_agent.config import AgentConfig, config_error
    from hyac_agent.integrations import IntegrationService
    from hyac_agent.integrations.storage import StorageIntegration, storage_target
    from hyac_agent.store import SqlStore
    from hyac_agent.tenancy.objects import MigrationProgress, ObjectStore
    from hyac_agent.tenancy.store import TenancyStore
    from hyac_common.errors import InvalidInput
    from hyac_common.names import validate_name

    if tenant is not None:
        validate_name(tenant, "tenant")
    try:
        given: dict[str, Any] = {"data_dir": data_dir} if data_dir is not None else {}
        config = AgentConfig(**given)
    except ValidationError as exc:
        raise InvalidInput(config_error(exc)) from None
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = SqlStore(config.resolved_database_url())
    store.create_schema()
    TenancyStore(store.engine).create_schema()  # the objects' location column, on old stores
    integrations = IntegrationService(store.engine, config.data_dir, config,
                                      [StorageIntegration(store.engine)])
    objects = ObjectStore(store.engine,
                          storage_target(functools.partial(integrations.values, "storage")))
    tty = sys.stderr.isatty() and not quiet

    def progress(state: MigrationProgress) -> None:
        if quiet:
            return
        line = (f"{state.done + state.failed}/{state.total} objects, {state.bytes} bytes"
                + (f", {state.failed} failed" if state.failed else ""))
        if tty:
            sys.stderr.write(f"\r{line}")
        elif state.done + state.failed in (0, state.total) or (state.done + state.failed) % 100 == 0:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    try:
        state = objects.migrate(to, tenant, progress)
    finally:
        if tty:
            sys.stderr.write("\n")
        store.close()
    return {"to": to, "tenant": tenant, "total": state.total, "moved": state.done,
            "bytes": state.bytes, "failed": state.failed, "last_error": state.last_error or None}
