"""Background tasks on Celery (real Redis broker, real PostgreSQL store): tasks spread
over two ``hyac-agent worker`` processes, and killing one mid-task loses nothing.

Skipped, with the reason, when Redis or PostgreSQL is unreachable (CI has both)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import RunningAgent, start_agent
from tests.tasks.helpers import FAST_TASKS, get, result_json, submit, wait_for
from tests.waiting import eventually

REDIS_URL = os.environ.get("HYAC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_ADMIN_URL = os.environ.get(
    "HYAC_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres"
)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _why_not() -> str | None:
    from sqlalchemy.engine import make_url

    redis = make_url(REDIS_URL.replace("redis://", "redis+x://", 1))
    if not _reachable(redis.host or "127.0.0.1", redis.port or 6379):
        return f"Redis is not reachable at {REDIS_URL} (start redis-server; CI runs it)"
    pg = make_url(POSTGRES_ADMIN_URL)
    if not _reachable(pg.host or "127.0.0.1", pg.port or 5432):
        return f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} (CI runs it)"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    return None


_REASON = _why_not()
pytestmark = [
    pytest.mark.requires_celery,
    pytest.mark.skipif(_REASON is not None, reason=f"Celery tests need services: {_REASON}"),
]


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A fresh PostgreSQL database for this module, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "hyac_test_" + secrets.token_hex(4)
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Cluster:
    agent: RunningAgent
    workers: list[Worker]
    env: dict[str, str]

    def by_pid(self, pid: int) -> Worker:
        return next(w for w in self.workers if w.process.pid == pid)


def start_worker(data_dir: Path, env: dict[str, str], concurrency: int = 2) -> Worker:
    log_path = data_dir.parent / f"worker-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hyac_agent", "worker", "--concurrency", str(concurrency),
             "--sandbox", "bwrap"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "HYAC_DATA_DIR": str(data_dir), **env},
        )
    worker = Worker(process, log_path)
    deadline = time.monotonic() + 30
    while " ready." not in worker.log():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"worker did not start: {worker.log()}")
        time.sleep(0.1)
    return worker


@pytest.fixture
def cluster(isolation: Path, database: str) -> Iterator[Cluster]:
    """An API agent and two workers sharing PostgreSQL, Redis and the bundles folder."""
    data_dir = Path(os.environ["HYAC_DATA_DIR"])
    env = {
        **FAST_TASKS,
        "HYAC_QUEUE": "celery",
        "HYAC_BROKER_URL": REDIS_URL,
        "HYAC_CELERY_QUEUE": "hyac-test-" + secrets.token_hex(4),
        "HYAC_DATABASE_URL": database,
    }
    agent = start_agent(data_dir, "--sandbox", "bwrap", env=env)
    workers: list[Worker] = []
    try:
        workers = [start_worker(data_dir, env), start_worker(data_dir, env)]
        yield Cluster(agent, workers, env)
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.process.kill()
        agent.kill(signal.SIGTERM)


def _pid(task: dict) -> int:
    return int(task["worker"].rsplit(":", 1)[1])


def test_tasks_spread_over_both_workers_with_progress_retries_and_cancel(cluster: Cluster) -> None:
    agent = cluster.agent
    agent.deploy("work", """
import time
def main(context):
    context.task.progress(0.5, "halfway")
    time.sleep(0.6)
    if (context.request.json() or {}).get("fail_first") and context.task.attempt == 1:
        raise RuntimeError("first attempt fails")
    return {"n": context.request.json()["n"], "attempt": context.task.attempt}
""", retries=1, retry_backoff=0.1)
    ids = [submit(agent, "work", {"n": n}) for n in range(8)]
    done = [wait_for(agent, task_id, timeout=60) for task_id in ids]
    assert [result_json(t)["n"] for t in done] == list(range(8))
    pids = {_pid(t) for t in done}
    assert pids == {w.process.pid for w in cluster.workers}, pids

    retried = wait_for(agent, submit(agent, "work", {"n": 9, "fail_first": True}), timeout=60)
    assert retried["status"] == "succeeded" and result_json(retried) == {"n": 9, "attempt": 2}

    agent.deploy("forever", """
import time
def main(context):
    n = 0
    while True:
        n += 1
        context.kv.set("loops", n)
        context.task.progress(0.25, "looping")
        time.sleep(0.1)
""")
    looping = submit(agent, "forever")
    wait_for(agent, looping, "running", timeout=60,
             check=lambda t: t["progress_message"] == "looping")  # progress via the store
    with agent.client() as client:
        assert client.post(f"/v1/tasks/{looping}/cancel").json()["status"] == "cancelled"
    # The worker notices on its next lease renewal, kills the run and says how it ended.
    eventually(lambda: any(f"task {looping}: " in w.log() for w in cluster.workers), timeout=60)
    agent.deploy("loops", "def main(context):\n    return context.kv.get('loops')\n")
    before = agent.invoke("loops").json()["body_b64"]
    # a run that kept looping would count on while another task runs its 0.6 s
    assert wait_for(agent, submit(agent, "work", {"n": 10}), timeout=60)["status"] == "succeeded"
    assert agent.invoke("loops").json()["body_b64"] == before, "the cancelled run is still looping"
    assert get(agent, looping)["status"] == "cancelled"


def test_killing_a_worker_mid_task_loses_nothing(cluster: Cluster) -> None:
    agent = cluster.agent
    agent.deploy("sturdy", """
import time
def main(context):
    context.task.progress(0.1, "started")
    time.sleep(3)
    return {"attempt": context.task.attempt}
""")
    task_id = submit(agent, "sturdy")
    running = wait_for(agent, task_id, "running", timeout=60,
                       check=lambda t: t["progress"] is not None)
    victim = cluster.by_pid(_pid(running))
    os.kill(victim.process.pid, signal.SIGKILL)
    victim.process.wait(timeout=10)
    done = wait_for(agent, task_id, timeout=60)
    assert done["status"] == "succeeded", done
    assert done["attempt"] == 2 and result_json(done) == {"attempt": 2}
    assert _pid(done) != victim.process.pid
