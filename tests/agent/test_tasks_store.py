"""The task half of the store: guarded claims, leases, progress, and backoff."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from hyac_agent.store import SqlStore, TaskRecord
from hyac_agent.tasks import backoff


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    made = SqlStore(f"sqlite:///{tmp_path / 'hyac.db'}")
    made.create_schema()
    return made


def queued(task_id: str, now: float, **changes: object) -> TaskRecord:
    fields: dict[str, object] = dict(
        id=task_id, tenant="default", function="f", version=1, status="queued", request="{}",
        client_ip="", attempt=0, failures=0, lost=0, max_attempts=1, created_at=now,
        run_at=now, started_at=None, finished_at=None, updated_at=now, lease_owner=None,
        lease_expires=None, run_request_id=None, dispatched_at=None, progress=None,
        progress_message="", result=None, error=None, callback_url=None, callback_status=None,
        callback_attempts=0, callback_next_at=None,
    )
    fields.update(changes)
    return TaskRecord(**fields)  # type: ignore[arg-type]


def test_only_one_of_many_concurrent_claims_wins(store: SqlStore) -> None:
    now = time.time()
    store.create_task(queued("task_a", now))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(
            lambda i: store.claim_task("task_a", f"runner{i}", f"req_{i}", now, 30), range(8)
        ))
    won = [c for c in claims if c is not None]
    assert len(won) == 1 and won[0].attempt == 1 and won[0].status == "running"
    assert store.due_tasks(now, 10) == []


def test_an_expired_lease_is_claimed_again_with_the_next_attempt(store: SqlStore) -> None:
    now = time.time()
    store.create_task(queued("task_b", now))
    first = store.claim_task("task_b", "one", "req_1", now, lease=1)
    assert first is not None
    assert store.claim_task("task_b", "two", "req_2", now + 0.5, lease=1) is None
    assert store.renew_lease("task_b", "req_1", now + 2)
    assert store.claim_task("task_b", "two", "req_2", now + 1.5, lease=1) is None
    second = store.claim_task("task_b", "two", "req_2", now + 2.5, lease=1)
    assert second is not None and second.attempt == 2 and second.lost == 1
    # the first run is no longer the current one: it can neither renew nor finish
    assert not store.renew_lease("task_b", "req_1", now + 9)
    assert not store.finish_run("task_b", "req_1", {"status": "succeeded"})
    assert store.set_task_progress("req_1", 0.5, "stale") is None
    assert store.set_task_progress("req_2", 0.5, "fresh") == "task_b"
    assert store.finish_run("task_b", "req_2", {"status": "succeeded", "finished_at": now})
    assert store.get_task("task_b").progress_message == "fresh"  # type: ignore[union-attr]


def test_delayed_tasks_wait_and_cancel_and_revive(store: SqlStore) -> None:
    now = time.time()
    store.create_task(queued("task_c", now, run_at=now + 60))
    assert store.due_tasks(now, 10) == [] and store.claim_task("task_c", "x", "r", now, 5) is None
    assert store.cancel_task("task_c", now) == "queued"
    assert store.cancel_task("task_c", now) is None
    assert store.revive_task("task_c", now)
    assert store.due_tasks(now + 1, 10) == ["task_c"]


def test_mark_dispatched_sends_each_stranded_task_once(store: SqlStore) -> None:
    now = time.time()
    store.create_task(queued("task_d", now, dispatched_at=now))
    assert store.claim_task("task_d", "gone", "req_d", now, lease=1)
    assert store.mark_dispatched(now + 0.5, 300, 10) == []  # the lease still runs
    assert store.mark_dispatched(now + 2, 300, 10) == ["task_d"]
    assert store.mark_dispatched(now + 3, 300, 10) == []  # already sent since it expired


def test_backoff_is_exponential_capped_and_jittered() -> None:
    for failures, low, high in ((1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0), (10, 5.0, 10.0)):
        for _ in range(50):
            assert low <= backoff(failures, 1.0, 10.0) <= high
    assert len({backoff(3, 1.0, 10.0) for _ in range(20)}) > 1


def test_claim_found_hands_back_the_task_as_found_and_as_claimed(store: SqlStore) -> None:
    now = time.time()
    store.create_task(queued("task_f", now))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(
            lambda i: store.claim_found("task_f", f"runner{i}", f"req_{i}", now, 30), range(8)
        ))
    won = [c for c in claims if c is not None]
    assert len(won) == 1  # still one claim among many
    found, claimed = won[0]
    assert (found.status, found.attempt, found.run_request_id) == ("queued", 0, None)
    assert (claimed.status, claimed.attempt) == ("running", 1)
    assert claimed.run_request_id is not None and claimed.lease_owner is not None
    assert store.claim_found("task_f", "late", "req_x", now, 30) is None  # running, leased
    assert store.claim_found("no_such_task", "x", "req_y", now, 30) is None
    store.create_task(queued("task_later", now, run_at=now + 60))
    assert store.claim_found("task_later", "x", "req_z", now, 30) is None  # not yet due


def test_tasks_created_together_are_stored_all_or_none(store: SqlStore) -> None:
    now = time.time()
    store.create_tasks([queued("task_a", now), queued("task_b", now)])
    assert store.get_task("task_a") is not None and store.get_task("task_b") is not None
    with pytest.raises(IntegrityError):  # task_a again: the whole group is refused
        store.create_tasks([queued("task_c", now), queued("task_a", now)])
    assert store.get_task("task_c") is None


def test_runs_finished_together_say_each_whether_it_applied(store: SqlStore) -> None:
    now = time.time()
    store.create_tasks([queued(f"task_{i}", now, status="running", run_request_id=f"req_{i}")
                        for i in range(3)])
    done = {"status": "succeeded", "finished_at": now, "updated_at": now}
    applied = store.finish_runs([("task_0", "req_0", done), ("task_1", "req_other", done),
                                 ("task_2", "req_2", done)])
    assert applied == [True, False, True]  # task_1's run is not req_other
    statuses = [store.get_task(f"task_{i}").status for i in range(3)]  # type: ignore[union-attr]
    assert statuses == ["succeeded", "running", "succeeded"]
