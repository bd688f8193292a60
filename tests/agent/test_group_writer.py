"""Group commit (``hyac_agent.batching.GroupWriter``): what callers give while a write is
under way goes together in the next one; each caller gets its own outcome."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from hyac_agent.batching import GroupWriter
from hyac_agent.store import TaskRecord
from hyac_agent.store.sql import SqlStore
from hyac_common.tasks import TaskStatus


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


def _task(task_id: str) -> TaskRecord:
    return TaskRecord(
        id=task_id, tenant="default", function="f", version=1, status=TaskStatus.QUEUED,
        request="{}", client_ip="", attempt=0, failures=0, lost=0, max_attempts=1,
        created_at=1.0, run_at=1.0, started_at=None, finished_at=None, updated_at=1.0,
        lease_owner=None, lease_expires=None, run_request_id=None, dispatched_at=None,
        progress=None, progress_message="", result=None, error=None, callback_url=None,
        callback_status=None, callback_attempts=0, callback_next_at=None, started_by=None,
    )


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    made = SqlStore(f"sqlite:///{tmp_path / 'hyac.db'}")
    made.create_schema()
    return made


def test_tasks_created_together_are_stored_all_or_none(store: SqlStore) -> None:
    store.create_tasks([_task("task_a"), _task("task_b")])
    assert store.get_task("task_a") is not None and store.get_task("task_b") is not None
    with pytest.raises(IntegrityError):  # task_a again: the whole group is refused
        store.create_tasks([_task("task_c"), _task("task_a")])
    assert store.get_task("task_c") is None


def test_runs_finished_together_say_each_whether_it_applied(store: SqlStore) -> None:
    running = [
        dataclasses.replace(_task(f"task_{i}"), status=TaskStatus.RUNNING,
                            run_request_id=f"req_{i}")
        for i in range(3)
    ]
    store.create_tasks(running)
    done = {"status": TaskStatus.SUCCEEDED, "finished_at": 2.0, "updated_at": 2.0}
    applied = store.finish_runs([("task_0", "req_0", done), ("task_1", "req_other", done),
                                 ("task_2", "req_2", done)])
    assert applied == [True, False, True]  # task_1's run is not req_other
    statuses = [store.get_task(f"task_{i}").status for i in range(3)]  # type: ignore[union-attr]
    assert statuses == [TaskStatus.SUCCEEDED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED]
