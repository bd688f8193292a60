"""``hyac-agent vulndb``: import OSV advisories, show the database, rescan versions.

It works on the agent's store directly (the data dir's database, or HYAC_DATABASE_URL),
so it runs beside a serving agent or with none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

app = typer.Typer(help="The vulnerability advisory database (OSV format).",
                  no_args_is_help=True, rich_markup_mode=None)

DataDir = Annotated[Optional[Path], typer.Option(help="State directory [env: HYAC_DATA_DIR].")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _service(data_dir: Path | None) -> tuple[Any, Path]:
    """The scanning service on the agent's store, and the agent's data dir."""
    from hyac_agent.config import AgentConfig
    from hyac_agent.store import SqlStore
    from hyac_agent.vulns.service import VulnService

    config = AgentConfig()
    if data_dir is not None:
        config.data_dir = data_dir
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = SqlStore(config.resolved_database_url())
    store.create_schema()
    return VulnService(store), config.data_dir


def _run(action: Any, as_json: bool) -> Any:
    from hyac_common.errors import HyacError

    try:
        return action()
    except (HyacError, ValueError, OSError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        if as_json:
            code = getattr(exc, "code", "error")
            typer.echo(json.dumps({"error": {"code": code, "message": message}}))
        typer.echo(f"Error: {message}", err=True)
        raise typer.Exit(1) from None


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="An OSV JSON file, a folder of them, or an "
                                              "OSV ecosystem zip (e.g. PyPI/all.zip).",
                                         show_default=False)],
    source: Annotated[str, typer.Option(help="A name for where the data came from.")] = "import",
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Import advisories (all or nothing), then rescan every active version and the
    published templates."""
    if not as_json:
        typer.echo(f"importing {path} …", err=True)

    def run() -> Any:
        service, data = _service(data_dir)
        return service.import_path(path, source[:64], data)

    summary = _run(run, as_json)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"{summary['advisories']} advisories imported "
               f"({', '.join(summary['ecosystems']) or 'no PyPI or npm packages'})")
    for line in summary["rescanned_with_new_findings"]:
        typer.echo(f"new findings: {line}")
    for line in summary["templates_with_new_findings"]:
        typer.echo(f"new findings in template {line}")


@app.command("status")
def status(data_dir: DataDir = None, as_json: Json = False) -> None:
    """Sources, advisory counts per ecosystem, and the age of each import."""
    info = _run(lambda: _service(data_dir)[0].status(), as_json)
    if as_json:
        typer.echo(json.dumps(info))
        return
    typer.echo(f"sources: {', '.join(info['sources'])}")
    typer.echo(f"advisories: {info['advisories']} (stale after {info['max_age_days']:g} days)")
    if not info["ecosystems"]:
        typer.echo("no ecosystem imported: every package scans as unknown")
    for eco, row in info["ecosystems"].items():
        stale = "  STALE: packages scan as unknown" if row["stale"] else ""
        typer.echo(f"  {eco}: {row['advisories']} advisories, from {row['source']}, "
                   f"{row['age_days']:g} days old{stale}")


@app.command("rescan")
def rescan(data_dir: DataDir = None, as_json: Json = False) -> None:
    """Rescan every active version now; list those with new findings."""
    changed = _run(lambda: _service(data_dir)[0].rescan_active(), as_json)
    rows = [{"tenant": t, "function": n, "version": v, "new": ids} for t, n, v, ids in changed]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        typer.echo(f"{row['tenant']}/{row['function']} v{row['version']}: {', '.join(row['new'])}")
    if not rows:
        typer.echo("no new findings")
