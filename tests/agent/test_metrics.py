"""Invocation records, the summary behind the console's charts, and /metrics' guard:
a real agent over HTTP, under each sandbox backend where functions run."""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hyac_agent.metrics import InvocationRecord
from hyac_agent.metrics.summary import summarize
from hyac_agent.store import SqlStore
from tests.agent import test_store
from tests.conftest import RunningAgent, start_agent
from tests.sandbox.conftest import BACKENDS, backend_missing
from tests.tenancy import conftest as tenancy
from tests.tenancy.conftest import Platform

OK = "def main(context):\n    return {'echo': context.request.body.decode()}\n"
FAILS = "def main(context):\n    raise RuntimeError('boom')\n"
SLOW = "import time\ndef main(context):\n    time.sleep(5)\n"

api_platform = tenancy.api_platform


@pytest.fixture(scope="module")
def platform(api_platform: Platform) -> Platform:
    """The agent's app in process: the summary API's answers need no sandbox."""
    return api_platform


store = test_store.store  # the main store on SQLite and on PostgreSQL


def _agent(tmp: Path, backend: str, **env: str) -> RunningAgent:
    reason = backend_missing(backend)
    if reason:
        pytest.skip(f"sandbox backend {backend!r} not tested: {reason}")
    process_env = {key: value for key, value in os.environ.items() if not key.startswith("HYAC_")}
    process_env.update(HYAC_SANDBOX=backend, **env)
    return start_agent(tmp / "data", "--sandbox", backend, env=process_env)


@pytest.fixture(scope="module", params=BACKENDS)
def backend_agent(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[RunningAgent]:
    running = _agent(tmp_path_factory.mktemp(f"metrics-{request.param}"), request.param)
    yield running
    running.kill(signal.SIGTERM)


def _rows(agent: RunningAgent, function: str) -> list[sqlite3.Row]:
    with sqlite3.connect(agent.data_dir / "hyac.db") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM invocations WHERE function = ? ORDER BY id",
                          (function,)).fetchall()


def _summary(client: httpx.Client, **params: object) -> dict:
    answer = client.get("/v1/metrics/summary", params={"window": 3600, "step": 60, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_invocations_are_recorded_with_outcome_cold_start_and_bytes(
    backend_agent: RunningAgent,
) -> None:
    agent = backend_agent
    agent.deploy("rec-ok", OK)
    agent.deploy("rec-fails", FAILS)
    agent.deploy("rec-slow", SLOW, timeout=1)
    body = base64.b64encode(b"hello metrics").decode()
    for _ in range(2):
        answer = agent.invoke("rec-ok", body_b64=body)
        assert answer.status_code == 200 and answer.json()["ok"], answer.text
    assert agent.invoke("rec-fails").json()["ok"] is False
    assert agent.invoke("rec-slow").json()["error"]["code"] == "timeout"
    # a name that is no function leaves no record (no rows or labels by guessing names)
    assert agent.invoke("rec-missing").status_code == 404

    with agent.client() as client:
        summary = _summary(client, function="rec-ok")
        everything = _summary(client)
    # the summary flushes what is on its way, so the rows are there once it answers
    ok_rows = _rows(agent, "rec-ok")
    assert [(r["outcome"], r["status"], r["cold"]) for r in ok_rows] == [("ok", 200, 1), ("ok", 200, 0)]
    assert all(r["request_bytes"] == len(b"hello metrics") for r in ok_rows)
    assert all(r["response_bytes"] == len(b'{"echo": "hello metrics"}') for r in ok_rows)
    assert all(r["version"] == 1 and r["tenant"] == "default" for r in ok_rows)
    assert [(r["outcome"], r["status"]) for r in _rows(agent, "rec-fails")] == [("function_error", 500)]
    slow = _rows(agent, "rec-slow")
    assert [(r["outcome"], r["status"]) for r in slow] == [("timeout", 504)]
    assert slow[0]["duration_ms"] >= 1000
    assert _rows(agent, "rec-missing") == []

    assert summary["totals"]["requests"] == 2 and summary["totals"]["errors"] == 0
    assert summary["totals"]["cold_starts"] == 1
    assert sum(b["requests"] for b in summary["buckets"]) == 2
    names = {f["function"]: f for f in everything["functions"]}
    assert names["rec-fails"]["errors"] == 1 and names["rec-fails"]["error_rate"] == 1.0
    assert names["rec-ok"]["last_invoked"] == pytest.approx(ok_rows[-1]["ts"])
    assert "rec-missing" not in names


def test_a_nested_call_is_recorded_as_its_own_invocation(backend_agent: RunningAgent) -> None:
    agent = backend_agent
    agent.deploy("nest-callee", FAILS)
    agent.deploy("nest-caller", "def main(context):\n"
                 "    try:\n        context.invoke('nest-callee', {})\n"
                 "    except Exception as exc:\n        return {'caught': type(exc).__name__}\n")
    answer = agent.invoke("nest-caller")
    assert answer.status_code == 200 and answer.json()["ok"], answer.text
    with agent.client() as client:
        summary = _summary(client)
    by_name = {f["function"]: f for f in summary["functions"]}
    # the callee failed inside a caller that answered: one error, one success
    assert (by_name["nest-callee"]["requests"], by_name["nest-callee"]["errors"]) == (1, 1)
    assert (by_name["nest-caller"]["requests"], by_name["nest-caller"]["errors"]) == (1, 0)
    assert [r["outcome"] for r in _rows(agent, "nest-callee")] == ["function_error"]


def test_task_runs_and_queue_depth_reach_metrics(backend_agent: RunningAgent) -> None:
    from tests.tasks.helpers import submit, wait_for

    agent = backend_agent
    agent.deploy("task-ok", OK, background=True)
    agent.deploy("task-fails", FAILS, background=True, retries=1, retry_backoff=0.05)
    wait_for(agent, submit(agent, "task-ok"), "succeeded")
    wait_for(agent, submit(agent, "task-fails"), "dead")
    with agent.client() as client:
        scraped = client.get("/metrics").text
    runs = 'hyac_task_attempts_total{function="%s",outcome="%s",tenant="default"} 1.0'
    assert runs % ("task-ok", "succeeded") in scraped
    assert runs % ("task-fails", "failed") in scraped and runs % ("task-fails", "dead") in scraped
    assert 'hyac_tasks{status="dead",tenant="default"}' in scraped
    # each run is an invocation too, with its outcome
    assert 'hyac_invocations_total{function="task-fails",outcome="function_error",' \
        'tenant="default"} 2.0' in scraped


def test_old_records_are_trimmed_at_start(tmp_path: Path) -> None:
    from hyac_agent.metrics import MetricsStore
    from hyac_agent.store import SqlStore

    data = tmp_path / "data"
    data.mkdir()
    store = SqlStore(f"sqlite:///{data / 'hyac.db'}")
    store.create_schema()
    now = time.time()

    def record(age_days: float, function: str) -> InvocationRecord:
        return InvocationRecord(now - age_days * 86400, "default", function, 1, 5.0, False, "ok",
                                200, 0, 0)

    MetricsStore(store.engine).append([record(3, "old"), record(1, "kept")])
    store.close()
    agent = start_agent(data, "--insecure-no-sandbox", env={"HYAC_METRICS_RETENTION_DAYS": "2"})
    try:
        with agent.client() as client:
            summary = _summary(client, window=7 * 86400, step=86400)
    finally:
        agent.kill(signal.SIGTERM)
    assert [f["function"] for f in summary["functions"]] == ["kept"]
    assert _rows(agent, "old") == [] and len(_rows(agent, "kept")) == 1


def test_the_store_filters_expires_and_sizes_on_each_engine(store: SqlStore) -> None:
    from hyac_agent.metrics import MetricsStore
    from hyac_agent.store import LOG_LINE_OVERHEAD
    from hyac_common.wire import LogRecord

    metrics = MetricsStore(store.engine)
    metrics.create_schema()  # again: the store made it already, and that is fine
    metrics.append([
        InvocationRecord(100.0, "ta", "f", 1, 5.0, True, "ok", 200, 3, 4),
        InvocationRecord(200.0, "ta", "g", 2, 7.5, False, "timeout", 504, 0, 0),
        InvocationRecord(300.0, "tb", "f", 1, 1.0, False, "ok", 200, 0, 0),
    ])
    assert [r.function for r in metrics.query(["ta"], None, 0)] == ["f", "g"]
    assert [r.tenant for r in metrics.query(None, "f", 150)] == ["tb"]
    assert metrics.query(["ta"], None, 0)[0] == InvocationRecord(
        100.0, "ta", "f", 1, 5.0, True, "ok", 200, 3, 4)
    assert metrics.last_invoked(["ta", "tb"], "f") == {("ta", "f"): 100.0, ("tb", "f"): 300.0}
    assert metrics.expire(before=250) == 2
    assert [(r.tenant, r.ts) for r in metrics.query(None, None, 0)] == [("tb", 300.0)]
    store.append_logs([LogRecord(ts=1.0, tenant="ta", function="f", version=1, stream="stdout",
                                 message="12345")])
    assert metrics.log_bytes(LOG_LINE_OVERHEAD) == [("ta", 5 + LOG_LINE_OVERHEAD)]
    assert metrics.tasks_by_status() == []


def _record(ts: float, duration: float, outcome: str = "ok", cold: bool = False,
            function: str = "f") -> InvocationRecord:
    return InvocationRecord(ts, "t", function, 1, duration, cold, outcome, 200, 0, 0)


def test_summary_math_on_known_records() -> None:
    now = 10_019.0  # the buckets of step 60 start at ..., 9900, 9960 (it holds now)
    records = [_record(9_960 + i / 2, float(d)) for i, d in enumerate(range(1, 101))]  # 1..100 ms
    records += [_record(9_905, 500.0, "timeout", cold=True),
                _record(9_906, 700.0, "function_error", function="g")]
    records.append(_record(9_000, 1.0))  # before the first bucket: not counted
    summary = summarize(records, {("t", "f"): 10_009.5, ("t", "old"): 1.0},
                        now=now, window=120, step=60)
    assert summary["window"] == 120 and summary["step"] == 60
    assert [b["t"] for b in summary["buckets"]] == [9_900, 9_960]
    last = summary["buckets"][1]
    assert (last["requests"], last["errors"], last["p50_ms"], last["p99_ms"]) == (100, 0, 50.0, 99.0)
    first = summary["buckets"][0]
    assert (first["requests"], first["errors"], first["cold_starts"]) == (2, 2, 1)
    totals = summary["totals"]
    assert (totals["requests"], totals["errors"], totals["cold_starts"]) == (102, 2, 1)
    assert totals["error_rate"] == pytest.approx(2 / 102, abs=1e-6)
    assert totals["p99_ms"] == 500.0
    assert totals["requests_per_s"] == pytest.approx(102 / 119, abs=1e-6)
    by_name = {f["function"]: f for f in summary["functions"]}
    assert by_name["f"]["requests"] == 101 and by_name["f"]["errors"] == 1
    assert by_name["g"]["error_rate"] == 1.0 and by_name["g"]["last_invoked"] is None
    assert by_name["old"]["requests"] == 0 and by_name["old"]["last_invoked"] == 1.0
    empty = summarize([], {}, now=now, window=60, step=60)
    assert empty["totals"]["p50_ms"] is None and empty["totals"]["error_rate"] == 0.0


def test_percentiles_of_crowded_buckets_come_from_a_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    from hyac_agent.metrics import summary as module

    monkeypatch.setattr(module, "SAMPLE_SIZE", 1000)
    durations = [float((i * 7919) % 10_000 + 1) for i in range(10_000)]  # 1..10000, shuffled
    records = [_record(9_960 + i / 1000, d, cold=i % 10 == 0) for i, d in enumerate(durations)]
    summary = summarize(records, {}, now=10_019.0, window=60, step=60)
    totals = summary["totals"]
    # the counts stay exact; the percentiles are those of the sample, near the truth
    assert (totals["requests"], totals["cold_starts"]) == (10_000, 1000)
    assert 4_500 <= totals["p50_ms"] <= 5_500 and totals["p99_ms"] >= 9_700
    assert summary == summarize(records, {}, now=10_019.0, window=60, step=60)  # repeatable


@pytest.mark.parametrize("params", [
    {"window": 0}, {"window": 7 * 86400 + 1}, {"window": 86400, "step": 60},
    {"window": "an hour"}, {"step": -5}, {"step": 7200},
])
def test_bad_summary_parameters_are_400(platform: Platform, params: dict) -> None:
    with platform.owner() as client:
        answer = client.get("/v1/metrics/summary", params={"window": 3600, "step": 60, **params})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_input"


def test_a_tenant_user_sees_only_their_tenants(platform: Platform) -> None:
    for tenant in ("mx-a", "mx-b"):
        platform.tenant(tenant)
        assert platform.deploy(f"{tenant}-fn", OK, tenant).status_code in (200, 201)
        assert platform.invoke(f"{tenant}-fn", tenant).json()["ok"]
    token = platform.user("mx-viewer", "mx-a", "viewer")
    with platform.http(token) as client:
        mine = _summary(client)
        asked = client.get("/v1/metrics/summary", params={"tenant": "mx-b"})
        by_function = _summary(client, function="mx-b-fn")
    # the attempt ran and was answered: refused, naming nothing of tenant b's
    assert asked.status_code == 403 and asked.json()["error"]["code"] == "forbidden"
    assert {(f["tenant"], f["function"]) for f in mine["functions"]} == {("mx-a", "mx-a-fn")}
    assert mine["totals"]["requests"] == 1
    assert by_function["functions"] == [] and by_function["totals"]["requests"] == 0
    with platform.owner() as client:
        everyone = _summary(client)
        only_b = _summary(client, tenant="mx-b")
    seen = {(f["tenant"], f["function"]) for f in everyone["functions"]}
    assert {("mx-a", "mx-a-fn"), ("mx-b", "mx-b-fn")} <= seen
    assert [f["function"] for f in only_b["functions"]] == ["mx-b-fn"]
    # a tenant removed takes its records along, those still on their way to the store
    # too: one made again under its name starts empty
    assert platform.invoke("mx-b-fn", "mx-b").json()["ok"]
    with platform.owner() as client:
        assert client.delete("/v1/tenants/mx-b").status_code == 204
    platform.tenant("mx-b")
    with platform.owner() as client:
        assert _summary(client, tenant="mx-b")["functions"] == []


def test_metrics_needs_the_owner_the_scrape_token_or_an_allowed_address(tmp_path: Path) -> None:
    agent = _agent(tmp_path, "bwrap", HYAC_METRICS_TOKEN="scrape-secret-1")
    try:
        agent.deploy("guarded", "def main(context):\n    print('a line for the log')\n")
        assert agent.invoke("guarded").json()["ok"]
        with agent.client() as owner:
            owner.post("/v1/tenants", json={"name": "mx-other"})
            owner.put("/v1/users/mx-dev", json={"role": "admin"}, headers={"X-Hyac-Tenant": "mx-other"})
            made = owner.post("/v1/tokens", json={"user": "mx-dev", "tenant": "mx-other"},
                              headers={"X-Hyac-Tenant": "mx-other"})
            assert made.status_code == 201, made.text
            owner.get("/v1/logs")  # the function's line is stored once this answers
            owned = owner.get("/metrics")
        anonymous = httpx.get(f"{agent.url}/metrics")
        wrong = httpx.get(f"{agent.url}/metrics", headers={"Authorization": "Bearer nope"})
        tenant_admin = httpx.get(f"{agent.url}/metrics",
                                 headers={"Authorization": f"Bearer {made.json()['token']}"})
        scraper = httpx.get(f"{agent.url}/metrics",
                            headers={"Authorization": "Bearer scrape-secret-1"})
        # the scrape token reads /metrics and nothing else
        elsewhere = httpx.get(f"{agent.url}/v1/functions",
                              headers={"Authorization": "Bearer scrape-secret-1"})
    finally:
        agent.kill(signal.SIGTERM)
    for refused, status in ((anonymous, 401), (wrong, 401), (tenant_admin, 403), (elsewhere, 401)):
        assert refused.status_code == status, refused.text
        assert "error" in refused.json() and "hyac_invocations" not in refused.text
    counted = 'hyac_invocations_total{function="guarded",outcome="ok",tenant="default"} 1.0'
    for allowed in (owned, scraper):
        assert allowed.status_code == 200 and counted in allowed.text
        assert 'hyac_cold_starts_total{function="guarded",tenant="default"} 1.0' in allowed.text
        assert "hyac_invocation_duration_seconds_bucket" in allowed.text
        assert 'hyac_workers{state="live"} 1.0' in allowed.text
        assert 'hyac_quota_use{quota="functions",tenant="default",unit=' in allowed.text
        assert 'hyac_log_bytes{tenant="default"}' in allowed.text


def test_an_allowed_address_scrapes_with_no_token(tmp_path: Path) -> None:
    agent = _agent(tmp_path, "bwrap", HYAC_METRICS_ALLOW="10.0.0.0/8, 127.0.0.0/8")
    try:
        answer = httpx.get(f"{agent.url}/metrics")
    finally:
        agent.kill(signal.SIGTERM)
    assert answer.status_code == 200 and "hyac_workers" in answer.text


@pytest.mark.parametrize(("setting", "value", "said"), [
    ("HYAC_METRICS_ALLOW", "not-a-net", "HYAC_METRICS_ALLOW: 'not-a-net' is not an address"),
    ("HYAC_METRICS_RETENTION_DAYS", "0", "HYAC_METRICS_RETENTION_DAYS must be positive"),
])
def test_a_bad_metrics_setting_stops_the_agent_with_one_line(
    tmp_path: Path, setting: str, value: str, said: str
) -> None:
    with pytest.raises(RuntimeError, match="exited with 1") as stopped:
        start_agent(tmp_path / "data", "--insecure-no-sandbox", env={setting: value})
    assert f"Error: {said}" in str(stopped.value) and "Traceback" not in str(stopped.value)
