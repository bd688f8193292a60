"""CLI unit tests: the `hyac` app driven in-process against a fake agent."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from hyac_cli import client
from hyac_cli.main import app

from .fake_agent import TOKEN, URL, FakeAgent

Run = Callable[..., Result]

HELLO = '''\
async def main(context):
    context.logger.info("hi")
    return {"hello": "world"}
'''


@pytest.fixture(autouse=True)
def cli_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory, plain (uncoloured) output, no agent configured."""
    for key in ("HYAC_URL", "HYAC_TOKEN", "HYAC_TENANT", "HYAC_PORT", "FORCE_COLOR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HYAC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HYAC_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def run() -> Run:
    """``run("deploy", "--json")`` invokes the CLI and returns typer's Result."""
    runner = CliRunner()

    def invoke(*args: str, input: str | bytes | None = None) -> Result:
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def fake_agent(monkeypatch: pytest.MonkeyPatch) -> FakeAgent:
    """The CLI talks to this in-process fake instead of a real agent."""
    fake = FakeAgent()
    monkeypatch.setenv("HYAC_URL", URL)
    monkeypatch.setenv("HYAC_TOKEN", TOKEN)
    monkeypatch.setattr(client, "transport_factory", fake.transport)
    return fake


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


@pytest.fixture
def project(cli_environment: Path) -> Path:
    """A small project in the working directory: hyac.toml and functions/hello.py."""
    return write(cli_environment, {
        "hyac.toml": '[project]\nname = "demo"\nruntime = "python3.11"\ntenant = "acme"\n',
        "functions/hello.py": HELLO,
    })
