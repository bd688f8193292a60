"""The agent's background loops sleep until woken or a timeout, and stop when cancelled:
also when the cancellation comes as they are woken (``asyncio.wait_for`` loses it on
Python 3.11, and the agent then never finished stopping)."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

from hyac_agent.waiting import wake_or_timeout

REPO = Path(__file__).resolve().parents[2]


async def _loop(event: asyncio.Event, rounds: list[int]) -> None:
    while True:
        event.clear()
        rounds.append(1)
        await wake_or_timeout(event, 10)


def test_a_loop_cancelled_as_it_is_woken_stops() -> None:
    async def scenario() -> None:
        event = asyncio.Event()
        rounds: list[int] = []
        task = asyncio.create_task(_loop(event, rounds))
        await asyncio.sleep(0.05)
        event.set()
        await asyncio.sleep(0)  # the wait is over; the loop is about to be woken
        task.cancel()
        done, _ = await asyncio.wait((task,), timeout=2)
        assert task in done and task.cancelled(), f"still running after {len(rounds)} rounds"

    asyncio.run(scenario())


def test_it_returns_when_woken_and_when_the_time_is_up() -> None:
    async def scenario() -> None:
        event = asyncio.Event()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await wake_or_timeout(event, 0.1)
        assert loop.time() - started >= 0.09
        loop.call_later(0.05, event.set)
        await wake_or_timeout(event, 30)
        assert event.is_set()
        assert len(asyncio.all_tasks()) == 1  # no waiter left behind

    asyncio.run(scenario())


def test_no_background_loop_waits_for_an_event_with_wait_for() -> None:
    found = []
    for path in (REPO / "hyac_agent").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "wait_for" \
                    and node.args and isinstance(node.args[0], ast.Call) \
                    and getattr(node.args[0].func, "attr", "") == "wait" \
                    and "process" not in ast.unparse(node.args[0]):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, f"use hyac_agent.waiting.wake_or_timeout: {found}"
