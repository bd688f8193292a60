"""Group commit (``hyac_agent.batching.GroupWriter``): what callers give while a write is
under way goes together in the next one; each caller gets its own outcome."""

from __future__ import annotations

import asyncio
import threading

from hyac_agent.batching import GroupWriter


class Recorder:
    """A store whose writes are seen (and can be held) by the test."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.refuse: set[int] = set()

    def many(self, items: list[int]) -> list[int]:
        self.gate.wait(10)
        self.calls.append(list(items))
        if self.refuse & set(items):
            raise ValueError("one of them is refused")
        return [item * 10 for item in items]

    def one(self, item: int) -> int:
        self.gate.wait(10)
        self.calls.append([item])
        if item in self.refuse:
            raise ValueError(f"{item} is refused")
        return item * 10


def test_a_lone_write_goes_at_once_and_later_ones_go_together() -> None:
    store = Recorder()

    async def scenario() -> list[int]:
        writer: GroupWriter[int, int] = GroupWriter(store.many, store.one)
        store.gate.clear()  # the first write is held: the next ones gather behind it
        first = asyncio.create_task(writer.write(1))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(writer.write(i)) for i in range(2, 6)]
        await asyncio.sleep(0.05)
        store.gate.set()
        return await asyncio.gather(first, *rest)

    assert asyncio.run(scenario()) == [10, 20, 30, 40, 50]
    assert store.calls == [[1], [2, 3, 4, 5]]


def test_one_refused_item_fails_only_its_own_caller() -> None:
    store = Recorder()
    store.refuse = {3}

    async def scenario() -> list[object]:
        writer: GroupWriter[int, int] = GroupWriter(store.many, store.one)
        store.gate.clear()
        first = asyncio.create_task(writer.write(1))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(writer.write(i)) for i in (2, 3, 4)]
        await asyncio.sleep(0.05)
        store.gate.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert outcomes[:2] == [10, 20] and outcomes[3] == 40
    assert isinstance(outcomes[2], ValueError) and "3 is refused" in str(outcomes[2])
    # the group failed as a whole, then each was written alone
    assert store.calls == [[1], [2, 3, 4], [2], [3], [4]]


def test_a_caller_that_gives_up_leaves_the_others_their_answers() -> None:
    store = Recorder()

    async def scenario() -> list[object]:
        writer: GroupWriter[int, int] = GroupWriter(store.many, store.one)
        store.gate.clear()
        first = asyncio.create_task(writer.write(1))
        await asyncio.sleep(0.05)
        gone = asyncio.create_task(writer.write(2))
        kept = asyncio.create_task(writer.write(3))
        await asyncio.sleep(0.05)
        gone.cancel()
        store.gate.set()
        return await asyncio.gather(first, kept)

    assert asyncio.run(scenario()) == [10, 30]
    assert store.calls == [[1], [2, 3]]  # written all the same, as a to_thread write was
