"""``hyac schedule``, ``hyac trigger``, ``hyac webhook`` and hyac.toml's schedule and
``[functions.NAME.on]``, as a user types them, against a real agent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hyac_agent.triggers.signatures import sign
from tests.conftest import RunningAgent, start_agent
from tests.waiting import eventually


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    home = tmp_path_factory.mktemp("triggers-cli")
    running = start_agent(home / "data", "--insecure-no-sandbox")
    yield running
    running.kill(signal.SIGTERM)


def hyac(agent: RunningAgent, *args: str, cwd: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HYAC_")}
    env.update(HYAC_DATA_DIR=str(agent.data_dir), HYAC_CONFIG_DIR=os.environ["HYAC_CONFIG_DIR"],
               NO_COLOR="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "hyac_cli", *args], capture_output=True,
                          text=True, timeout=60, env=env, cwd=cwd)


def _project(root: Path, manifest: str) -> Path:
    (root / "functions").mkdir(parents=True, exist_ok=True)
    (root / "functions" / "report.py").write_text("def main(context):\n    return context.request.json()\n")
    (root / "hyac.toml").write_text(manifest)
    return root


def test_hyac_toml_triggers_deploy_and_list(agent: RunningAgent, tmp_path: Path) -> None:
    project = _project(tmp_path / "p", """
[project]
name = "reports"

[functions.report]
schedule = "0 9 * * 1-5"
timezone = "Europe/Paris"
catch_up = "skip"

[functions.report.on]
storage = { events = ["put"], prefix = "incoming/" }
""")
    deployed = hyac(agent, "deploy", cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    listed = json.loads(hyac(agent, "trigger", "ls", "--json").stdout)
    [entry] = listed
    assert entry["function"] == "report"
    assert [(s["cron"], s["timezone"], s["catch_up"], s["source"]) for s in entry["schedules"]] \
        == [("0 9 * * 1-5", "Europe/Paris", "skip", "manifest")]
    assert [(e["source"], e["events"], e["prefix"]) for e in entry["subscriptions"]] \
        == [("storage", ["put"], "incoming/")]
    text = hyac(agent, "trigger", "ls").stdout
    assert "0 9 * * 1-5 (Europe/Paris)" in text and "storage put under 'incoming/'" in text

    (project / "hyac.toml").write_text('[project]\nname = "reports"\n\n[functions.report]\n'
                                       'schedule = "0 9 * *"\n')
    bad = hyac(agent, "deploy", cwd=project)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "hyac.toml:5" in bad.stderr and "cron line" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0


def test_schedule_commands(agent: RunningAgent, tmp_path: Path) -> None:
    agent.deploy("nightly", "def main(context):\n    return context.request.json()\n")
    made = hyac(agent, "schedule", "add", "nightly", "30 2 * * *", "--tz", "Asia/Tokyo", "--json")
    assert made.returncode == 0, made.stderr
    schedule = json.loads(made.stdout)
    assert schedule["timezone"] == "Asia/Tokyo" and schedule["next_run_at"] > time.time()
    assert schedule["id"] in hyac(agent, "schedule", "ls", "-f", "nightly").stdout
    assert "paused" in hyac(agent, "schedule", "pause", schedule["id"]).stdout
    assert "resumed" in hyac(agent, "schedule", "resume", schedule["id"]).stdout
    ran = hyac(agent, "schedule", "run", schedule["id"])
    assert ran.returncode == 0 and ran.stdout.startswith("task_")
    task_id = ran.stdout.strip()
    with agent.client() as client:
        eventually(lambda: client.get(f"/v1/tasks/{task_id}").json()["status"] == "succeeded")
    shown = hyac(agent, "tasks", "show", task_id).stdout
    assert f"schedule {schedule['id']}" in shown and "(run by hand)" in shown
    logs = hyac(agent, "logs", "nightly")
    assert f"schedule {schedule['id']}" in logs.stdout and task_id in logs.stdout
    assert hyac(agent, "schedule", "rm", schedule["id"]).returncode == 0

    for args, words in [
        (("schedule", "add", "nightly", "99 * * * *"), "invalid cron line"),
        (("trigger", "add", "nightly", "task", "--of", "ghost"), "not found"),
    ]:
        bad = hyac(agent, *args)
        assert bad.returncode != 0 and words in bad.stderr, (args, bad.stderr)
        assert bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
    as_json = hyac(agent, "schedule", "add", "nightly", "nope", "--json")
    assert as_json.returncode != 0
    assert json.loads(as_json.stdout)["error"]["code"] == "invalid_input"
    assert json.loads(hyac(agent, "schedule", "ls", "-f", "nightly", "--json").stdout) == []


def test_webhook_and_event_trigger_commands(agent: RunningAgent) -> None:
    agent.deploy("hook", "def main(context):\n    return context.request.json()\n")
    made = hyac(agent, "webhook", "add", "hook", "--scheme", "github", "--secret", "cli-secret-1")
    assert made.returncode == 0, made.stderr
    url = made.stdout.split("url", 1)[1].split()[0]
    assert "cli-secret-1" in made.stdout and "not shown again" in made.stderr
    assert "cli-secret-1" not in hyac(agent, "webhook", "ls").stdout
    body = b'{"zen": "Keep it logically awesome."}'
    answer = httpx.post(url, content=body, headers={
        "X-Hub-Signature-256": sign("github", "cli-secret-1", body, 0)})
    assert answer.status_code == 202, answer.text
    assert httpx.post(url, content=body).status_code == 401

    sub = hyac(agent, "trigger", "add", "hook", "task", "--of", "hook", "-e", "dead", "--json")
    assert sub.returncode == 0, sub.stderr
    sub_id = json.loads(sub.stdout)["id"]
    assert "hook tasks dead" in hyac(agent, "trigger", "ls", "-f", "hook").stdout
    assert hyac(agent, "trigger", "rm", sub_id).returncode == 0
    webhook_id = url.rsplit("/", 1)[1]
    assert hyac(agent, "webhook", "rm", webhook_id).returncode == 0
    assert httpx.post(url, content=body, headers={
        "X-Hub-Signature-256": sign("github", "cli-secret-1", body, 0)}).status_code == 404
