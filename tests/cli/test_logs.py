from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from hyac_cli import following
from hyac_cli.commands.logs import read_events

from .conftest import Run
from .fake_agent import FakeAgent

T0 = 1_764_087_505.123


def local(ts: float) -> str:
    return datetime.fromtimestamp(ts).isoformat(timespec="milliseconds")


def test_logs_lines_are_formatted(run: Run, fake_agent: FakeAgent) -> None:
    fake_agent.add_log("starting", ts=T0)
    fake_agent.add_log("greeting Ada", ts=T0 + 1, stream="logger", level="INFO")
    fake_agent.add_log("loaded", ts=T0 + 2, stream="stderr", request_id=None)
    result = run("logs")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{local(T0)} hello v3 req_abc123 stdout  starting",
        f"{local(T0 + 1)} hello v3 req_abc123 logger  INFO greeting Ada",
        f"{local(T0 + 2)} hello v3 - stderr  loaded",
    ]


def test_logs_filters_are_sent(run: Run, fake_agent: FakeAgent) -> None:
    before = time.time()
    fake_agent.add_log("recent", ts=before)
    result = run("logs", "hello", "--since", "10m", "--limit", "5")
    assert result.exit_code == 0, result.output
    (call,) = fake_agent.calls("GET", "/v1/logs")
    params = call.url.params
    assert params["function"] == "hello"
    assert params["limit"] == "5"
    assert before - 600 - 1 < float(params["since"]) <= time.time() - 600


def test_logs_json_is_one_object_per_line(run: Run, fake_agent: FakeAgent) -> None:
    fake_agent.add_log("one", ts=T0)
    fake_agent.add_log("two", ts=T0 + 1)
    result = run("logs", "--json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["message"] for line in lines] == ["one", "two"]
    assert lines[0]["request_id"] == "req_abc123"


def test_logs_follow_streams_without_repeating(run: Run, fake_agent: FakeAgent) -> None:
    new = fake_agent.add_log("new", ts=T0 + 5)
    fake_agent.logs.remove(new)  # written after the listing, seen by the stream only
    old = fake_agent.add_log("old", ts=T0)
    fake_agent.stream = [
        ": connected\n\n",
        old,  # the stream's backlog repeats what was listed
        ": ping\n\n",
        new,
        "data: not json\n\n",
        KeyboardInterrupt(),
    ]
    result = run("logs", "-f")
    assert result.exit_code == 0, result.output
    assert [line.split()[-1] for line in result.stdout.splitlines()] == ["old", "new"]
    (stream,) = fake_agent.calls("GET", "/v1/logs/stream")
    assert float(stream.url.params["since"]) == T0
    assert "limit" not in stream.url.params


def test_logs_follow_reports_a_closed_stream(
    run: Run, fake_agent: FakeAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(following, "RECONNECT_FOR", 0.0)  # give up at the first close
    fake_agent.stream = [": connected\n\n"]
    fake_agent.add_log("recent", ts=time.time())
    result = run("logs", "-f", "hello")
    assert result.exit_code == 1
    assert result.stderr == "Error: the agent closed the log stream\n"
    assert fake_agent.calls("GET", "/v1/logs/stream")[0].url.params["function"] == "hello"


def test_logs_of_an_unknown_function_is_an_error(run: Run, fake_agent: FakeAgent) -> None:
    result = run("logs", "helo")
    assert result.exit_code == 1
    assert result.stderr == "Error: function 'helo' not found\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "invalid --since: 'yesterday'"),
    (["Bad Name"], "invalid function name"),
])
def test_logs_input_mistakes(
    run: Run, fake_agent: FakeAgent, args: list[str], message: str
) -> None:
    result = run("logs", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_read_events() -> None:
    lines = [": ping", "", "data: {\"a\": 1}", "", "event: x", "data: [1,", "data: 2]", "",
             "data:{\"b\": 2}"]
    assert list(read_events(lines)) == [{"a": 1}, [1, 2], {"b": 2}]
