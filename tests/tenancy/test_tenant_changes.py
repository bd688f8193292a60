"""A change to a tenant's env, secrets, quotas or network restarts the workers that
started before it, and only those: the change feed also reports the changes this agent
made itself, and a worker started after such a change already has what it says."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.conftest import AgentClient

COUNTER = """
calls = 0

def main(context):
    global calls
    calls += 1
    return {"calls": calls, "region": context.env.get("REGION")}
"""


def _count(agent: AgentClient) -> dict[str, Any]:
    answer = agent.invoke("count")
    assert answer.status_code == 200, answer.text
    return json.loads(base64.b64decode(answer.json()["body_b64"]))


def _feed_catches_up(agent: Any) -> int:
    return int(agent.run(agent.agent.feed.catch_up()))


def test_only_workers_older_than_a_change_restart(api_agent: Any) -> None:
    # The test reads the feed itself: the agent's own loop (every 0.5 s) would otherwise
    # take a change first whenever a worker start takes longer than that.
    api_agent.run(api_agent.agent.feed.stop())
    api_agent.deploy("count", COUNTER)
    assert _count(api_agent) == {"calls": 1, "region": None}
    _feed_catches_up(api_agent)
    assert _count(api_agent)["calls"] == 2  # the same warm worker
    with api_agent.client() as client:
        assert client.put("/v1/env", json={"values": {"REGION": "eu"}}).status_code == 200
    # The worker that started before the change is retired at once by this agent.
    assert _count(api_agent) == {"calls": 1, "region": "eu"}
    # The feed then reports the same change: the worker that started after it stays.
    assert _feed_catches_up(api_agent) > 0
    assert _count(api_agent) == {"calls": 2, "region": "eu"}

    # A change made behind this agent's back (as another agent on the same store would):
    # only the feed tells, and the worker that started before it restarts.
    api_agent.agent.tenancy.store.set_env("default", "REGION", "us")
    assert _feed_catches_up(api_agent) > 0
    assert _count(api_agent) == {"calls": 1, "region": "us"}
    for change in (lambda s: s.set_quotas("default", {"memory": 200 * 2 ** 20}),
                   lambda s: s.set_egress("default", "allow")):
        assert _count(api_agent)["calls"] == 2
        change(api_agent.agent.tenancy.store)
        assert _feed_catches_up(api_agent) > 0
        assert _count(api_agent)["calls"] == 1, "a worker older than the change restarts"
