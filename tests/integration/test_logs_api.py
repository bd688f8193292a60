"""Function output reaches the stored logs and live followers, tagged."""

from __future__ import annotations

import json
import threading
import time

import httpx

from tests.conftest import RunningAgent

CHATTY = """
import sys
print("module loaded")
def main(context):
    print("to stdout", context.request.query.get("n"))
    print("to stderr", file=sys.stderr)
    context.logger.warning("careful %s", "now")
    return "ok"
"""


def test_logs_are_tagged_and_queryable(agent: RunningAgent) -> None:
    agent.deploy("chatty", CHATTY)
    result = agent.invoke("chatty", query={"n": "1"}).json()
    with agent.client() as client:
        lines = client.get("/v1/logs", params={"function": "chatty"}).json()
        mine = [line for line in lines if line["request_id"] == result["request_id"]]
        assert [(m["stream"], m["message"]) for m in mine] == [
            ("stdout", "to stdout 1"), ("stderr", "to stderr"), ("logger", "careful now"),
        ]
        assert mine[2]["level"] == "WARNING"
        assert all(m["version"] == 1 and m["function"] == "chatty" for m in mine)
        assert any(line["message"] == "module loaded" and line["request_id"] is None for line in lines)
        later = client.get("/v1/logs", params={"since": time.time() + 60}).json()
        assert later == []
        assert client.get("/v1/logs", params={"function": "../x"}).status_code == 400


def test_follow_streams_lines_live(agent: RunningAgent) -> None:
    agent.deploy("chatty", CHATTY)
    received: list[dict] = []
    connected = threading.Event()

    def follow() -> None:
        headers = {"Authorization": f"Bearer {agent.token}"}
        with httpx.stream("GET", f"{agent.url}/v1/logs/stream", params={"function": "chatty"},
                          headers=headers, timeout=20) as stream:
            for line in stream.iter_lines():
                if line.startswith(": connected"):
                    connected.set()
                if line.startswith("data:"):
                    received.append(json.loads(line[5:]))
                    if received[-1]["stream"] == "logger":
                        return

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    assert connected.wait(10)
    result = agent.invoke("chatty", query={"n": "2"}).json()
    follower.join(15)
    tagged = [r for r in received if r["request_id"] == result["request_id"]]
    assert [r["stream"] for r in tagged] == ["stdout", "stderr", "logger"]
