"""``hyac vulndb``: the agent's vulnerability advisory database, from any machine with
the owner's token (no shell on the agent host needed)."""

from pathlib import Path
from typing import Annotated, Any

import typer

from hyac_cli import options

app = typer.Typer(help="The agent's vulnerability advisory database (OSV format).",
                  no_args_is_help=True, rich_markup_mode=None)

#: an OSV ecosystem zip is tens of MiB; importing and rescanning takes a while
IMPORT_TIMEOUT = 1800.0


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(
        show_default=False, exists=True, dir_okay=False, readable=True,
        help="An OSV JSON file (a record or a list of them) or an OSV ecosystem zip, "
             "such as PyPI/all.zip from osv-vulnerabilities.storage.googleapis.com.")],
    as_json: options.Json = False,
) -> None:
    """Upload advisories to the agent (the platform owner only).

    All or nothing: a file with one bad record changes nothing. Afterwards the agent
    rescans every tenant's active versions and the published templates; new findings
    are listed here, recorded with each version and raise the vulnerabilities alert.
    """
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    term = Terminal()
    size = file.stat().st_size
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in file.name)[:120] or "upload"
    with client.connect(timeout=IMPORT_TIMEOUT) as agent:
        with term.status(f"uploading {file.name} ({_size(size)}), then importing and "
                         "rescanning…") if not as_json else _quiet():
            answer = agent.send("POST", f"/v1/system/vulndb/import?name={name}",
                                content=file.read_bytes(),
                                headers={"Content-Type": "application/octet-stream"})
    summary: dict[str, Any] = answer.json()
    if as_json:
        term.print_json(summary)
        return
    ecosystems = ", ".join(summary["ecosystems"]) or "no PyPI or npm packages"
    term.say(f"{summary['advisories']} advisories imported ({ecosystems})")
    for line in summary["rescanned_with_new_findings"]:
        term.say(f"new findings: {line}", style="yellow")
    for line in summary["templates_with_new_findings"]:
        term.say(f"new findings in template {line}", style="yellow")
    if not summary["rescanned_with_new_findings"] and not summary["templates_with_new_findings"]:
        term.note("no new findings in active versions or templates")


@app.command("status")
def status(as_json: options.Json = False) -> None:
    """Sources, advisory counts per ecosystem, and the age of each import."""
    from hyac_cli import client
    from hyac_cli.terminal import Terminal

    term = Terminal()
    with client.connect() as agent:
        info = agent.get("/v1/vulndb")
    if as_json:
        term.print_json(info)
        return
    term.say(f"sources: {', '.join(info['sources'])}")
    term.say(f"advisories: {info['advisories']} (stale after {info['max_age_days']:g} days)")
    if not info["ecosystems"]:
        term.note("no ecosystem imported: every package scans as unknown", style="yellow")
    for eco, row in info["ecosystems"].items():
        stale = "  STALE: packages scan as unknown" if row["stale"] else ""
        term.say(f"  {eco}: {row['advisories']} advisories, from {row['source']}, "
                 f"{row['age_days']:g} days old{stale}")


def _size(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB" if size >= 1 << 20 else f"{size / 1024:.0f} KiB"


def _quiet() -> Any:
    from contextlib import nullcontext

    return nullcontext()
