"""The CLI must start fast: heavy libraries are imported by the commands that use them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["httpx", "pydantic", "rich.table", "hyac_common.wire", "tomllib", "hyac_cli.manifest"]


def imported_after(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_importing_the_cli_pulls_in_nothing_heavy() -> None:
    loaded = imported_after("import hyac_cli.main")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert "hyac_cli.commands.deploy" in loaded  # the commands are registered, just lazily


def test_help_stays_light() -> None:
    loaded = imported_after(
        "from typer.testing import CliRunner\n"
        "from hyac_cli.main import app\n"
        "assert CliRunner().invoke(app, ['deploy', '--help']).exit_code == 0"
    )
    # Typer itself may bring pydantic and rich to parse options and draw help.
    assert not loaded & {"httpx", "hyac_common.wire"}


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hyac_cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    assert out.stdout.startswith("hyac ")
