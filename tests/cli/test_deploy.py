from __future__ import annotations

import base64
import json
from pathlib import Path

from .conftest import HELLO, Run, write
from .fake_agent import FakeAgent, error


def test_deploy_all_then_unchanged_then_new_version(
    run: Run, project: Path, fake_agent: FakeAgent
) -> None:
    first = run("deploy")
    assert first.exit_code == 0, first.output
    assert first.stdout == "hello  v1  deployed\n"

    again = run("deploy")
    assert again.exit_code == 0
    assert again.stdout == "hello  v1  unchanged\n"

    (project / "functions/hello.py").write_text(HELLO + "# changed\n")
    changed = run("deploy")
    assert changed.stdout == "hello  v2  deployed\n"


def test_deploy_request_carries_bundle_config_and_tenant(
    run: Run, project: Path, fake_agent: FakeAgent
) -> None:
    write(project, {
        "hyac.toml": """\
            [project]
            name = "demo"
            runtime = "python3.11"
            tenant = "acme"

            [functions.report]
            timeout = "10m"
            memory = "256Mi"
            env = { REGION = "eu" }
            retries = 2
            """,
        "functions/report/main.py": "from helpers import X\n\ndef main(context):\n    return X\n",
        "functions/report/helpers.py": "X = 1\n",
    })
    result = run("deploy", "report")
    assert result.exit_code == 0, result.output
    (put,) = fake_agent.calls("PUT")
    assert put.url.path == "/v1/functions/report"
    assert put.headers["x-hyac-tenant"] == "acme"
    assert put.headers["authorization"] == "Bearer test-token"
    body = json.loads(put.content)
    assert body["entry"] == "functions/report/main.py"
    assert sorted(body["files_b64"]) == ["functions/report/helpers.py", "functions/report/main.py"]
    assert base64.b64decode(body["files_b64"]["functions/report/helpers.py"]) == b"X = 1\n"
    config = body["config"]
    assert config["runtime"] == "python3.11"
    assert config["timeout"] == 600.0
    assert config["memory"] == 256 * 1024 * 1024
    assert config["env"] == {"REGION": "eu"}
    assert config["retries"] == 2


def test_deploy_from_a_subdirectory_with_tenant_override(
    run: Run, project: Path, fake_agent: FakeAgent, monkeypatch
) -> None:
    monkeypatch.chdir(project / "functions")
    result = run("deploy", "--tenant", "other")
    assert result.exit_code == 0, result.output
    assert fake_agent.calls("PUT")[0].headers["x-hyac-tenant"] == "other"


def test_deploy_json(run: Run, project: Path, fake_agent: FakeAgent) -> None:
    write(project, {"functions/bye.py": HELLO})
    result = run("deploy", "--json")
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    assert [(r["name"], r["version"], r["created"]) for r in results] == [
        ("bye", 1, True), ("hello", 1, True),
    ]


def test_syntax_error_uploads_nothing(run: Run, project: Path, fake_agent: FakeAgent) -> None:
    write(project, {"functions/zzz.py": "def main(context):\n    x = (\n\n"})
    result = run("deploy")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: functions/zzz.py:2: SyntaxError: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert fake_agent.calls("PUT") == []


def test_manifest_error_is_one_line(run: Run, project: Path, fake_agent: FakeAgent) -> None:
    write(project, {"hyac.toml": '[project]\nname = "demo"\n\n[functions.hello]\ntimout = 3\n'})
    result = run("deploy")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: hyac.toml:5: unknown key 'timout' in [functions.hello]")
    assert fake_agent.requests == []


def test_deploy_unknown_function(run: Run, project: Path, fake_agent: FakeAgent) -> None:
    result = run("deploy", "nope")
    assert result.exit_code == 2
    assert "no function 'nope' in this project" in result.stderr


def test_deploy_outside_a_project(run: Run, fake_agent: FakeAgent) -> None:
    result = run("deploy")
    assert result.exit_code == 2
    assert "no hyac.toml in" in result.stderr
    assert "hyac init" in result.stderr


def test_deploy_agent_error_stops_with_one_line(
    run: Run, project: Path, fake_agent: FakeAgent, monkeypatch
) -> None:
    write(project, {"functions/zzz.py": HELLO})
    original = fake_agent.handle

    def refuse_zzz(request):
        if request.url.path.endswith("/zzz"):
            fake_agent.requests.append(request)
            return error(413, "payload_too_large", "bundle is larger than 50 MiB")
        return original(request)

    monkeypatch.setattr(fake_agent, "handle", refuse_zzz)
    result = run("deploy")
    assert result.exit_code == 1
    assert result.stdout == "hello  v1  deployed\n"
    assert result.stderr == "Error: deploying 'zzz' failed: bundle is larger than 50 MiB\n"


def test_the_sample_goes_with_the_deploy(run: Run, project: Path, fake_agent: FakeAgent) -> None:
    write(project, {"hyac.toml": '[project]\nname = "demo"\n\n[functions.hello]\n'
                                 'sample = { month = "2026-01", n = [1, 2] }\n'})
    assert run("deploy").exit_code == 0
    (put,) = fake_agent.calls("PUT")
    assert json.loads(put.content)["sample"] == {
        "method": "POST", "path": "/", "query": {}, "headers": {},
        "body": {"month": "2026-01", "n": [1, 2]}}


def test_a_sample_that_is_not_json_is_one_line(run: Run, project: Path,
                                                fake_agent: FakeAgent) -> None:
    write(project, {"hyac.toml": '[project]\nname = "demo"\n\n[functions.hello]\n'
                                 'sample = { when = 2026-01-01 }\n'})
    result = run("deploy")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: hyac.toml:5: sample of function 'hello': must be JSON")
    assert len(result.stderr.strip().splitlines()) == 1
    assert fake_agent.requests == []
