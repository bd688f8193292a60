"""An agent listening on every loopback address (IPv4, and IPv6 where the host has it),
shared by the edge tests (each test uses tenants and names of its own, and puts back the
owner's settings)."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningAgent, start_agent

ECHO = '''
async def main(context):
    request = context.request
    if request.method == "OPTIONS":
        raise RuntimeError("a preflight reached the function")
    return {"client": request.client_ip, "headers": request.headers, "path": request.path,
            "body": request.body.decode()}
'''


class Edge:
    """The agent, with clients from chosen source addresses."""

    def __init__(self, agent: RunningAgent) -> None:
        self.agent = agent
        self.port = int(agent.url.rsplit(":", 1)[1])
        self.tls_port = 0

    def url(self, family: int = 4) -> str:
        return f"http://{'127.0.0.1' if family == 4 else '[::1]'}:{self.port}"

    def client(self, source: str = "127.0.0.1", **kwargs: object) -> httpx.Client:
        """A client whose requests come from ``source`` (any 127.x.y.z, or ::1)."""
        family = 6 if ":" in source else 4
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(base_url=self.url(family), transport=transport, timeout=60,
                            **kwargs)  # type: ignore[arg-type]

    def owner(self, tenant: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.agent.token}"}
        if tenant:
            headers["X-Hyac-Tenant"] = tenant
        return httpx.Client(base_url=self.url(), headers=headers, timeout=60)

    def tenant(self, name: str) -> None:
        with self.owner() as owner:
            if owner.get(f"/v1/tenants/{name}").status_code == 404:
                assert owner.post("/v1/tenants", json={"name": name}).status_code == 201

    def user(self, name: str, tenant: str, role: str) -> str:
        """A token of a user with ``role`` in ``tenant``."""
        self.tenant(tenant)
        with self.owner(tenant) as owner:
            assert owner.put(f"/v1/users/{name}", json={"role": role}).status_code == 200
            made = owner.post("/v1/tokens", json={"user": name})
        assert made.status_code == 201, made.text
        return str(made.json()["token"])

    def echo(self, tenant: str, name: str) -> None:
        self.tenant(tenant)
        self.agent.deploy(name, ECHO, tenant)


def _ipv6_missing() -> str | None:
    """Why this host has no IPv6 loopback (a container may have IPv6 turned off), or None."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        return f"no IPv6 loopback (::1) on this host: {exc.strerror}"
    return None


#: None where clients can connect from and to ::1; else why not
IPV6_MISSING = _ipv6_missing()


def free_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
        probe.bind(("::", 0))
        return int(probe.getsockname()[1])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: where the agent asks for TXT records (tests/edge/test_domains.py serves them)
DNS_PORT = free_udp_port()
#: names the agent's ownership checks reach on loopback (HYAC_EDGE_RESOLVE)
RESOLVED = ("verify-me.example.test", "contested.example.test")


@pytest.fixture(scope="session")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    data: Path = tmp_path_factory.mktemp("edge") / "data"
    port, tls_port = free_port(), free_port()
    agent = start_agent(data, "--host", "::", "--port", str(port), "--insecure-no-sandbox", env={
        "HYAC_TLS_PORT": str(tls_port),
        "HYAC_ACME_INTERVAL": "1",
        "HYAC_DOMAIN_CHECK_PORT": str(port),
        "HYAC_DOMAIN_DNS_SERVER": f"127.0.0.1:{DNS_PORT}",
        "HYAC_EDGE_RESOLVE": ",".join(f"{name}=127.0.0.1" for name in RESOLVED),
    })
    running = Edge(agent)
    running.tls_port = tls_port
    yield running
    agent.kill(signal.SIGTERM)


class DnsServer:
    """A DNS server on loopback: TXT answers from ``records``, and every name under
    ``loopback_suffix`` is 127.0.0.1 (A) and, where the host has IPv6, ::1 (AAAA; without
    it such a name has no AAAA record, as a domain of an IPv4-only server)."""

    def __init__(self, port: int, loopback_suffix: str = "") -> None:
        self.records: dict[str, str] = {}
        self.loopback_suffix = loopback_suffix
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import dns.message
        import dns.rcode
        import dns.rdatatype
        import dns.rrset

        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return  # closed
            question = dns.message.from_wire(data)
            answer = dns.message.make_response(question)
            asked = question.question[0]
            name = asked.name.to_text()
            if asked.rdtype == dns.rdatatype.TXT and name in self.records:
                answer.answer.append(dns.rrset.from_text(name, 60, "IN", "TXT",
                                                         f'"{self.records[name]}"'))
            elif self.loopback_suffix and name.endswith(self.loopback_suffix) and (
                    asked.rdtype == dns.rdatatype.A
                    or asked.rdtype == dns.rdatatype.AAAA and IPV6_MISSING is None):
                address = "127.0.0.1" if asked.rdtype == dns.rdatatype.A else "::1"
                answer.answer.append(dns.rrset.from_text(name, 60, "IN", asked.rdtype, address))
            elif not (self.loopback_suffix and name.endswith(self.loopback_suffix)):
                answer.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(answer.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


def curl_https(edge: Edge, host: str, ca_file: Path, path: str) -> dict:
    """GET https://host:TLS_PORT/path with curl, the name resolved to loopback and
    only ``ca_file`` trusted; the function's JSON answer. Call it last in a test: without
    curl the test skips there."""
    import json
    import shutil
    import subprocess

    if shutil.which("curl") is None:
        pytest.skip("HTTPS to a real TLS client NOT TESTED: curl is not installed "
                    "(apt-get install curl; scripts/services.sh installs it)")

    answer = subprocess.run(
        ["curl", "-sS", "--fail", "--resolve", f"{host}:{edge.tls_port}:127.0.0.1",
         "--cacert", str(ca_file), f"https://{host}:{edge.tls_port}{path}"],
        capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)  # type: ignore[no-any-return]
