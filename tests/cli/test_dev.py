"""The `hyac dev` loop's decisions, driven by hand against the fake agent."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from hyac_cli.commands.dev import DevLoop
from hyac_cli.manifest import load_project
from hyac_cli.terminal import Terminal

from .conftest import HELLO, Run, write
from .fake_agent import FakeAgent


@pytest.fixture
def loop(project: Path, fake_agent: FakeAgent) -> DevLoop:
    write(project, {"functions/other.py": HELLO,
                    "hyac.toml": '[project]\nname = "demo"\ntenant = "acme"\n\n'
                                 '[functions.hello]\nsample = { name = "Sam" }\n'})
    dev = DevLoop(Terminal(), project, "acme", [], [])
    yield dev
    dev.close()


def puts(fake: FakeAgent) -> list[str]:
    return [r.url.path.rsplit("/", 1)[1] for r in fake.calls("PUT")]


def test_only_the_changed_function_is_redeployed(
    loop: DevLoop, project: Path, fake_agent: FakeAgent, capsys: pytest.CaptureFixture[str]
) -> None:
    loop.deploy(None)
    assert puts(fake_agent) == ["hello", "other"]
    (replayed,) = fake_agent.calls("POST", "/v1/functions/hello/invoke")
    request = json.loads(replayed.content)
    assert request["method"] == "POST"
    assert json.loads(base64.b64decode(request["body_b64"])) == {"name": "Sam"}
    (project / "functions/other.py").write_text(HELLO + "# changed\n")
    loop.on_changes({project / "functions/other.py"})
    assert puts(fake_agent) == ["hello", "other", "other"]
    assert len(fake_agent.calls("POST")) == 1  # other has no sample
    out = capsys.readouterr().out
    assert "other  v2  deployed" in out and "replay hello → 200" in out


def test_errors_stay_inline(loop: DevLoop, project: Path, fake_agent: FakeAgent,
                            capsys: pytest.CaptureFixture[str]) -> None:
    (project / "functions/hello.py").write_text("def main(context):\n    return (\n")
    loop.on_changes({project / "functions/hello.py"})
    assert puts(fake_agent) == []
    assert "Error: functions/hello.py:2: SyntaxError" in capsys.readouterr().err
    (project / "hyac.toml").write_text('[project]\nname = "demo"\nnope = 1\n')
    loop.on_changes({project / "hyac.toml"})
    assert "hyac.toml:3: unknown key 'nope'" in capsys.readouterr().err


def test_which_paths_matter(loop: DevLoop, project: Path) -> None:
    loop.functions = {"hello", "gone"}
    relevant = [
        "hyac.toml", "functions/hello.py", "functions/pkg/main.py", "functions/pkg/util.txt",
        "functions/gone",
    ]
    ignored = [
        "README.md", "typings/hyac_context.pyi", "functions/sedAb12", "functions/.hello.py.swp",
        "functions/pkg/__pycache__/x.pyc", "functions/pkg/x.py~", "functions/_private.py",
    ]
    (project / "functions/pkg").mkdir()
    assert [p for p in relevant if not loop._relevant(None, str(project / p))] == []
    assert [p for p in ignored if loop._relevant(None, str(project / p))] == []


def test_sample_is_a_manifest_key_kept_out_of_the_deploy(
    run: Run, project: Path, fake_agent: FakeAgent
) -> None:
    write(project, {"hyac.toml": '[project]\nname = "demo"\n\n[functions.hello]\n'
                                 'sample = { name = "Sam" }\ntimeout = 5\n'})
    assert load_project(project).functions["hello"].sample == {"name": "Sam"}
    assert run("deploy").exit_code == 0
    config = json.loads(fake_agent.calls("PUT")[0].content)["config"]
    assert "sample" not in config and config["timeout"] == 5


def test_replay_file_must_hold_objects(run: Run, project: Path, fake_agent: FakeAgent) -> None:
    (project / "replay.json").write_text("[1]")
    result = run("dev", "--replay", "replay.json")
    assert result.exit_code == 2 and "expected a JSON object" in result.stderr
