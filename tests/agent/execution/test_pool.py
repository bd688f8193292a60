"""The worker pool under redeploys: each new version of a function takes a generic
sandbox, and its replacement starts at once instead of after the refill delay."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from hyac_agent.sandbox import Sandbox
from tests.in_process import InProcessAgent, in_process_agent
from tests.waiting import eventually

SOURCE = "def main(context):\n    return {version!r}\n"
NEVER = 3600.0  # a refill delay no test outlives


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> InProcessAgent:
    # The process backend sets no limits, so a function's need none changed: let its
    # generic sandboxes be taken, as bubblewrap's (with cgroups) and docker's are.
    monkeypatch.setattr(Sandbox, "set_limits", lambda self, limits: True)
    with in_process_agent(tmp_path / "data") as running:
        eventually(lambda: generic(running) == 1)  # the pool's first fill, at start
        running.agent.pool.settings.refill_delay = NEVER
        yield running


def generic(agent: InProcessAgent) -> int:
    return int(agent.agent.pool.stats()["generic"])


def deploy_and_call(agent: InProcessAgent, version: str) -> None:
    assert agent.deploy("edited", SOURCE.format(version=version))["created"]
    answer = agent.invoke("edited")
    assert answer.status_code == 200 and answer.json()["ok"], answer.text
    assert base64.b64decode(answer.json()["body_b64"]).decode() == version


def test_a_redeploy_refills_the_generic_pool_at_once(agent: InProcessAgent) -> None:
    deploy_and_call(agent, "v1")
    # The first version's start may be the first of a burst: its refill waits.
    assert agent.agent.pool.stats()["hits"] == 1 and generic(agent) == 0
    deploy_and_call(agent, "v2")  # a new version of a function with a live worker
    eventually(lambda: generic(agent) == 1)
    deploy_and_call(agent, "v3")
    assert agent.agent.pool.stats()["hits"] == 2  # v3 was served by the refilled sandbox
    eventually(lambda: generic(agent) == 1)


def test_a_function_without_a_live_worker_is_no_redeploy(agent: InProcessAgent) -> None:
    deploy_and_call(agent, "v1")
    agent.run(agent.agent.pool.retire("default", "edited"))  # as a removal does
    deploy_and_call(agent, "v2")
    assert agent.agent.pool.stats()["misses"] == 1
    assert ("default", "edited") not in agent.agent.pool._redeployed
