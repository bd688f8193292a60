"""Celery on RabbitMQ as well as Redis: an agent and a ``hyac-agent worker`` that share
only PostgreSQL, the broker and the secrets key (no bundles folder): every task the agent
accepts is run by the worker, on code it fetched from the store.

Skipped, with the reason, when RabbitMQ (127.0.0.1:5672, guest/guest), PostgreSQL or
bubblewrap is missing (scripts/services.sh installs and starts them)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess

import pytest

from tests.cluster.helpers import postgres_database, reachable
from tests.conftest import start_agent
from tests.tasks.helpers import FAST_TASKS, result_json, submit, wait_for

AMQP_URL = os.environ.get("HYAC_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _why_not() -> str | None:
    if not reachable("127.0.0.1", 5672):
        return "RabbitMQ is not reachable at 127.0.0.1:5672 (scripts/services.sh starts it)"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    return None


_REASON = _why_not()
pytestmark = [
    pytest.mark.requires_celery,
    pytest.mark.skipif(_REASON is not None, reason=f"RabbitMQ test needs: {_REASON}"),
]


def test_tasks_run_through_rabbitmq_on_a_worker_with_its_own_disk(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from tests.tasks.test_celery import start_worker

    for database in postgres_database():
        home = tmp_path_factory.mktemp("amqp")
        env = {
            **FAST_TASKS,
            "HYAC_QUEUE": "celery",
            "HYAC_BROKER_URL": AMQP_URL,
            "HYAC_CELERY_QUEUE": "hyac-test-" + secrets.token_hex(4),
            "HYAC_DATABASE_URL": database,
            "HYAC_CONFIG_DIR": str(home / "config"),
        }
        agent = start_agent(home / "agent" / "data", "--sandbox", "bwrap", env=env)
        worker_dir = home / "worker" / "data"
        worker_dir.mkdir(parents=True)
        shutil.copy2(agent.data_dir / "secrets.key", worker_dir / "secrets.key")
        worker = start_worker(worker_dir, env)
        try:
            agent.deploy("square", """
def main(context):
    n = context.request.json()["n"]
    context.task.progress(0.5, "half")
    return {"square": n * n}
""")
            ids = [submit(agent, "square", {"n": n}) for n in range(5)]
            done = [wait_for(agent, task_id, timeout=120) for task_id in ids]
            assert [result_json(t) for t in done] == [{"square": n * n} for n in range(5)]
            assert {int(t["worker"].rsplit(":", 1)[1]) for t in done} == {worker.process.pid}
            # the worker ran code it fetched from the store into its own cache
            assert any((worker_dir / "bundles").iterdir()), worker.log()
        finally:
            worker.process.send_signal(signal.SIGTERM)
            try:
                worker.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.process.kill()
            agent.kill(signal.SIGTERM)
