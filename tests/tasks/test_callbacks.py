"""Completion webhooks: signed with the agent's secret and retried with backoff, checked
by a real HTTP server in the test."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hyac_agent.tasks.callbacks import load_or_create_secret, sign, verify
from tests.conftest import RunningAgent
from tests.tasks.helpers import submit, wait_for


class Receiver:
    """Answers each callback with the next status of ``answers`` (then 200)."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[dict[str, str], bytes, float]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body,
                                       time.time()))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    served = Receiver([500])
    yield served
    served.close()


def test_signature_helpers(tmp_path: Path) -> None:
    secret = load_or_create_secret(tmp_path)
    assert stat.S_IMODE((tmp_path / "callback.key").stat().st_mode) == 0o600
    assert load_or_create_secret(tmp_path) == secret  # made once
    body = b'{"a":1}'
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert sign(secret, body) == expected
    assert verify(secret, body, expected) and not verify(secret, body + b" ", expected)


def test_callback_is_signed_and_retried_until_delivered(
    task_agent: RunningAgent, receiver: Receiver
) -> None:
    task_agent.deploy("report", "def main(context):\n    return {'made': 'report'}\n")
    task_id = submit(task_agent, "report", callback_url=receiver.url)
    assert wait_for(task_agent, task_id)["status"] == "succeeded"
    delivered = wait_for(task_agent, task_id, "succeeded",
                         check=lambda t: t["callback_status"] == "delivered")
    assert delivered["callback_attempts"] == 2
    assert len(receiver.calls) == 2  # the first answer was a 500, so it came again

    secret = (Path(os.environ["HYAC_DATA_DIR"]) / "callback.key").read_text().strip()
    for attempt, (headers, body, _at) in enumerate(receiver.calls, start=1):
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-hyac-signature"], expected)
        assert headers["x-hyac-task-id"] == task_id
        assert headers["x-hyac-event"] == "task.succeeded"
        assert headers["x-hyac-delivery-attempt"] == str(attempt)
        payload = json.loads(body)
        assert payload["event"] == "task.succeeded"
        assert payload["task"]["id"] == task_id and payload["task"]["status"] == "succeeded"
        assert payload["task"]["result"]["body_b64"]


def test_function_callback_url_reports_dead_tasks_too(
    task_agent: RunningAgent, receiver: Receiver
) -> None:
    receiver.answers = [503, 503]
    task_agent.deploy("doomed", "def main(context):\n    raise KeyError('gone')\n",
                      callback_url=receiver.url)
    task_id = submit(task_agent, "doomed")
    dead = wait_for(task_agent, task_id, "dead",
                    check=lambda t: t["callback_status"] == "delivered")
    assert dead["callback_attempts"] == 3
    first, second, third = (at for _h, _b, at in receiver.calls)
    assert third - second >= (second - first) * 0.5  # backoff grows (with jitter)
    payload = json.loads(receiver.calls[-1][1])
    assert payload["event"] == "task.dead" and payload["task"]["error"]["type"] == "KeyError"
