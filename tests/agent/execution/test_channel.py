"""The agent's side of a worker's channel: frames sent in one turn of the event loop leave
in one write (one wake-up of the worker for a burst), in order, and each answer still
reaches its own request."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest

from hyac_common.wire import InvokeRequest
from tests.in_process import InProcessAgent, in_process_agent

SOURCE = "def main(context):\n    return context.request.body.decode()\n"
BURST = 8


@pytest.fixture
def agent(tmp_path: Path) -> InProcessAgent:
    with in_process_agent(tmp_path / "data") as running:
        yield running


def test_a_burst_leaves_in_one_write_and_every_answer_finds_its_request(
    agent: InProcessAgent,
) -> None:
    agent.deploy("echo", SOURCE)
    warm = agent.invoke("echo")  # the worker is up: the burst below meets no start
    assert warm.status_code == 200 and warm.json()["ok"], warm.text
    (worker,) = agent.agent.pool._workers.values()
    writes: list[bytes] = []
    original = worker._writer.write

    def counted(data: bytes) -> None:
        writes.append(bytes(data))
        original(data)

    worker._writer.write = counted
    invoker = agent.agent.invoker

    async def burst() -> list[Any]:
        await asyncio.sleep(0)  # the burst starts at the top of a turn
        return await asyncio.gather(*(
            invoker.invoke("default", "echo", InvokeRequest(
                body_b64=base64.b64encode(f"call {i}".encode()).decode()))
            for i in range(BURST)
        ))

    results = agent.run(burst())
    assert [base64.b64decode(r.body_b64).decode() for r in results] == [
        f"call {i}" for i in range(BURST)
    ]
    carrying = [w for w in writes if b'"invoke"' in w]
    assert len(carrying) == 1, [w.count(b'"invoke"') for w in carrying]
    frames = carrying[0]
    # in the order they were sent: call 0 first
    positions = [frames.index(base64.b64encode(f"call {i}".encode())) for i in range(BURST)]
    assert positions == sorted(positions)
