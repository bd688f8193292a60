"""A cluster on one machine: two agents and two workers, each a "host" in a network
namespace of its own (a veth pair to this namespace, its own 127.0.0.1), one PostgreSQL
and one RabbitMQ (the Celery broker; Redis is tested in tests/tasks/test_celery.py)
reached from every host (through socat over a Unix socket: the servers
stay on this namespace's loopback), and HAProxy in front of the agents.

Under a bounded load of sync invokes and background tasks, one agent and one worker are
killed (SIGKILL to the whole host's processes). Then: sync requests fail over (only those
sent to the agent as it died may fail, with 502/503 or a closed connection, none
hangs), every accepted task
ends ``succeeded``, no task's function completes twice, and the version is still there.

Needs root (network namespaces), ``ip``, socat, HAProxy, bubblewrap, PostgreSQL and RabbitMQ
(scripts/services.sh installs them); skipped, naming what is missing, without them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.cluster.helpers import postgres_database, reachable, shared_keys
from tests.tasks.helpers import FAST_TASKS
from tests.waiting import eventually


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "socat", "haproxy", "bwrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/services.sh installs it)"
    if not reachable("127.0.0.1", 5672):
        return "RabbitMQ is not reachable at 127.0.0.1:5672 (guest/guest)"
    return None


_REASON = _why_not()
pytestmark = [
    pytest.mark.requires_celery,
    pytest.mark.skipif(_REASON is not None, reason=f"the cluster test needs: {_REASON}"),
]


#: what every host reaches on its own 127.0.0.1: PostgreSQL, RabbitMQ
SERVICES = (("pg", 5432), ("amqp", 5672))


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@dataclass
class Host:
    name: str  # the namespace
    address: str  # its end of the veth pair
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    helpers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self, argv: list[str], env: dict[str, str]) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.name, sys.executable, "-m", "hyac_agent", *argv],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **env, "HYAC_DATA_DIR": str(self.data_dir)},
            )

    def kill(self) -> None:
        """The host dies: everything it ran, at once."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)


class Cluster:
    def __init__(self, root: Path, stack: ExitStack) -> None:
        self.root = root
        self.stack = stack
        self.tag = secrets.token_hex(3)
        self.subnet = 100 + secrets.randbelow(100)
        self.sockets = root / "sockets"
        self.sockets.mkdir()
        self.bridges: list[subprocess.Popen[bytes]] = []
        for name, port in SERVICES:
            self.bridges.append(subprocess.Popen(
                ["socat", f"UNIX-LISTEN:{self.sockets / name}.sock,fork,mode=600",
                 f"TCP:127.0.0.1:{port}"], stderr=subprocess.DEVNULL))
        stack.callback(self._stop_bridges)
        eventually(lambda: all((self.sockets / f"{n}.sock").exists() for n, _ in SERVICES),
                   timeout=10)

    def _stop_bridges(self) -> None:
        for bridge in self.bridges:
            bridge.kill()
            bridge.wait()

    def host(self, index: int, role: str) -> Host:
        name = f"hyac{self.tag}{role}"
        outside, inside = f"hx{self.tag}{index}", f"hy{self.tag}{index}"
        _run("ip", "netns", "add", name)
        self.stack.callback(subprocess.run, ["ip", "netns", "del", name], capture_output=True)
        _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        _run("ip", "link", "set", inside, "netns", name)
        prefix = f"10.{self.subnet}.{index}"
        _run("ip", "addr", "add", f"{prefix}.1/30", "dev", outside)
        _run("ip", "link", "set", outside, "up")
        _run("ip", "netns", "exec", name, "ip", "addr", "add", f"{prefix}.2/30", "dev", inside)
        _run("ip", "netns", "exec", name, "ip", "link", "set", inside, "up")
        _run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        data_dir = self.root / role / "data"
        data_dir.mkdir(parents=True)
        host = Host(name, f"{prefix}.2", data_dir, self.root / role / "host.log")
        for service, port in SERVICES:  # its own 127.0.0.1 has them
            host.helpers.append(subprocess.Popen(
                ["ip", "netns", "exec", name, "socat",
                 f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                 f"UNIX-CONNECT:{self.sockets / service}.sock"], stderr=subprocess.DEVNULL))
        self.stack.callback(self._stop_host, host)
        return host

    @staticmethod
    def _stop_host(host: Host) -> None:
        host.kill()
        for helper in host.helpers:
            helper.kill()
            helper.wait()


def haproxy(root: Path, agents: list[Host], port: int) -> subprocess.Popen[bytes]:
    servers = "\n".join(f"    server {h.name} {h.address}:8040 check inter 300ms fall 2 rise 1"
                        for h in agents)
    config = root / "haproxy.cfg"
    config.write_text(f"""global
    maxconn 1024
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch
    retry-on conn-failure
frontend hyac
    bind 127.0.0.1:{port}
    default_backend agents
backend agents
    balance roundrobin
    option httpchk GET /v1/health
    # a request is never sent over a kept-alive connection that may be dead: one in flight
    # on a dead agent is answered 502, not closed on the client without an answer
    http-reuse never
{servers}
""")
    return subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


Running = tuple[str, str, list[Host], list[Host]]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Running]:
    for database in postgres_database():
        with ExitStack() as stack:
            yield _start(tmp_path, stack, database)


def _start(root: Path, stack: ExitStack, database: str) -> Running:
    """The hosts, the nodes on them and the balancer: (its URL, the owner token, agents,
    workers)."""
    nodes = Cluster(root, stack)
    agents = [nodes.host(1, "a1"), nodes.host(2, "a2")]
    workers = [nodes.host(3, "w1"), nodes.host(4, "w2")]
    env = {**FAST_TASKS, "HYAC_QUEUE": "celery", "HYAC_CELERY_QUEUE": f"hyac-{nodes.tag}",
           "HYAC_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//", "HYAC_DATABASE_URL": database,
           "HYAC_CONFIG_DIR": str(root / "config")}
    shared_keys(*(host.data_dir for host in agents + workers))
    for agent in agents:  # every host boots at once
        agent.start(["serve", "--host", "0.0.0.0", "--port", "8040", "--sandbox", "bwrap"], env)
    for worker in workers:
        worker.start(["worker", "--concurrency", "2", "--sandbox", "bwrap"], env)
    eventually(lambda: all((a.data_dir / "agent.json").exists() for a in agents), timeout=60)
    eventually(lambda: all(" ready." in w.text() for w in workers), timeout=60)
    port = free_port()
    balancer = haproxy(root, agents, port)
    stack.callback(balancer.wait)
    stack.callback(balancer.kill)
    url = f"http://127.0.0.1:{port}"
    eventually(lambda: _answers(url), timeout=30)
    return url, (agents[0].data_dir / "agent.token").read_text().strip(), agents, workers


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _b64(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def test_killing_an_agent_and_a_worker_under_load(
    cluster: Running, request: pytest.FixtureRequest,
) -> None:
    url, token, agents, workers = cluster
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    request.addfinalizer(api.close)
    for name, source in (
        ("echo", "def main(context):\n    return context.request.json()\n"),
        ("job", """
import time
def main(context):
    n = context.request.json()["n"]
    context.task.progress(0.1, "started")
    time.sleep(2)
    key = "done:%d" % n
    context.kv.set(key, (context.kv.get(key) or 0) + 1)
    return {"n": n}
"""),
        ("done", "def main(context):\n    return context.kv.get(context.request.json()['key'])\n"),
    ):
        entry = f"functions/{name}.py"
        deployed = api.put(f"/v1/functions/{name}", json={
            "entry": entry, "files_b64": {entry: base64.b64encode(source.encode()).decode()},
        })
        assert deployed.status_code in (200, 201), deployed.text

    statuses: list[tuple[float, int | str]] = []  # (when it was sent, how it ended)
    stop = threading.Event()

    def load() -> None:
        # A connection per request: a kept-alive one the balancer closes as it is reused
        # would fail a request that never reached any agent, which is the client's race.
        no_keepalive = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=url, timeout=30, limits=no_keepalive) as client:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.post("/default/echo", json={"x": 1})
                    statuses.append((sent, response.status_code))
                except httpx.HTTPError as exc:  # a hang ends here, and fails the test
                    statuses.append((sent, type(exc).__name__))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        tasks = []
        for n in range(12):
            answer = api.post("/v1/functions/job/invoke", params={"mode": "async"},
                              json={"body_b64": _b64({"n": n}),
                                    "headers": {"content-type": "application/json"}})
            assert answer.status_code == 202, answer.text
            tasks.append(answer.json()["task_id"])
        eventually(lambda: len(statuses) > 40, timeout=60)
        # a worker dies mid-task and an agent mid-load: their hosts, every process
        def running() -> dict[str, object] | None:
            found = [api.get(f"/v1/tasks/{t}").json() for t in tasks]
            return next((t for t in found if t["status"] == "running" and t["worker"]
                         and t["progress"] is not None), None)

        victim_task = eventually(running, timeout=60)
        pid = int(str(victim_task["worker"]).rsplit(":", 1)[1])
        victim = next(w for w in workers if w.process is not None and w.process.pid == pid)
        victim.kill()
        agents[0].kill()
        gone = time.monotonic()  # the agent's process is reaped: its port refuses
        eventually(lambda: sum(sent > gone for sent, _ in statuses) > 60, timeout=60)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    failed = [(sent, s) for sent, s in statuses if s != 200]
    # Only requests sent to the agent while it died fail, at once (none waits for a
    # timeout): with 502/503, or now and then with the connection closed unanswered, which
    # is how HAProxy ends some of them; every one sent after it was gone is served.
    assert all(s in (502, 503, "RemoteProtocolError") for _, s in failed), failed
    assert all(sent < gone for sent, _ in failed), [round(sent - gone, 3) for sent, _ in failed]
    assert [s for sent, s in statuses if sent > gone] == [200] * sum(sent > gone for sent, _ in statuses)

    def ended() -> list[dict[str, object]] | None:
        found = [api.get(f"/v1/tasks/{t}").json() for t in tasks]
        return found if all(t["status"] in ("succeeded", "dead", "cancelled") for t in found) else None

    done = eventually(ended, timeout=90)
    assert [t["status"] for t in done] == ["succeeded"] * len(tasks), done
    retried = next(t for t in done if t["id"] == victim_task["id"])
    assert retried["attempt"] >= 2 and not str(retried["worker"]).endswith(f":{pid}"), retried
    for n, task in enumerate(done):
        counted = api.post("/v1/functions/done/invoke", json={
            "body_b64": _b64({"key": f"done:{n}"}), "headers": {"content-type": "application/json"}})
        runs = int(base64.b64decode(counted.json()["body_b64"]))
        # A run that ended was never run again; only one cut short by the dead worker was
        # (and it may have got as far as its last line before the kill).
        assert runs == 1 if task["attempt"] == 1 else runs in (1, 2), (n, runs, task)
    versions = api.get("/v1/functions/job/versions").json()
    assert [v["version"] for v in versions] == [1]
