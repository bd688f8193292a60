"""A worker the agent asks to leave (a new version retires it, the agent stops) and that
leaves is no crash: the function's logs get no ``worker_crashed`` line for it, however
the two waits on its exit happen to be ordered on a loaded host."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.in_process import InProcessAgent, in_process_agent

SOURCE = "def main(context):\n    return 'up'\n"


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[InProcessAgent]:
    with in_process_agent(tmp_path / "data") as running:
        yield running


def _system_lines(agent: InProcessAgent) -> list[str]:
    with agent.client() as client:
        answer = client.get("/v1/logs", params={"function": "quiet", "limit": 200})
    assert answer.status_code == 200, answer.text
    return [r["message"] for r in answer.json() if r["stream"] == "system"]


def test_a_worker_that_leaves_when_asked_is_not_logged_as_crashed(
    agent: InProcessAgent,
) -> None:
    agent.deploy("quiet", SOURCE)
    assert agent.invoke("quiet").json()["ok"]
    (worker,) = agent.agent.pool._workers.values()
    real_kill = worker.kill

    async def late_kill(reason: str) -> None:
        # As on a loaded host: the exit watcher classifies the exit before shutdown()
        # gets back to mark the worker gone.
        await asyncio.sleep(1)
        await real_kill(reason)

    worker.kill = late_kill  # type: ignore[method-assign]
    agent.run(worker.shutdown())
    assert worker.dead and worker.sandbox.process.returncode == 0
    assert not [line for line in _system_lines(agent) if "worker_crashed" in line]


def test_a_worker_that_dies_on_its_own_is_still_logged(agent: InProcessAgent) -> None:
    agent.deploy("quiet", SOURCE)
    assert agent.invoke("quiet").json()["ok"]
    (worker,) = agent.agent.pool._workers.values()
    worker.sandbox.process.kill()

    async def gone() -> None:
        while not worker.dead:
            await asyncio.sleep(0.05)

    agent.run(asyncio.wait_for(gone(), 20))
    assert [line for line in _system_lines(agent) if "worker_crashed" in line]
