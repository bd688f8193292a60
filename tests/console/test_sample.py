"""A function's sample request (hyac.toml's ``sample``) travels with the deploy, is kept
with the version and comes back with it, for the console's invoke panel; one the agent
cannot keep is refused with nothing saved."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from tests.conftest import AgentClient, current_runtime

SOURCE = "def main(context):\n    return context.request.query.get('name', '?')\n"


def deploy(agent: AgentClient, sample: Any = None, source: str = SOURCE) -> httpx.Response:
    body: dict[str, Any] = {
        "entry": "functions/tried.py",
        "files_b64": {"functions/tried.py": base64.b64encode(source.encode()).decode()},
        "config": {"runtime": current_runtime()},
    }
    if sample is not None:
        body["sample"] = sample
    with agent.client() as client:
        return client.put("/v1/functions/tried", content=json.dumps(body),
                          headers={"content-type": "application/json"})


def samples(agent: AgentClient) -> list[Any]:
    with agent.client() as client:
        return [v["sample"] for v in client.get("/v1/functions/tried/versions").json()]


def test_the_sample_round_trip(api_agent: AgentClient) -> None:
    sample = {"method": "GET", "path": "/report", "query": {"name": "Sam"},
              "headers": {"X-Demo": "yes"}, "body": {"month": "2026-01", "n": [1, 2.5]}}
    assert deploy(api_agent, sample).status_code == 201
    assert samples(api_agent) == [sample]
    same = deploy(api_agent, sample)  # the same code and sample: the same version
    assert same.status_code == 200 and same.json()["version"] == 1
    # another sample is another version; the first keeps its own
    body_only = {"body": "just a body"}
    assert deploy(api_agent, body_only).json()["version"] == 2
    assert deploy(api_agent).json()["version"] == 3  # and none at all
    full = {"method": "POST", "path": "/", "query": {}, "headers": {}, "body": "just a body"}
    assert samples(api_agent) == [sample, full, None]
    with api_agent.client() as client:  # the console's versions carry it too
        shown = client.get("/v1/console/functions/tried/versions").json()
    assert [v["sample"] for v in shown] == [sample, full, None]


BAD = [
    ({"body": "x" * (64 * 1024)}, "at most 65536"),
    ({"body": {"a": float("nan")}}, "body"),
    ({"method": "TRACE"}, "method"),
    ({"path": "report"}, "path"),
    ({"path": "/a\nb"}, "path"),
    ({"headers": {"X-Evil": "a\r\nSet-Cookie: x=1"}}, "header"),
    ({"headers": {"bad name": "1"}}, "header"),
    ({"query": {"a=b": "1"}}, "query"),
    ({"function": "other"}, "function"),
]


def test_a_sample_the_agent_cannot_keep_is_refused(api_agent: AgentClient) -> None:
    for sample, why in BAD:
        refused = deploy(api_agent, sample)
        assert refused.status_code == 422, (sample, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "invalid_input" and why in json.dumps(error), (sample, error)
    with api_agent.client() as client:  # nothing saved
        assert client.get("/v1/functions/tried").status_code == 404
