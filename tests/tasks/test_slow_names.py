"""A tenant's URLs may name hosts whose name servers never answer: looking them up must
not hold the threads every tenant's requests need (store, host calls), nor keep the agent
from stopping.

The agent runs with a name server of the test's own that receives queries and never
answers (a UDP socket on a loopback address, put in ``/etc/resolv.conf`` inside a mount
namespace of the agent's own), so each lookup waits the resolver's full 30 s timeout.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hyac_agent.tasks.destinations import NameLookups
from tests.conftest import RunningAgent, current_runtime, start_agent
from tests.tasks.helpers import FAST_TASKS, submit, wait_for

REPORT = "def main(context):\n    return {'made': 'report'}\n"
SILENT_SERVER = "127.83.83.83"


class SilentNameServer:
    """Takes DNS queries on port 53 of a loopback address and answers none."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((SILENT_SERVER, 53))
        self.queries = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                self.sock.recvfrom(4096)
            except OSError:
                return
            self.queries += 1

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def silent_names(tmp_path: Path) -> Iterator[tuple[SilentNameServer, Path]]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a resolv.conf of the agent's own needs root and unshare (util-linux)")
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True,
                           timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no mount namespace for the agent here: {probe.stderr.strip()}")
    try:
        server = SilentNameServer()
    except OSError as exc:
        pytest.skip(f"cannot take UDP port 53 on {SILENT_SERVER}: {exc}")
    conf = tmp_path / "resolv.conf"
    conf.write_text(f"nameserver {SILENT_SERVER}\noptions timeout:30 attempts:1\n")
    yield server, conf
    server.close()


@pytest.fixture
def slow_agent(isolation: Path, silent_names: tuple[SilentNameServer, Path]
               ) -> Iterator[RunningAgent]:
    """An agent with few threads whose name lookups wait 30 s, callbacks to public
    addresses only (the default)."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    _, conf = silent_names
    wrapper = ("unshare", "--mount", "sh", "-c",
               f"mount --bind {conf} /etc/resolv.conf && exec \"$@\"", "sh")
    running = start_agent(Path(os.environ["HYAC_DATA_DIR"]), "--sandbox", "bwrap",
                          env={**FAST_TASKS, "HYAC_AGENT_THREADS": "4",
                               "HYAC_TENANT_HOST_CALLS": "2"},
                          wrapper=wrapper)
    yield running
    started = time.monotonic()
    running.kill(signal.SIGTERM)  # fails the test if the agent is still there after 20 s
    assert time.monotonic() - started < 20


@pytest.mark.timeout(120)  # passing takes seconds; a stalled agent takes every poll 30 s
def test_callbacks_to_names_that_never_resolve_leave_the_agent_serving(
    slow_agent: RunningAgent, silent_names: tuple[SilentNameServer, Path]
) -> None:
    server, _ = silent_names
    slow_agent.deploy("report", REPORT)
    # Many more lookups than the agent has threads, each one waiting 30 s.
    tasks = [submit(slow_agent, "report", callback_url=f"https://hook{i}.slow.example/h")
             for i in range(12)]
    for task_id in tasks:
        assert wait_for(slow_agent, task_id, "succeeded")["callback_url"]
    deadline = time.monotonic() + 10
    while server.queries == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.queries > 0, "the agent never asked the name server"
    # With the lookups in flight, what needs the agent's threads still answers: a deploy
    # (store, bundle files), a task listing, another function's run. The client gives up
    # after 10 s, a third of one lookup's wait.
    with httpx.Client(base_url=slow_agent.url, timeout=10,
                      headers={"Authorization": f"Bearer {slow_agent.token}"}) as client:
        for _ in range(3):
            listed = client.get("/v1/tasks", params={"function": "report"})
            assert listed.status_code == 200, listed.text
            assert {t["id"] for t in listed.json()} >= set(tasks)
            entry = "functions/other.py"
            deployed = client.put("/v1/functions/other", json={
                "entry": entry,
                "files_b64": {entry: "ZGVmIG1haW4oY29udGV4dCk6CiAgICByZXR1cm4gNwo="},
                "config": {"runtime": current_runtime()},
            })
            assert deployed.status_code in (200, 201), deployed.text
            ran = client.post("/default/other")
            assert ran.status_code == 200 and ran.json() == 7, ran.text
    # The callbacks are not lost: each is still to be delivered, or failed after its
    # lookups ran out (a name that does not resolve is retried, then given up).
    with slow_agent.client() as client:
        states = {client.get(f"/v1/tasks/{t}").json()["callback_status"] for t in tasks}
    assert states <= {"pending", "failed"}, states


# the lookup threads, in this process ----------------------------------------------------

class BlockingNames:
    """``socket.getaddrinfo`` where names under ``.slow`` wait until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started: list[str] = []
        self.real = socket.getaddrinfo

    def __call__(self, host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host.endswith(".slow"):
            self.started.append(host)
            self.release.wait(30)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.real(host, port, *args, **kwargs)


def test_a_tenant_holds_at_most_its_share_of_the_lookup_threads(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    names = BlockingNames()
    monkeypatch.setattr(socket, "getaddrinfo", names)
    lookups = NameLookups(threads=3, per_tenant=2)

    async def scenario() -> None:
        noisy = [asyncio.create_task(lookups.addresses(f"h{i}.slow", 443, tenant="noisy",
                                                       timeout=0.5)) for i in range(6)]
        await asyncio.sleep(0.2)
        # Two of the noisy tenant's lookups run; the rest wait for them, not for threads.
        assert len(names.started) == 2
        # Another tenant's lookup finds a thread free at once.
        found = await lookups.addresses("localhost", 80, tenant="quiet", timeout=5)
        assert "127.0.0.1" in found or "::1" in found
        outcomes = await asyncio.gather(*noisy, return_exceptions=True)
        assert all(isinstance(o, OSError) and "took longer than 0.5 s" in str(o)
                   for o in outcomes), outcomes
        # The two still running count against the tenant until the resolver gives up.
        assert len(names.started) == 2
        names.release.set()
        await asyncio.sleep(0.2)
        with pytest.raises(OSError, match="not known"):
            await lookups.addresses("again.slow", 443, tenant="noisy", timeout=5)
        assert len(names.started) == 3

    try:
        asyncio.run(scenario())
    finally:
        names.release.set()
