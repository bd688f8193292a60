"""`hyac notify …` as a user types it, against the agent app in this process (its real
routes and delivery, reached through the CLI's client) and a loopback receiver."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from typer.testing import CliRunner, Result

from hyac_cli import client
from hyac_cli.main import app
from tests.in_process import InProcessAgent
from tests.notify.conftest import Receiver, agent_with

Run = Callable[..., Result]


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessAgent]:
    with agent_with(tmp_path_factory.mktemp("cli-agent"), HYAC_CALLBACK_ALLOW_CIDRS="127.0.0.0/8",
                    HYAC_NOTIFY_BACKOFF="0", HYAC_NOTIFY_RETRIES="0") as running:
        yield running


@pytest.fixture
def hyac(agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("HYAC_URL", agent.url)
    monkeypatch.setenv("HYAC_TOKEN", agent.token)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(client, "transport_factory", lambda: agent.transport)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    served = Receiver()
    yield served
    served.close()


def test_add_ls_test_deliveries_rm(hyac: Run, receiver: Receiver) -> None:
    made = hyac("notify", "channel", "add", "ops", "--type", "webhook", "--url", "-",
                input=receiver.url + "\n")
    assert made.exit_code == 0, made.output
    assert "signing key: hyac_whk_" in made.output and receiver.url not in made.output

    listed = hyac("notify", "channel", "ls", "--json")
    assert [c["name"] for c in json.loads(listed.stdout)] == ["ops"]
    assert receiver.url not in listed.stdout

    tested = hyac("notify", "channel", "test", "ops")
    assert tested.exit_code == 0, tested.output
    assert "delivered" in tested.output and len(receiver.calls) == 1

    receiver.answers = [500]
    failed = hyac("notify", "channel", "test", "ops")
    assert failed.exit_code == 1 and "HTTP 500" in failed.output

    rows = json.loads(hyac("notify", "deliveries", "--channel", "ops", "--json").stdout)
    assert [r["status"] for r in rows] == ["failed", "delivered"]
    table = hyac("notify", "deliveries").stdout
    assert "delivered" in table and "HTTP 500" in table

    assert hyac("notify", "channel", "rm", "ops").exit_code == 0
    assert json.loads(hyac("notify", "channel", "ls", "--json").stdout) == []


def test_bad_input_is_one_line(hyac: Run, receiver: Receiver) -> None:
    refused = hyac("notify", "channel", "add", "meta", "--type", "slack", "--url",
                   "http://169.254.169.254/latest")
    assert refused.exit_code != 0 and "link-local" in refused.output
    assert "Traceback" not in refused.output
    missing = hyac("notify", "channel", "test", "nope", "--json")
    assert missing.exit_code != 0 and json.loads(missing.stdout)["error"]["code"] == "not_found"
    unknown = hyac("notify", "alert", "add", "weather", "--channel", "nope")
    assert unknown.exit_code != 0 and "unknown alert kind" in unknown.output


def test_alert_rules(hyac: Run, receiver: Receiver) -> None:
    assert hyac("notify", "channel", "add", "pager", "--platform", "--type", "slack",
                "--url", receiver.url).exit_code == 0
    made = hyac("notify", "alert", "add", "error_rate", "--channel", "pager", "--threshold",
                "0.2", "--window", "10m", "--json")
    assert made.exit_code == 0, made.output
    rule = json.loads(made.stdout)
    assert rule["options"] == {"threshold": 0.2, "window": 600.0, "min_calls": 10}
    shown = hyac("notify", "alert", "ls")
    assert "error_rate" in shown.stdout and "pager" in shown.stdout
    assert hyac("notify", "alert", "rm", str(rule["id"])).exit_code == 0
    assert json.loads(hyac("notify", "alert", "ls", "--json").stdout)["rules"] == []
    # a platform channel's rules go with it
    assert hyac("notify", "alert", "add", "task_dead", "--channel", "pager").exit_code == 0
    assert hyac("notify", "channel", "rm", "pager", "--platform").exit_code == 0
    assert json.loads(hyac("notify", "alert", "ls", "--json").stdout)["rules"] == []
