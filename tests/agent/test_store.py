from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hyac_agent.store import LOG_LINE_OVERHEAD, LogRetention, SqlStore
from hyac_common.errors import NotFound
from hyac_common.wire import FunctionConfig, LogRecord

POSTGRES_ADMIN_URL = os.environ.get(
    "HYAC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    try:
        admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = "hyac_test_" + secrets.token_hex(4)
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        s = SqlStore(f"sqlite:///{tmp_path / 'hyac.db'}")
        s.create_schema()
        yield s
        s.close()
        return
    for url in _postgres_database():
        s = SqlStore(url)
        s.create_schema()
        yield s
        s.close()


def test_deploy_versions_and_reuse(store: SqlStore) -> None:
    config = FunctionConfig(runtime="python3.11")
    v1, new1 = store.record_deploy("t", "f", "a" * 64, "functions/f.py", config)
    v2, new2 = store.record_deploy("t", "f", "b" * 64, "functions/f.py", config)
    same, new3 = store.record_deploy("t", "f", "b" * 64, "functions/f.py", config)
    assert (v1.number, new1, v2.number, new2, same.number, new3) == (1, True, 2, True, 2, False)
    back, reused = store.record_deploy("t", "f", "a" * 64, "functions/f.py", config)
    assert (back.number, reused) == (1, False)
    assert store.get_function("t", "f").active_version == 1  # type: ignore[union-attr]
    assert store.get_version("t", "f").sha256 == "a" * 64  # type: ignore[union-attr]
    assert store.get_function("other", "f") is None


def test_rollback_and_delete(store: SqlStore) -> None:
    config = FunctionConfig()
    store.record_deploy("t", "f", "a" * 64, "e.py", config)
    store.record_deploy("t", "f", "b" * 64, "e.py", config)
    assert store.set_active_version("t", "f", 1).sha256 == "a" * 64
    with pytest.raises(NotFound):
        store.set_active_version("t", "f", 7)
    with pytest.raises(NotFound):
        store.set_active_version("t", "nope", 1)
    assert store.delete_function("t", "f") == []
    assert store.list_versions("t", "f") == []
    assert store.delete_function("t", "f") is None


def test_kv_is_per_tenant_and_prefix_is_literal(store: SqlStore) -> None:
    store.kv_set("a", "100%_x", {"n": 1})
    store.kv_set("a", "100abc", 2)
    store.kv_set("b", "100%_x", "other tenant")
    assert store.kv_get("a", "100%_x") == {"n": 1}
    assert store.kv_list("a", "100%", 10) == ["100%_x"]
    assert store.kv_list("a", "", 10) == ["100%_x", "100abc"]
    assert store.kv_list("b", "", 10) == ["100%_x"]
    store.kv_set("a", "100abc", 3)
    assert store.kv_get("a", "100abc") == 3
    assert store.kv_delete("a", "100abc") is True
    assert store.kv_delete("a", "100abc") is False
    assert store.kv_get("a", "missing") is None


def test_logs_query_and_trim(store: SqlStore) -> None:
    records = [
        LogRecord(ts=float(i), tenant="t", function="f" if i % 2 else "g", version=1,
                  stream="stdout", message=f"line {i}")
        for i in range(10)
    ]
    store.append_logs(records)
    assert [r.message for r in store.query_logs("t", "f", None, 100)] == [
        "line 1", "line 3", "line 5", "line 7", "line 9"
    ]
    assert [r.message for r in store.query_logs("t", None, 8.0, 100)] == ["line 8", "line 9"]
    assert [r.message for r in store.query_logs("t", None, None, 2)] == ["line 8", "line 9"]
    assert store.query_logs("other", None, None, 100) == []
    store.append_logs([LogRecord(ts=float(i), tenant="other", function="f", version=1,
                                 stream="stdout", message="x" * 100) for i in range(5)])
    assert store.trim_logs("t", LogRetention(lines=3)) == 7
    assert [r.message for r in store.query_logs("t", None, None, 100)] == [
        "line 7", "line 8", "line 9"
    ]
    # Bytes count each message and a fixed overhead; another tenant's lines are its own.
    assert store.trim_logs("other", LogRetention(bytes=2 * (100 + LOG_LINE_OVERHEAD))) == 3
    assert len(store.query_logs("other", None, None, 100)) == 2
    assert len(store.query_logs("t", None, None, 100)) == 3
    assert store.expire_logs(before=8.5) == 4  # lines 7 and 8, and other's two (at 3 and 4)
    assert [r.message for r in store.query_logs("t", None, None, 100)] == ["line 9"]


def test_concurrent_deploys_each_get_a_version(store: SqlStore) -> None:
    """Deploys of one function at once (two CI jobs, say) take distinct, dense version
    numbers, from the very first one; the same content at once gets one version."""
    from concurrent.futures import ThreadPoolExecutor

    config = FunctionConfig(runtime="python3.11")
    count = 12
    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(
            lambda i: store.record_deploy("t", "f", f"{i:064x}", "functions/f.py", config),
            range(count),
        ))
        same = list(pool.map(
            lambda _: store.record_deploy("t", "g", "c" * 64, "functions/g.py", config),
            range(count),
        ))
    assert sorted(v.number for v, _ in results) == list(range(1, count + 1))
    assert all(created for _, created in results)
    assert {v.number for v, _ in same} == {1}
    assert sum(created for _, created in same) == 1
    assert len(store.list_versions("t", "f")) == count
    assert store.get_function("t", "g").versions == 1  # type: ignore[union-attr]


def test_a_version_keeps_its_sample_and_an_older_store_gains_the_column(store: SqlStore) -> None:
    from hyac_common.wire import SampleRequest

    config = FunctionConfig(runtime="python3.11")
    sample = SampleRequest(query={"name": "Sam"}, body={"month": "2026-01"})
    made, _ = store.record_deploy("t", "f", "a" * 64, "functions/f.py", config, sample=sample)
    assert made.sample == sample
    assert store.get_version("t", "f") == made
    # a store made before versions kept samples: the column is added at start, and the
    # versions stored without one read as having none
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE versions DROP COLUMN sample")
    store.create_schema()
    assert store.get_version("t", "f", 1).sample is None  # type: ignore[union-attr]
    store.record_deploy("t", "f", "b" * 64, "functions/f.py", config, sample=sample)
    assert [v.sample for v in store.list_versions("t", "f")] == [None, sample]


def test_version_with_finds_a_version_by_its_bundle(store: SqlStore) -> None:
    config = FunctionConfig(runtime="python3.11")
    for i in range(5):
        store.record_deploy("t", "f", f"{i:064x}", "functions/f.py", config)
    store.record_deploy("other", "f", "e" * 64, "functions/f.py", config)
    found = store.version_with("t", "f", f"{3:064x}")
    assert found is not None and (found.number, found.tenant, found.function) == (4, "t", "f")
    assert store.version_with("t", "f", "e" * 64) is None  # another tenant's bundle
    assert store.version_with("t", "nope", f"{3:064x}") is None


def test_claim_due_claims_each_due_task_once_under_its_own_request(store: SqlStore) -> None:
    import concurrent.futures
    import itertools

    from tests.agent.test_tasks_store import queued

    now = time.time()
    for n in range(6):
        store.create_task(queued(f"task_{n}", now - 10 + n))
    store.create_task(queued("task_later", now, run_at=now + 60))
    lapsed = queued("task_lapsed", now - 20, status="running", attempt=1, lease_owner="gone",
                    lease_expires=now - 1, run_request_id="req_old", started_at=now - 20)
    store.create_task(lapsed)
    ids = (f"req_{n}" for n in itertools.count())
    first = store.claim_due(now, 3, ["task_0"], "me", 30, lambda: next(ids))
    # the oldest due, the excluded one left, each under a request id of its own
    assert sorted(after.id for _, after in first) == ["task_1", "task_2", "task_lapsed"]
    assert len({after.run_request_id for _, after in first}) == 3
    before, after = next(pair for pair in first if pair[1].id == "task_lapsed")
    assert (before.status, before.run_request_id, after.lost, after.attempt) == (
        "running", "req_old", 1, 2)
    assert all(a.status == "running" and a.lease_owner == "me" and a.lease_expires == now + 30
               for _, a in first)
    # runners claiming at once never get the same task; the one not due is left
    counter = itertools.count(100)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(lambda i: store.claim_due(
            now, 10, [], f"runner{i}", 30, lambda: f"req_{next(counter)}"), range(4)))
    claimed = [after.id for batch in batches for _, after in batch]
    assert sorted(claimed) == ["task_0", "task_3", "task_4", "task_5"]
    assert store.claim_due(now, 10, [], "me", 30, lambda: next(ids)) == []


def test_many_rows_go_in_few_statements_and_come_back_exactly(store: SqlStore) -> None:
    """A second's batch of log lines and invocation records under load: every row
    stored once, in order, byte for byte (quotes, SQL, non-ASCII included), and on
    SQLite in one statement run per ~100 rows rather than one per row (each run hands
    the interpreter lock back and forth with the event loop)."""
    from sqlalchemy import event

    from hyac_agent.metrics import InvocationRecord, MetricsStore

    hostile = ["'); DROP TABLE logs; --", "a\\x00b", "\u00e9\u4e2d\U0001f600", "?", "%s", ""]
    lines = [LogRecord(ts=float(i), tenant="t", function="f", version=1,
                       request_id=None if i % 3 else f"req_{i}", stream="stdout",
                       level=None if i % 2 else "INFO", message=hostile[i % len(hostile)] + str(i))
             for i in range(2500)]
    metrics = MetricsStore(store.engine)
    records = [InvocationRecord(float(i), "t", "f", 1, i / 7, bool(i % 2), "ok", 200, i, 2 * i)
               for i in range(1000)]
    runs: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda *args: runs.append(args[2]) if "INSERT" in args[2] else None)
    store.append_logs(lines)
    metrics.append(records)
    store.append_logs([])
    metrics.append([])
    back = store.query_logs("t", None, None, 10_000)
    assert [(r.ts, r.request_id, r.level, r.message) for r in back] == [
        (r.ts, r.request_id, r.level, r.message) for r in lines]
    assert metrics.query(["t"], None, 0) == records
    if store.engine.dialect.name == "sqlite":
        # 8 columns: 124 lines a statement (21 runs); 10 columns: 99 records (11 runs)
        assert len(runs) == 21 + 11, len(runs)


def test_a_bad_row_stores_nothing_of_its_batch(tmp_path: Path) -> None:
    from sqlalchemy import func, select

    from hyac_agent.store import tables
    from hyac_agent.store.bulk import insert_rows

    store = SqlStore(f"sqlite:///{tmp_path / 'hyac.db'}")
    store.create_schema()
    columns = ("ts", "tenant", "function", "version", "stream", "message")
    good = [(float(i), "t", "f", 1, "stdout", "x") for i in range(300)]
    with pytest.raises(ValueError, match="does not have 6 values"):
        with store.engine.begin() as conn:
            insert_rows(conn, tables.logs, columns, [*good, (1.0, "t")])
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.logs)).scalar() == 0
    store.close()


def test_a_line_no_store_can_keep_does_not_lose_the_other_tenants_lines(store: SqlStore) -> None:
    """A function's output is the tenant's bytes: a NUL (PostgreSQL refuses it in text)
    or a lone surrogate (what JSON's "\\ud800" decodes to; no UTF-8 encoder takes it)
    failed the whole flush, and with it every tenant's lines of that moment."""
    import asyncio
    import json

    from hyac_agent.logbus import LogBus

    async def scenario() -> None:
        bus = LogBus(store, LogRetention())
        for message in (json.loads('"lone \\ud800 surrogate"'), "nul \x00 byte",
                        json.loads('"pair \\ud83d\\ude00 kept"')):
            bus.emit(tenant="attacker", function="f", version=1, stream="stdout", message=message)
        bus.emit(tenant="victim", function="g", version=1, stream="stdout", message="mine")
        await bus.flush()

    asyncio.run(scenario())
    assert [r.message for r in store.query_logs("victim", None, None, 10)] == ["mine"]
    assert [r.message for r in store.query_logs("attacker", None, None, 10)] == [
        "lone \ufffd surrogate", "nul \ufffd byte", "pair \U0001f600 kept"]
