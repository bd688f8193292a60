"""Per-tenant networks, with real traffic, on both sandbox backends.

The outside world is a test host of our own: a network namespace made here, joined to
this machine by a veth pair, serving TCP on its own address. Every test that shows a
packet is stopped also shows, from a place that is allowed, that the same target answers
(so a broken listener can never pass for a working firewall).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import RunningAgent, start_agent
from tests.sandbox.conftest import backend_missing
from tests.waiting import eventually

PROBE = r'''
import os, socket, threading

_listener = []


def _gateway():
    with open("/proc/net/route") as handle:
        for line in handle.read().splitlines()[1:]:
            fields = line.split()
            if fields[1] == "00000000":
                return socket.inet_ntoa(bytes.fromhex(fields[2])[::-1])
    return None


def _address():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        return probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()


def _serve(server):
    while True:
        conn, _ = server.accept()
        conn.sendall(b"tenant-listener")
        conn.close()


def main(context):
    q = context.request.query
    if q.get("ipv6"):
        with open("/proc/net/if_inet6") as handle:
            return {"addresses": handle.read().split()}
    if q.get("listen"):
        if not _listener:
            server = socket.socket()
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("0.0.0.0", int(q["listen"])))
            server.listen(8)
            threading.Thread(target=_serve, args=(server,), daemon=True).start()
            _listener.append(server)
        return {"address": _address()}
    host = _gateway() if q["host"] == "gateway" else q["host"]
    try:
        with socket.create_connection((host, int(q["port"])), timeout=2) as conn:
            conn.settimeout(2)
            return {"host": host, "connected": True, "data": conn.recv(100).decode()}
    except OSError as exc:
        return {"host": host, "connected": False, "error": f"{type(exc).__name__}: {exc}"}
'''


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def _network_missing() -> str | None:
    if os.geteuid() != 0:
        return "not root: per-tenant networks need root"
    for tool in ("ip", "iptables", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2 iptables util-linux)"
    return None


@dataclass
class ExternalHost:
    netns: str
    host_address: str
    address: str
    port: int


def _serve_forever(server: socket.socket, reply: bytes, stop: threading.Event) -> None:
    server.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except OSError:
            continue
        with conn:
            conn.sendall(reply)


@pytest.fixture(scope="module")
def outside() -> Iterator[ExternalHost]:
    """A host of our own in a network namespace, answering ``outside`` on TCP 8080."""
    reason = _network_missing()
    if reason:
        pytest.skip(f"PER-TENANT NETWORKS NOT TESTED: {reason}")
    tag = f"{os.getpid() % 100000}"
    netns, veth = f"hyac-test-out-{tag}", f"hxt{tag}"
    subnet = next(
        s for s in ipaddress.ip_network("10.252.0.0/16").subnets(new_prefix=30)
        if f"inet {s.network_address + 1}/" not in _run("ip", "-4", "-o", "addr", "show").stdout
    )
    host_ip, ns_ip = (str(a) for a in list(subnet.hosts())[:2])
    for argv in (
        ("ip", "netns", "add", netns),
        ("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns),
        ("ip", "addr", "add", f"{host_ip}/30", "dev", veth),
        ("ip", "link", "set", veth, "up"),
        ("ip", "-n", netns, "addr", "add", f"{ns_ip}/30", "dev", "eth0"),
        ("ip", "-n", netns, "link", "set", "eth0", "up"),
        ("ip", "-n", netns, "link", "set", "lo", "up"),
        ("ip", "-n", netns, "route", "add", "default", "via", host_ip),
    ):
        result = _run(*argv)
        assert result.returncode == 0, f"{argv}: {result.stderr}"
    server = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", (
            "import socket\n"
            f"s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('{ns_ip}', 8080)); s.listen(16)\n"
            "while True:\n"
            "    c, _ = s.accept(); c.sendall(b'outside'); c.close()\n"
        )],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = _run("ip", "netns", "exec", netns, sys.executable, "-c",
                         f"import socket; socket.create_connection(('{ns_ip}', 8080), timeout=1)")
            if probe.returncode == 0:
                break
            time.sleep(0.1)
        yield ExternalHost(netns, host_ip, ns_ip, 8080)
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        _run("ip", "link", "del", veth)
        _run("ip", "netns", "del", netns)


@dataclass
class Platform:
    backend: str
    agent: RunningAgent

    def tenant(self, name: str, egress: object) -> str:
        with self.agent.client() as client:
            response = client.post("/v1/tenants", json={"name": name, "egress": egress})
        assert response.status_code in (200, 201), response.text
        self.agent.deploy("probe", PROBE, tenant=name, timeout=20)
        return name

    def probe(self, tenant: str, function: str = "probe", **query: object) -> dict:
        answer = self.agent.invoke(function, tenant=tenant, query={k: str(v) for k, v in query.items()})
        assert answer.status_code == 200, answer.text
        payload = answer.json()
        assert payload["ok"], payload
        return json.loads(base64.b64decode(payload["body_b64"]))


@pytest.fixture(scope="module", params=("bwrap", "docker", "gvisor"))
def platform(request: pytest.FixtureRequest, outside: ExternalHost,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    reason = backend_missing(request.param)
    if reason:
        pytest.skip(f"SANDBOX BACKEND {request.param!r} NOT TESTED: {reason}")
    data_dir = tmp_path_factory.mktemp(f"net-{request.param}") / "data"
    env = {key: value for key, value in os.environ.items() if not key.startswith("HYAC_")}
    agent = start_agent(data_dir, "--sandbox", request.param, env=env)
    try:
        yield Platform(request.param, agent)
    finally:
        agent.kill(signal.SIGTERM)


@pytest.fixture
def host_listener(outside: ExternalHost) -> Iterator[int]:
    """A TCP service of the host on every address, as an agent bound to 0.0.0.0 would be."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))
    server.listen(16)
    stop = threading.Event()
    thread = threading.Thread(target=_serve_forever, args=(server, b"host", stop), daemon=True)
    thread.start()
    port = server.getsockname()[1]
    # Control: the test host reaches it, so a refusal from a sandbox is the firewall's.
    control = _run("ip", "netns", "exec", outside.netns, sys.executable, "-c",
                   f"import socket; print(socket.create_connection(('{outside.host_address}', {port}),"
                   " timeout=2).recv(10).decode())")
    assert control.stdout.strip() == "host", control.stderr
    yield port
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_no_egress_by_default(platform: Platform, outside: ExternalHost) -> None:
    tenant = platform.tenant("quiet", "none")
    seen = platform.probe(tenant, host=outside.address, port=outside.port)
    assert seen["connected"] is False, seen
    assert platform.probe(tenant, listen=9100)["address"] is None, "no route out at all"


def test_allow_reaches_the_outside_but_not_the_host(platform: Platform, outside: ExternalHost,
                                                     host_listener: int) -> None:
    tenant = platform.tenant("open", "allow")
    seen = platform.probe(tenant, host=outside.address, port=outside.port)
    assert seen == {"host": outside.address, "connected": True, "data": "outside"}
    via_gateway = platform.probe(tenant, host="gateway", port=host_listener)
    assert via_gateway["host"], "a sandbox with egress has a default route"
    assert via_gateway["connected"] is False, via_gateway
    via_link = platform.probe(tenant, host=outside.host_address, port=host_listener)
    assert via_link["connected"] is False, via_link
    agent_port = int(platform.agent.url.rsplit(":", 1)[1])
    assert platform.probe(tenant, host="gateway", port=agent_port)["connected"] is False
    # The firewall rules are IPv4 rules: there is no IPv6 at all, not even link-local.
    assert platform.probe(tenant, ipv6=1)["addresses"] == []


def test_allowlist_admits_only_what_it_lists(platform: Platform, outside: ExternalHost) -> None:
    listed = platform.tenant("listed", [f"{outside.address}/32"])
    assert platform.probe(listed, host=outside.address, port=outside.port)["connected"] is True
    elsewhere = platform.tenant("elsewhere", ["192.0.2.0/24"])
    seen = platform.probe(elsewhere, host=outside.address, port=outside.port)
    assert seen["connected"] is False, seen


def test_tenants_cannot_reach_each_other(platform: Platform, outside: ExternalHost) -> None:
    victim = platform.tenant("victim", "allow")
    attacker = platform.tenant("attacker", "allow")
    address = platform.probe(victim, listen=9200)["address"]
    assert address, "the victim's sandbox has an address"
    # Control: the victim's own tenant reaches its listener from another function.
    platform.agent.deploy("neighbour", PROBE, tenant=victim, timeout=20)
    own = platform.probe(victim, function="neighbour", host=address, port=9200)
    assert own == {"host": address, "connected": True, "data": "tenant-listener"}
    seen = platform.probe(attacker, host=address, port=9200)
    assert seen["connected"] is False, seen
    # Nor can the outside open a connection into a tenant's network.
    inbound = _run("ip", "netns", "exec", outside.netns, sys.executable, "-c",
                   f"import socket; socket.create_connection(('{address}', 9200), timeout=2)")
    assert inbound.returncode != 0 and "Error" in inbound.stderr, inbound


def test_changing_egress_takes_effect_and_rules_follow_the_tenant(
    platform: Platform, outside: ExternalHost
) -> None:
    tenant = platform.tenant("switch", "allow")
    assert platform.probe(tenant, host=outside.address, port=outside.port)["connected"] is True
    with platform.agent.client() as client:
        assert client.put(f"/v1/tenants/{tenant}/egress", json={"egress": "none"}).status_code == 200
    assert platform.probe(tenant, host=outside.address, port=outside.port)["connected"] is False
    with platform.agent.client() as client:
        assert client.put(f"/v1/tenants/{tenant}/egress", json={"egress": "allow"}).status_code == 200
    assert platform.probe(tenant, host=outside.address, port=outside.port)["connected"] is True
    before = _run("iptables", "-S").stdout.count("-j HYAC")
    with platform.agent.client() as client:
        assert client.delete(f"/v1/tenants/{tenant}").status_code == 204
    after = _run("iptables", "-S").stdout.count("-j HYAC")
    assert after < before, "the tenant's rules are gone with it"


def _networks_of_hyac() -> set[str]:
    names = {n for n in _run("ip", "netns", "list").stdout.split() if n.startswith("hyacn-")}
    if shutil.which("docker"):
        listed = _run("docker", "network", "ls", "--format", "{{.Name}}").stdout.split()
        names |= {n for n in listed if n.startswith("hyac-")}
    return names


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_an_agent_that_stops_leaves_no_network_behind(tmp_path, outside: ExternalHost, backend: str) -> None:
    reason = backend_missing(backend)
    if reason:
        pytest.skip(f"SANDBOX BACKEND {backend!r} NOT TESTED: {reason}")
    before = _networks_of_hyac()
    rules_before = _run("iptables", "-S").stdout.count("HYAC")
    env = {key: value for key, value in os.environ.items() if not key.startswith("HYAC_")}
    agent = start_agent(tmp_path / "data", "--sandbox", backend, env=env)
    platform = Platform(backend, agent)
    try:
        for name in ("passing", "removed"):
            tenant = platform.tenant(name, "allow")
            assert platform.probe(tenant, host=outside.address, port=outside.port)["connected"] is True
        with agent.client() as client:
            assert client.delete("/v1/tenants/removed").status_code == 204
        made = _networks_of_hyac() - before
        assert made, "the tenant has a network of its own"
    finally:
        agent.kill(signal.SIGTERM)
    assert not made & _networks_of_hyac(), "the agent removed its networks when it stopped"
    assert _run("iptables", "-S").stdout.count("HYAC") == rules_before, "and its firewall rules"


def test_a_sandbox_without_networks_refuses_egress(tmp_path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HYAC_")}
    agent = start_agent(tmp_path / "data", "--insecure-no-sandbox", env=env)
    try:
        with agent.client() as client:
            refused = client.post("/v1/tenants", json={"name": "open", "egress": "allow"})
            assert refused.status_code == 400, refused.text
            assert "not possible on this agent" in refused.json()["error"]["message"]
            assert client.post("/v1/tenants", json={"name": "closed"}).status_code in (200, 201)
            refused = client.put("/v1/tenants/closed/egress", json={"egress": ["10.0.0.0/8"]})
            assert refused.status_code == 400, refused.text
            assert client.get("/v1/tenants/closed").json()["egress"] == "none"
    finally:
        agent.kill(signal.SIGTERM)


def test_a_restart_after_kill_9_clears_what_the_dead_agent_left(tmp_path, outside: ExternalHost) -> None:
    if backend_missing("bwrap"):
        pytest.skip("bubblewrap is not installed")
    env = {key: value for key, value in os.environ.items() if not key.startswith("HYAC_")}
    before = _networks_of_hyac()
    agent = start_agent(tmp_path / "data", "--sandbox", "bwrap", env=env)
    platform = Platform("bwrap", agent)
    tenant = platform.tenant("survivor", "allow")
    assert platform.probe(tenant, host=outside.address, port=outside.port)["connected"] is True
    left = _networks_of_hyac() - before
    agent.kill(signal.SIGKILL)
    assert left <= _networks_of_hyac(), "a killed agent cannot clean up"
    again = start_agent(tmp_path / "data", "--sandbox", "bwrap", env=env)
    try:
        assert not left & _networks_of_hyac(), "the next start removed the leftovers"
        platform = Platform("bwrap", again)
        assert platform.probe(tenant, host=outside.address, port=outside.port)["connected"] is True
    finally:
        again.kill(signal.SIGTERM)
    assert not (_networks_of_hyac() - before)


WATCH = PROBE.replace("def main(context):", "def _probe(context):") + r'''

import time


def main(context):
    """Every 0.2 s: (time, outside reachable, host reachable), until egress has been seen
    and then gone for a second, or ``seconds`` have passed. Says "egress seen" once."""
    q = context.request.query
    rounds, end, seen, gone = [], time.time() + float(q["seconds"]), False, None
    while time.time() < end:
        row = [time.time()]
        for host, port in ((q["out"], int(q["out_port"])), (_gateway(), int(q["host_port"]))):
            try:
                socket.create_connection((host, port), timeout=0.5).close()
                row.append(True)
            except OSError:
                row.append(False)
        rounds.append(row)
        if row[1] and not seen:
            seen = True
            print("egress seen", flush=True)
        if seen and not row[1]:
            gone = gone or row[0]
            if row[0] - gone >= 1.0:
                break
        elif row[1]:
            gone = None
        time.sleep(0.2)
    return rounds
'''


@pytest.mark.parametrize("change", ["egress none", "tenant removed"])
def test_a_running_sandbox_loses_its_network_with_its_tenants_egress(
    platform: Platform, outside: ExternalHost, host_listener: int, change: str
) -> None:
    tenant = platform.tenant(f"inflight-{change.split()[1]}", "allow")
    platform.agent.deploy("watch", WATCH, tenant=tenant, timeout=20)
    answer: dict[str, object] = {}
    query = {"seconds": "15", "out": outside.address, "out_port": str(outside.port),
             "host_port": str(host_listener)}
    running = threading.Thread(target=lambda: answer.update(
        r=platform.agent.invoke("watch", tenant=tenant, query=query)))
    running.start()

    def egress_seen() -> bool:
        with platform.agent.client(tenant) as client:
            lines = client.get("/v1/logs", params={"function": "watch"}).json()
        return any("egress seen" in line["message"] for line in lines)

    eventually(egress_seen, timeout=30, interval=0.1)
    with platform.agent.client() as client:
        if change == "egress none":
            done = client.put(f"/v1/tenants/{tenant}/egress", json={"egress": "none"})
            assert done.status_code == 200, done.text
        else:
            assert client.delete(f"/v1/tenants/{tenant}").status_code == 204
    changed = time.time()
    running.join(timeout=30)
    result = answer["r"].json()  # type: ignore[attr-defined]
    if change == "tenant removed":  # its requests in flight end with it, sandbox and all
        assert "its tenant was removed" in json.dumps(result), result
        return
    assert result["ok"], result
    rounds = json.loads(base64.b64decode(result["body_b64"]))
    assert any(out for t, out, _ in rounds if t < changed), "it had egress before"
    assert not any(host for _, _, host in rounds), rounds
    after = [(out, host) for t, out, host in rounds if t > changed + 0.5]
    assert after and not any(out or host for out, host in after), rounds
