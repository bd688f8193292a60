"""A remote template source that answers slowly, a byte at a time so no read ever times
out: listing templates must not hold the threads every tenant's requests need, each
read of the source ends within its overall limit, and requests that want the same
listing at the same time share one read."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hyac_agent.templates import remote
from tests.conftest import RunningAgent, requires_bwrap, start_agent


class DripSource:
    """An HTTP server on loopback that answers every request with a 200 whose body comes
    one byte every second, for good."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000000\r\n\r\n[")
                while not self.closed.wait(1.0):
                    conn.sendall(b" ")
            except OSError:
                return

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


@pytest.fixture
def drip() -> Iterator[DripSource]:
    source = DripSource()
    yield source
    source.close()


@pytest.fixture
def few_threads(isolation: Path) -> Iterator[RunningAgent]:
    running = start_agent(isolation / "data", "--sandbox", "bwrap",
                          env={"HYAC_AGENT_THREADS": "4", "HYAC_TENANT_HOST_CALLS": "2"})
    yield running
    running.kill(signal.SIGTERM)


@requires_bwrap
@pytest.mark.timeout(180)
def test_a_slow_source_holds_neither_the_agents_threads_nor_its_listings(
    few_threads: RunningAgent, drip: DripSource
) -> None:
    agent = few_threads
    headers = {"Authorization": f"Bearer {agent.token}"}
    with httpx.Client(base_url=agent.url, headers=headers, timeout=10) as client:
        added = client.post("/v1/templates/sources", json={"url": drip.url})
        assert added.status_code in (200, 201), added.text
    answers: list[httpx.Response] = []

    def list_templates() -> None:
        with httpx.Client(base_url=agent.url, headers=headers, timeout=120) as client:
            answers.append(client.get("/v1/templates"))

    # Three times as many listings as the agent has threads.
    listers = [threading.Thread(target=list_templates) for _ in range(12)]
    for lister in listers:
        lister.start()
    deadline = time.monotonic() + 30
    while drip.connections == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert drip.connections > 0, "the agent never read the source"
    # Meanwhile what needs the agent's threads still answers; the client gives up after
    # 10 s, half of one read's limit.
    with httpx.Client(base_url=agent.url, headers=headers, timeout=10) as client:
        for _ in range(3):
            assert client.get("/v1/functions").status_code == 200
            assert client.get("/v1/agent").status_code == 200
            time.sleep(1)
    for lister in listers:
        lister.join(timeout=remote.TOTAL_SECONDS + 60)
    assert len(answers) == 12
    for answer in answers:
        assert answer.status_code == 200, answer.text
        unreachable = answer.json()["unreachable"]
        assert [u["source"] for u in unreachable] == [drip.url], unreachable
        assert "longer than" in unreachable[0]["reason"], unreachable
    # one read for all twelve (a second if the first ended as the last one asked)
    assert drip.connections <= 2, drip.connections
