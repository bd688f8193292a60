"""The agent's side of the Celery engine against the real local Redis (no worker runs
here, so the messages stay on the broker's list to be read): tasks submitted together
are sent by one thread in one go, each message names its own task, and a message that
cannot be sent fails only its own submission.

Skipped, with the reason, when Redis is unreachable (CI runs it)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hyac_common.wire import InvokeRequest
from tests.in_process import InProcessAgent, in_process_agent

REDIS_URL = os.environ.get("HYAC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_missing() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return None
    except OSError as exc:
        return f"Redis is not reachable on 127.0.0.1:6379 ({exc}); start redis-server"


pytestmark = pytest.mark.skipif(_redis_missing() is not None,
                                reason=f"needs Redis: {_redis_missing()}")


@pytest.fixture
def celery_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcessAgent]:
    queue = f"hyac-test-{secrets.token_hex(4)}"
    monkeypatch.setenv("HYAC_QUEUE", "celery")
    monkeypatch.setenv("HYAC_BROKER_URL", REDIS_URL)
    monkeypatch.setenv("HYAC_CELERY_QUEUE", queue)
    import redis

    broker = redis.Redis.from_url(REDIS_URL)
    try:
        with in_process_agent(tmp_path / "data") as running:
            running.deploy("job", "def main(context):\n    return None\n", background=True)
            yield running
    finally:
        broker.delete(queue)
        broker.close()


def _sent(agent: InProcessAgent) -> list[str]:
    """The task ids of the messages on the agent's Celery queue, oldest first."""
    import redis

    queue = agent.agent.queue.queue_name  # type: ignore[attr-defined]
    with redis.Redis.from_url(REDIS_URL) as broker:
        raw = broker.lrange(queue, 0, -1)
    ids = []
    for item in reversed(raw):  # LPUSH: the newest first
        body = json.loads(base64.b64decode(json.loads(item)["body"]))
        ids.append(body[0][0])
    return ids


def _burst(agent: InProcessAgent, count: int) -> list[Any]:
    async def burst() -> list[Any]:
        return await asyncio.gather(*(
            agent.agent.tasks.submit("default", "job", InvokeRequest(
                body_b64=base64.b64encode(f"{i}".encode()).decode()))
            for i in range(count)
        ), return_exceptions=True)

    return agent.run(burst())


def test_a_burst_is_sent_in_groups_and_every_task_gets_its_message(
    celery_agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = celery_agent.agent.queue
    groups: list[int] = []
    send_many = queue._send_many  # type: ignore[attr-defined]

    def counted(messages: list[Any]) -> list[None]:
        groups.append(len(messages))
        return send_many(messages)  # type: ignore[no-any-return]

    monkeypatch.setattr(queue._sends, "_write_many", counted)  # type: ignore[attr-defined]
    records = _burst(celery_agent, 40)
    assert all(not isinstance(r, BaseException) for r in records), records
    assert sorted(_sent(celery_agent)) == sorted(r.id for r in records)
    # submitted in one turn of the loop, they went in groups, not one by one
    assert groups and max(groups) > 1 and sum(groups) <= 40, groups


def test_a_message_that_cannot_be_sent_fails_only_its_own_submission(
    celery_agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = celery_agent.agent.queue
    send = queue._send  # type: ignore[attr-defined]
    refused: list[str] = []

    def flaky(message: tuple[str, float], producer: Any = None) -> None:
        if not refused:  # the first message sent in a group is refused, every time
            refused.append(message[0])
        if message[0] == refused[0]:
            raise ConnectionError("the broker hung up")
        send(message, producer)

    monkeypatch.setattr(queue, "_send", flaky)
    monkeypatch.setattr(queue._sends, "_write_one", flaky)  # type: ignore[attr-defined]
    outcomes = _burst(celery_agent, 12)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and "broker hung up" in str(failed[0]), outcomes
    sent = _sent(celery_agent)
    assert refused[0] not in sent
    # every other task has its message (some perhaps twice: a group that failed is sent
    # again one by one, and only one claim of a run can succeed)
    assert set(sent) == {o.id for o in outcomes if not isinstance(o, BaseException)}
