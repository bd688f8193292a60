"""``hyac init --runtime python3.12-wasm``: the project and its stubs are those of
python3.12, since the guest runs the same context module."""

from __future__ import annotations

from pathlib import Path

from hyac_cli.manifest import load_project
from tests.cli.conftest import Run, cli_environment, run  # noqa: F401 - fixtures

FILES = ["typings/hyac_context.pyi", "typings/__builtins__.pyi", "pyrightconfig.json",
         "mypy.ini", "functions/hello.py"]


def test_init_for_wasm_writes_the_python_stubs(run: Run, cli_environment: Path) -> None:  # noqa: F811
    for name, runtime in (("wasm", "python3.12-wasm"), ("plain", "python3.12")):
        result = run("init", name, "--runtime", runtime)
        assert result.exit_code == 0, result.output
    assert load_project(cli_environment / "wasm").runtime == "python3.12-wasm"
    for rel in FILES:
        assert (cli_environment / "wasm" / rel).read_text() == (cli_environment / "plain" / rel).read_text(), rel


def test_init_refuses_another_wasm_version(run: Run) -> None:  # noqa: F811
    result = run("init", "odd", "--runtime", "python3.11-wasm")
    assert result.exit_code != 0
    assert "unknown runtime 'python3.11-wasm'" in result.output
